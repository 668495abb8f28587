using CogVideoX.Weights;

namespace CogVideoX.Tests.Hub;

/// <summary>Downloads from the loopback Hub: the cache layout, what is fetched and what is not, reuse, parallelism.</summary>
public sealed class HubDownloadTests : IDisposable
{
    private readonly HubTestBed _bed = new();

    public void Dispose() => _bed.Dispose();

    [Fact]
    public async Task DownloadsWhatThePipelineNeedsIntoTheCacheLayoutOfHuggingFaceHub()
    {
        var commit = _bed.AddTiny2b();
        _bed.Hub.Tokens.Add("hf_reader");
        var progress = new RecordingProgress();

        var result = await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings(token: "hf_reader"), progress);

        Assert.Equal((commit, 12, 12, true), (result.Commit, result.Files, result.Fetched, result.Checked));
        var expectedBytes = HubTestBed.PipelineFiles.Sum(p => HubTestBed.FixtureBytes(p).LongLength);
        Assert.Equal((expectedBytes, expectedBytes), (result.Bytes, result.FetchedBytes));
        Assert.Equal(_bed.Snapshot(commit), result.Folder.Path);
        Assert.Equal(new HubSnapshot(HubTestBed.Repo, "main", commit, _bed.RepoFolder()), result.Folder.Hub);
        Assert.Equal(commit, File.ReadAllText(Path.Combine(_bed.RepoFolder(), "refs", "main")));

