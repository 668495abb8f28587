namespace CogVideoX.Weights;

/// <summary>What <see cref="ModelHub.DownloadAsync"/> did.</summary>
/// <param name="Files">The files the pipeline needs from the repo.</param>
/// <param name="Fetched">Of those, how many were downloaded now (the rest were in the cache), and their bytes.</param>
/// <param name="Checked">False when offline: the cache was used without asking the Hub whether the revision moved.</param>
public sealed record HubDownloadResult(ModelFolder Folder, string Commit, int Files, long Bytes, int Fetched, long FetchedBytes, bool Checked);

/// <summary>
/// Models from the Hugging Face Hub, as huggingface_hub users expect: the standard cache (shared with Python),
/// downloads of only what the pipeline needs, resumable and verified, and <c>HF_HUB_OFFLINE</c> respected.
/// </summary>
public static class ModelHub
{
    /// <summary>
    /// The model for a command that needs one (<c>--model</c>): a pipeline folder; a repo id or alias whose snapshot
    /// in the cache has every file the pipeline needs (used without asking the Hub); else, unless offline, a download
    /// announced through <paramref name="notice"/> first.
    /// </summary>
    public static async Task<ModelFolder> ResolveAsync(string model, HubSettings settings, IDownloadProgress? progress = null, Action<string>? notice = null, CancellationToken ct = default)
    {
        if (ModelLocator.OpenLocal(model) is { } folder) return folder;
        var reference = ModelLocator.ParseRepoReference(model);
        var (cached, why) = FromCache(reference, settings);
        if (cached is not null) return cached;
        if (settings.Offline) throw Offline(why);
        notice?.Invoke($"{reference.Display}{(reference.Revision is null ? "" : "@" + reference.Revision)} is not (completely) in the Hugging Face cache at {settings.Cache}: downloading it from {settings.Endpoint}; later runs use the cache");
        return (await DownloadAsync(reference, settings, progress, ct).ConfigureAwait(false)).Folder;
    }

    /// <summary>
    /// <c>cogvideox download</c>: asks the Hub which commit <paramref name="model"/>'s revision is (or
    /// <paramref name="revision"/>, if given), fetches the files the pipeline needs that the cache lacks, and then
    /// records the revision in <c>refs/</c>. Offline, it only checks the cache.
    /// </summary>
    public static Task<HubDownloadResult> DownloadAsync(string model, string? revision, HubSettings settings, IDownloadProgress? progress = null, CancellationToken ct = default)
    {
        if (string.IsNullOrWhiteSpace(model))
            throw new HubException(HubFailure.BadSettings, "no model given; pass a Hugging Face repo id (THUDM/CogVideoX-2b, owner/name@revision) or an alias (2b, 5b)");
        if (Directory.Exists(model))
            throw new HubException(HubFailure.BadSettings, $"{model}: is a local folder, so there is nothing to download; pass a Hugging Face repo id (THUDM/CogVideoX-2b) or an alias (2b, 5b)");
        var reference = ModelLocator.ParseRepoReference(model);
        if (revision is not null)
        {
            if (!ModelLocator.IsRevision(revision))
                throw new HubException(HubFailure.BadSettings, $"--revision '{revision}' is not a branch, tag or commit name (letters, digits, '.', '_', '-', '/', '+'; no '..')");
            if (reference.Revision is not null && reference.Revision != revision)
                throw new HubException(HubFailure.BadSettings, $"{model} names revision '{reference.Revision}' but --revision says '{revision}'; give the revision once");
            reference = reference with { Revision = revision };
        }
        return DownloadAsync(reference, settings, progress, ct);
    }

    /// <summary>What a pipeline folder lacks for the pipeline to run (relative paths, with why); empty when complete.</summary>
    public static IReadOnlyList<string> MissingFiles(ModelFolder folder) => PipelineFiles.Missing(folder.Path);