        // Exactly the pipeline's files, each a relative link to blobs/<etag> holding the fixture's bytes.
        Assert.Equal(HubTestBed.PipelineFiles.Order(StringComparer.Ordinal), _bed.SnapshotFiles(commit));
        foreach (var path in HubTestBed.PipelineFiles)
        {
            var bytes = HubTestBed.FixtureBytes(path);
            var etag = HubTestBed.Etag(path, bytes);
            var entry = new FileInfo(Path.Combine(_bed.Snapshot(commit), path));
            var up = string.Concat(Enumerable.Repeat("../", path.Count(c => c == '/') + 2));
            Assert.Equal($"{up}blobs/{etag}", entry.LinkTarget);
            Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(_bed.Blobs(), etag)));
        }
        Assert.Equal(64, HubTestBed.Etag("transformer/diffusion_pytorch_model.safetensors", HubTestBed.FixtureBytes("transformer/diffusion_pytorch_model.safetensors")).Length);
        Assert.Equal(40, HubTestBed.Etag("model_index.json", HubTestBed.FixtureBytes("model_index.json")).Length);
        Assert.Equal(12, _bed.BlobNames().Count); // no .incomplete left, nothing else
        Assert.Contains(progress.Done, d => d.StartsWith("done transformer/diffusion_pytorch_model.safetensors 2106960 sha256 verified", StringComparison.Ordinal));
        Assert.Contains(progress.Done, d => d.StartsWith("done model_index.json 411 git-sha1 verified", StringComparison.Ordinal));

        // Pickles, variants, READMEs and samples are never asked for; the token goes to the Hub, never to the CDN.
        var requests = _bed.Hub.Requests.ToList();
        Assert.DoesNotContain(requests, r => r.FilePath is { } p && !HubTestBed.PipelineFiles.Contains(p));
        Assert.All(requests.Where(r => r.Host == "hub"), r => Assert.Equal("Bearer hf_reader", r.Authorization));
        Assert.All(requests.Where(r => r.Host == "cdn"), r => Assert.Null(r.Authorization));
        Assert.All(requests.Where(r => r.Kind is "head" or "content"), r => Assert.Equal("identity", r.AcceptEncoding));
        Assert.Equal(4, requests.Count(r => r.Host == "cdn")); // the LFS files (safetensors, spiece.model), through the 302
        Assert.Single(requests, r => r.Kind == "api");

        // The cache resolves through ModelLocator as any cache does, and its weights load.
        var folder = ModelLocator.Resolve(HubTestBed.Repo, name => name == "HF_HUB_CACHE" ? _bed.Cache : null);
        Assert.Equal($"{HubTestBed.Repo}@{commit}", folder.Identity);
        Assert.Equal(ModelFolder.Open(Fixtures.Path2b).WeightsChecksum, folder.WeightsChecksum);
        Assert.Empty(ModelHub.MissingFiles(folder));
        using var cached = Checkpoint.Open(Path.Combine(result.Folder.Path, "transformer"));
        using var original = Checkpoint.Open(Path.Combine(Fixtures.Path2b, "transformer"));
        Assert.Equal(original.Names.Order(StringComparer.Ordinal), cached.Names.Order(StringComparer.Ordinal));
        foreach (var name in original.Names)
        {
            using var a = cached.Load(name);
            using var b = original.Load(name);
            Assert.Equal(b.ToFloatArray(), a.ToFloatArray());
        }
    }

    [Fact]
    public async Task ASecondDownloadOnlyAsksWhichCommitTheRevisionIs()
    {
        _bed.AddTiny2b();
        await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings());
        int before = _bed.Hub.Requests.Count;
        var progress = new RecordingProgress();

        var again = await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings(), progress);

        Assert.Equal((12, 0, 0L), (again.Files, again.Fetched, again.FetchedBytes));
        Assert.Equal(["api"], _bed.Hub.Requests.Skip(before).Select(r => r.Kind));
        Assert.Contains("planned  cached 8", progress.Events);
    }

    [Fact]
    public async Task ANewCommitReusesTheBlobsItShares()
    {
        var first = _bed.AddTiny2b();
        await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings());
        // Same files, one config changed: only that file is new content.
        var second = _bed.Hub.AddCommit(HubTestBed.Repo, Fixtures.Path2b, "main", [("scheduler/scheduler_config.json", "{\"_class_name\": \"CogVideoXDDIMScheduler\", \"num_train_timesteps\": 1000}"u8.ToArray())],
            include: p => !p.StartsWith("runs/", StringComparison.Ordinal));
        int before = _bed.Hub.Requests.Count;
        var progress = new RecordingProgress();

        var result = await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings(), progress);

        Assert.Equal((second, 1), (result.Commit, result.Fetched));
        Assert.Equal(second, File.ReadAllText(Path.Combine(_bed.RepoFolder(), "refs", "main")));
        Assert.Equal(["scheduler/scheduler_config.json"], _bed.Hub.Requests.Skip(before).Where(r => r.Kind == "content").Select(r => r.FilePath));
        Assert.Equal(11, progress.Done.Count(d => d.EndsWith("already in the cache's blobs", StringComparison.Ordinal)));
        Assert.Equal(HubTestBed.PipelineFiles.Order(StringComparer.Ordinal), _bed.SnapshotFiles(first));
        Assert.Equal(HubTestBed.PipelineFiles.Order(StringComparer.Ordinal), _bed.SnapshotFiles(second));
        Assert.Equal(13, _bed.BlobNames().Count);
    }

    [Fact]
    public async Task ResolveDownloadsOnceWithANoticeAndThenUsesTheCacheWithoutTheNetwork()
    {
        var commit = _bed.AddTiny2b();
        var notices = new List<string>();

        var folder = await ModelHub.ResolveAsync(HubTestBed.Repo, _bed.Settings(), notice: notices.Add);

        Assert.Equal($"{HubTestBed.Repo}@{commit}", folder.Identity);
        Assert.Equal([$"{HubTestBed.Repo} is not (completely) in the Hugging Face cache at {_bed.Cache}: downloading it from {_bed.Hub.Endpoint}; later runs use the cache"], notices);
        int before = _bed.Hub.Requests.Count;

        var again = await ModelHub.ResolveAsync(HubTestBed.Repo, _bed.Settings(), notice: notices.Add);

        Assert.Equal(folder.Path, again.Path);
        Assert.Equal(before, _bed.Hub.Requests.Count);
        Assert.Single(notices);
        // A folder is a folder: no Hub involved.
        Assert.Equal(Path.GetFullPath(Fixtures.Path2b), (await ModelHub.ResolveAsync(Fixtures.Path2b, _bed.Settings())).Path);
        Assert.Equal(before, _bed.Hub.Requests.Count);
    }

    [Fact]
    public async Task ResolveCompletesAnInterruptedSnapshot()
    {
        var commit = _bed.AddTiny2b();
        await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings());
        var vae = HubTestBed.Etag("vae/diffusion_pytorch_model.safetensors", HubTestBed.FixtureBytes("vae/diffusion_pytorch_model.safetensors"));
        File.Delete(Path.Combine(_bed.Blobs(), vae));
        int before = _bed.Hub.Requests.Count;

        var folder = await ModelHub.ResolveAsync(HubTestBed.Repo, _bed.Settings());

        Assert.Equal(_bed.Snapshot(commit), folder.Path);
        Assert.Equal(["vae/diffusion_pytorch_model.safetensors"], _bed.Hub.Requests.Skip(before).Where(r => r.Kind == "content").Select(r => r.FilePath));
        Assert.Empty(ModelHub.MissingFiles(folder));
    }

    [Fact]
    public async Task AliasesAndRevisionsGetTheirRefs()
    {
        var main = _bed.AddTiny2b("THUDM/CogVideoX-2b");
        var tagged = _bed.Hub.AddCommit("THUDM/CogVideoX-2b", Fixtures.Path2b, "v1.0", include: p => !p.StartsWith("runs/", StringComparison.Ordinal) && p != "README.md");
        _bed.Hub.AddRepo("THUDM/CogVideoX-2b").Refs["refs/pr/3"] = tagged;

        var alias = await ModelHub.DownloadAsync("2b", null, _bed.Settings());
        var tag = await ModelHub.DownloadAsync("2b@v1.0", null, _bed.Settings());
        var pr = await ModelHub.DownloadAsync("THUDM/CogVideoX-2b", "refs/pr/3", _bed.Settings());
        var pinned = await ModelHub.DownloadAsync($"THUDM/CogVideoX-2b@{main}", null, _bed.Settings());

        var refs = Path.Combine(_bed.RepoFolder("THUDM/CogVideoX-2b"), "refs");
        Assert.Equal((main, tagged, tagged, main), (alias.Commit, tag.Commit, pr.Commit, pinned.Commit));
        Assert.Equal(["main", Path.Combine("refs", "pr", "3"), "v1.0"],
            Directory.GetFiles(refs, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(refs, f)).Order(StringComparer.Ordinal));
        Assert.Equal(tagged, File.ReadAllText(Path.Combine(refs, "refs", "pr", "3")));
        Assert.Equal(0, pinned.Fetched);
        Assert.Equal(tagged, ModelLocator.Resolve("2b@v1.0", n => n == "HF_HUB_CACHE" ? _bed.Cache : null).Hub!.Commit);
    }

    [Fact]
    public async Task FilesAreFetchedSeveralAtOnceWithinTheLimit()
    {
        _bed.AddTiny2b();
        _bed.Hub.ContentDelay = TimeSpan.FromMilliseconds(300);

        await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings() with { MaxParallelDownloads = 3 });

        // 8 configs and tokenizer files in the second stage: three at a time, never more.
        Assert.Equal(3, _bed.Hub.MaxContentInFlight);
    }

    [Fact]
    public async Task ShardedWeightsBringExactlyTheShardsTheirIndexNames()
    {
        var sharded = Fixtures.GoldenFile("weights_fp16_sharded");
        var files = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var path in HubTestBed.PipelineFiles.Where(p => !p.StartsWith("transformer/", StringComparison.Ordinal) && !p.StartsWith("text_encoder/", StringComparison.Ordinal)))
            files[path] = HubTestBed.FixtureBytes(path);
        foreach (var file in Directory.GetFiles(sharded, "*", SearchOption.AllDirectories))
            files[Path.GetRelativePath(sharded, file).Replace('\\', '/')] = File.ReadAllBytes(file);
        // A variant index beside the standard one: not taken.
        files["transformer/diffusion_pytorch_model.safetensors.index.fp16.json"] = files["transformer/diffusion_pytorch_model.safetensors.index.json"];
        files["transformer/diffusion_pytorch_model.fp16-00001-of-00002.safetensors"] = HubTestBed.RandomBytes(1000, 9);
        var commit = _bed.Hub.AddCommit("test/sharded", files);

        var result = await ModelHub.DownloadAsync("test/sharded", null, _bed.Settings());

        Assert.Equal(
            HubTestBed.PipelineFiles.Where(p => !p.StartsWith("transformer/", StringComparison.Ordinal) && !p.StartsWith("text_encoder/", StringComparison.Ordinal))
                .Concat([
                    "text_encoder/config.json", "text_encoder/model-00001-of-00002.safetensors", "text_encoder/model-00002-of-00002.safetensors", "text_encoder/model.safetensors.index.json",
                    "transformer/config.json", "transformer/diffusion_pytorch_model-00001-of-00002.safetensors", "transformer/diffusion_pytorch_model-00002-of-00002.safetensors",
                    "transformer/diffusion_pytorch_model.safetensors.index.json",
                ]).Order(StringComparer.Ordinal),
            _bed.SnapshotFiles(commit, "test/sharded"));
        Assert.Equal(16, result.Files);
        using var transformer = result.Folder.OpenWeights("transformer");
        Assert.Equal(2, transformer.Files.Count);
        using var reference = Checkpoint.Open(Path.Combine(sharded, "transformer"));
        using var a = transformer.Load("proj_out.weight");
        using var b = reference.Load("proj_out.weight");
        Assert.Equal(b.ToFloatArray(), a.ToFloatArray());
    }

    [Fact]
    public async Task TwoPathsWithTheSameContentShareOneBlob()
    {
        var files = HubTestBed.PipelineFiles.ToDictionary(p => p, HubTestBed.FixtureBytes);
        files["vae/config.json"] = files["transformer/config.json"]; // odd, but content-addressed all the same
        var commit = _bed.Hub.AddCommit("test/dup", files);
        var progress = new RecordingProgress();

        var result = await ModelHub.DownloadAsync("test/dup", null, _bed.Settings(), progress);

        Assert.Equal(11, result.Fetched);
        Assert.Single(_bed.Hub.Requests, r => r.Kind == "content" && r.FilePath is "vae/config.json" or "transformer/config.json");
        Assert.Equal(new FileInfo(Path.Combine(_bed.Snapshot(commit, "test/dup"), "vae", "config.json")).LinkTarget,
            new FileInfo(Path.Combine(_bed.Snapshot(commit, "test/dup"), "transformer", "config.json")).LinkTarget);
        Assert.Contains(progress.Done, d => d.EndsWith("same content as another file", StringComparison.Ordinal));
    }
}