    private static async Task<HubDownloadResult> DownloadAsync(RepoReference reference, HubSettings settings, IDownloadProgress? progress, CancellationToken ct)
    {
        progress ??= new SilentProgress();
        if (settings.Offline)
        {
            var (cached, why) = FromCache(reference, settings);
            if (cached is null) throw Offline(why);
            var count = Directory.GetFiles(cached.Path, "*", SearchOption.AllDirectories).Length;
            return new HubDownloadResult(cached, cached.Hub!.Commit, count, 0, 0, 0, Checked: false);
        }

        var revision = reference.EffectiveRevision;
        using var client = new HubClient(settings);
        var repo = await client.GetRepoInfoAsync(reference.RepoId, revision, ct).ConfigureAwait(false);
        var where = $"{reference.RepoId}@{revision}";
        progress.Resolved(reference.RepoId, revision, repo.Commit);
        if (repo.File(ModelIndex.FileName) is null)
        {
            var names = repo.Files.Select(f => f.Path).ToList();
            throw new HubException(HubFailure.NotAPipeline,
                $"{where}: not a diffusers pipeline: the repository has no model_index.json (its files: {(names.Count == 0 ? "none" : string.Join(", ", names.Take(8)) + (names.Count > 8 ? $" and {names.Count - 8} more" : ""))}); " +
                "pass a repository in the diffusers layout, such as THUDM/CogVideoX-2b");
        }

        var cache = new HubCacheFolder(settings.Cache, reference.RepoId);
        var snapshot = cache.Snapshot(repo.Commit);
        var downloader = new HubDownloader(client, cache, repo, progress);
        await downloader.FetchAsync([ModelIndex.FileName], ct).ConfigureAwait(false);
        var index = ModelIndex.Load(Path.Combine(snapshot, ModelIndex.FileName));
        var plan = PipelineFiles.PlanDownload(repo, index, where);
        await downloader.FetchAsync(plan.Small, ct).ConfigureAwait(false);
        var weights = PipelineFiles.WeightFilesToFetch(plan, repo, snapshot, where);
        await downloader.FetchAsync(weights, ct).ConfigureAwait(false);

        if (PipelineFiles.Missing(snapshot) is { Count: > 0 } missing)
            throw new HubException(HubFailure.BadResponse, $"{where}: after the download the snapshot {snapshot} still lacks {string.Join(", ", missing)}; the repository does not hold a complete pipeline");
        // Last: a ref is the promise that its snapshot is complete.
        cache.WriteRef(revision, repo.Commit);

        var all = new[] { ModelIndex.FileName }.Concat(plan.Small).Concat(weights).ToList();
        long bytes = all.Sum(p => repo.File(p)?.Size ?? 0);
        var folder = ModelFolder.Open(snapshot, new HubSnapshot(reference.RepoId, revision, repo.Commit, cache.Root));
        return new HubDownloadResult(folder, repo.Commit, all.Count, bytes, downloader.Fetched, downloader.FetchedBytes, Checked: true);
    }

    /// <summary>The cached snapshot when it has every file the pipeline needs; else null and why not.</summary>
    private static (ModelFolder? Folder, string Why) FromCache(RepoReference reference, HubSettings settings)
    {
        ModelFolder folder;
        try
        {
            folder = ModelLocator.FromCache(reference, settings.Cache, settings.CacheSource);
        }
        catch (WeightsException e)
        {
            return (null, e.Message);
        }
        var missing = PipelineFiles.Missing(folder.Path);
        return missing.Count == 0
            ? (folder, "")
            : (null, $"{reference.Display}: the cached snapshot {folder.Path} lacks {string.Join(", ", missing.Take(5))}{(missing.Count > 5 ? $" and {missing.Count - 5} more" : "")} (an interrupted download?); run `cogvideox download {reference.Spec}`");
    }

    private static HubException Offline(string why) =>
        new(HubFailure.Offline, $"{why}. Offline mode is on (HF_HUB_OFFLINE), so nothing is downloaded: unset HF_HUB_OFFLINE to let cogvideox download it, or fill the cache on a machine with network and copy it here");

    private sealed class SilentProgress : IDownloadProgress;
}
