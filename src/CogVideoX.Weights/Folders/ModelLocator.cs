using System.Text.RegularExpressions;

namespace CogVideoX.Weights;

/// <summary>
/// Resolves what a user passes as the model (<c>--model</c>): a path to a diffusers pipeline folder, a Hugging Face
/// repo id (<c>THUDM/CogVideoX-2b</c>, <c>owner/name@revision</c>) or an alias (<c>2b</c>, <c>5b</c>), looked up in
/// the standard Hugging Face cache layout: <c>models--owner--name/snapshots/&lt;commit&gt;/</c>, with the commit
/// read from <c>refs/&lt;revision&gt;</c> (default <c>main</c>) or given directly.
/// </summary>
public static partial class ModelLocator
{
    public const string DefaultRevision = "main";

    /// <summary>Short names for the published models.</summary>
    public static readonly IReadOnlyDictionary<string, string> Aliases = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["2b"] = "THUDM/CogVideoX-2b",
        ["5b"] = "THUDM/CogVideoX-5b",
        ["5b-i2v"] = "THUDM/CogVideoX-5b-I2V",
        ["1.5"] = "THUDM/CogVideoX1.5-5B",
        ["1.5-5b"] = "THUDM/CogVideoX1.5-5B",
        ["1.5-i2v"] = "THUDM/CogVideoX1.5-5B-I2V",
        ["1.5-5b-i2v"] = "THUDM/CogVideoX1.5-5B-I2V",
    };

    /// <summary>
    /// Resolves <paramref name="model"/>. <paramref name="environment"/> reads environment variables (HF_HUB_CACHE,
    /// HF_HOME, ...); the process environment when null — tests pass their own.
    /// </summary>
    public static ModelFolder Resolve(string model, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        if (OpenLocal(model) is { } folder) return folder;
        var (cache, source) = HubCache(environment);
        return FromCache(ParseRepoReference(model), cache, source);
    }

    /// <summary>
    /// The folder <paramref name="model"/> names on disk, or null when there is none (then it may be a repo id).
    /// Throws for an empty name or a file.
    /// </summary>
    internal static ModelFolder? OpenLocal(string model)
    {
        if (string.IsNullOrWhiteSpace(model))
            throw new WeightsException("no model given; pass a pipeline folder, a Hugging Face repo id (THUDM/CogVideoX-2b) or an alias (2b, 5b)");
        if (Directory.Exists(model)) return ModelFolder.Open(model);
        if (File.Exists(model))
            throw new WeightsException($"{model}: is a file; a model is a diffusers pipeline folder (with model_index.json, transformer/, vae/, ...), a Hugging Face repo id or an alias (2b, 5b)");
        return null;
    }

    /// <summary>
    /// Reads <paramref name="model"/> as a repo id or alias with an optional <c>@revision</c> (the caller has ruled
    /// out a folder). Throws what <see cref="Resolve"/> says for something that is neither.
    /// </summary>
    internal static RepoReference ParseRepoReference(string model)
    {
        var (name, revision) = SplitRevision(model);
        string? alias = null;
        if (Aliases.TryGetValue(name, out var aliased))
        {
            alias = name;
            name = aliased;
        }
        if (!IsRepoId(name) || (revision is not null && !IsRevision(revision)))
            throw new WeightsException(
                $"{model}: no such folder ({Path.GetFullPath(model)}), and not a Hugging Face repo id (owner/name, optionally @revision) or an alias ({string.Join(", ", Aliases.Keys)}); " +
                "pass a diffusers pipeline folder (with model_index.json), a repo id such as THUDM/CogVideoX-2b, or 2b/5b");
        return new RepoReference(name, revision, alias);
    }

    /// <summary>
    /// Throws what <see cref="Resolve"/> would for a name that can be neither a folder here nor a repo id or alias,
    /// without opening, looking up or downloading anything: a command checks this before its slow steps.
    /// </summary>
    public static void CheckName(string model)
    {
        if (string.IsNullOrWhiteSpace(model) || File.Exists(model)) _ = OpenLocal(model);
        else if (!Directory.Exists(model)) _ = ParseRepoReference(model);
    }

    /// <summary>
    /// Whether a command that runs <paramref name="model"/> and does not find it would download it: it names no
    /// folder or file here and reads as a repo id or an alias.
    /// </summary>
    public static bool CanDownload(string model)
    {
        if (string.IsNullOrWhiteSpace(model) || Directory.Exists(model) || File.Exists(model)) return false;
        try
        {
            _ = ParseRepoReference(model);
            return true;
        }
        catch (WeightsException)
        {
            return false;
        }
    }

    /// <summary>The Hugging Face hub cache folder and what chose it, as huggingface_hub decides.</summary>
    public static (string Path, string Source) HubCache(Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        string? Get(string name) => environment(name) is { Length: > 0 } v ? HomeFolder.Expand(v, environment) : null;
        if (Get("HF_HUB_CACHE") is { } hub) return (hub, "$HF_HUB_CACHE");
        if (Get("HUGGINGFACE_HUB_CACHE") is { } legacy) return (legacy, "$HUGGINGFACE_HUB_CACHE");
        if (Get("HF_HOME") is { } home) return (Path.Combine(home, "hub"), "$HF_HOME/hub");
        if (Get("XDG_CACHE_HOME") is { } xdg) return (Path.Combine(xdg, "huggingface", "hub"), "$XDG_CACHE_HOME/huggingface/hub");
        return (Path.Combine(HomeFolder.Of(environment), ".cache", "huggingface", "hub"), "~/.cache/huggingface/hub");
    }

    /// <summary>The cache folder of a repo: <c>models--owner--name</c>.</summary>
    public static string RepoFolderName(string repoId) => "models--" + repoId.Replace("/", "--", StringComparison.Ordinal);

    /// <summary>owner/name as the Hub allows it: letters, digits, '-', '_', '.'; no "--" or ".."; at most 96 chars.</summary>
    public static bool IsRepoId(string text) =>
        text.Length <= 96 && RepoIdPattern().IsMatch(text) && !text.Contains("--", StringComparison.Ordinal) && !text.Contains("..", StringComparison.Ordinal);

    internal static bool IsRevision(string text) =>
        text.Length is > 0 and <= 256 && !text.Contains("..", StringComparison.Ordinal) && !text.StartsWith('/') && RevisionPattern().IsMatch(text);

    private static (string Name, string? Revision) SplitRevision(string model)
    {
        int at = model.LastIndexOf('@');
        return at < 0 ? (model, null) : (model[..at], model[(at + 1)..]);
    }

    /// <summary>The snapshot a repo reference names in the cache (through refs/ or a commit folder), or a WeightsException saying what is missing.</summary>
    /// <param name="cache">The hub cache folder; <paramref name="source"/> says what chose it (for messages).</param>
    internal static ModelFolder FromCache(RepoReference reference, string cache, string source)
    {
        var repoId = reference.RepoId;
        var revision = reference.EffectiveRevision;
        var what = reference.Display;
        var download = $"`cogvideox download {reference.Spec}`";
        var repoFolder = Path.Combine(cache, RepoFolderName(repoId));
        if (!Directory.Exists(repoFolder))
            throw new WeightsException(
                $"{what} is not in the Hugging Face cache: {repoFolder} does not exist (the cache is {cache}, from {source}); " +
                $"run {download} to fetch it, or pass a local pipeline folder");

        // As huggingface_hub: a revision with a refs/ file is a branch or tag naming a commit; otherwise it must be
        // the name of a snapshot folder itself (a commit hash).
        string commit = revision;
        var refFile = Path.Combine(repoFolder, "refs", revision);
        if (File.Exists(refFile))
        {
            commit = ReadRef(refFile);
            var snapshot = Path.Combine(repoFolder, "snapshots", commit);
            if (!Directory.Exists(snapshot))
                throw new WeightsException(
                    $"{what}: refs/{revision} names commit {commit}, but {snapshot} is missing (the cache is incomplete); run {download}");
            return OpenSnapshot(snapshot, new HubSnapshot(repoId, revision, commit, repoFolder), download);
        }
        var direct = Path.Combine(repoFolder, "snapshots", revision);
        if (Directory.Exists(direct))
            return OpenSnapshot(direct, new HubSnapshot(repoId, revision, revision, repoFolder), download);
        throw new WeightsException(
            $"{what}: revision '{revision}' is not in the cache: no {refFile} and no snapshot {direct} ({CacheContents(repoFolder)}); run {download}");
    }

    internal static bool IsCommit(string text) => CommitPattern().IsMatch(text);

    private static ModelFolder OpenSnapshot(string snapshot, HubSnapshot hub, string download)
    {
        if (!File.Exists(Path.Combine(snapshot, ModelIndex.FileName)))
            throw new WeightsException($"{hub.RepoId}@{hub.Commit}: the cached snapshot {snapshot} has no model_index.json (an incomplete download?); run {download}");
        return ModelFolder.Open(snapshot, hub);
    }

    private static string ReadRef(string refFile)
    {
        string text;
        try
        {
            text = File.ReadAllText(refFile).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new WeightsException($"{refFile}: cannot be read ({e.Message})");
        }
        if (!CommitPattern().IsMatch(text))
            throw new WeightsException($"{refFile}: should hold a 40-character commit hash but holds '{(text.Length <= 60 ? text : text[..57] + "...")}'; the cache is corrupt (delete the file and download again)");
        return text;
    }

    private static string CacheContents(string repoFolder)
    {
        var refsFolder = Path.Combine(repoFolder, "refs");
        var refs = Directory.Exists(refsFolder)
            ? Directory.GetFiles(refsFolder, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(refsFolder, f)).Order(StringComparer.Ordinal).ToList()
            : [];
        var snapshotsFolder = Path.Combine(repoFolder, "snapshots");
        var snapshots = Directory.Exists(snapshotsFolder)
            ? Directory.GetDirectories(snapshotsFolder).Select(d => Path.GetFileName(d)).Order(StringComparer.Ordinal).ToList()
            : [];
        return $"cached refs: {(refs.Count == 0 ? "none" : string.Join(", ", refs))}; snapshots: {(snapshots.Count == 0 ? "none" : string.Join(", ", snapshots))}";
    }

    [GeneratedRegex(@"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?/[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")]
    private static partial Regex RepoIdPattern();

    [GeneratedRegex(@"^[A-Za-z0-9_.\-/+]+$")]
    private static partial Regex RevisionPattern();

    [GeneratedRegex(@"^[0-9a-f]{40}$")]
    private static partial Regex CommitPattern();
}

/// <summary>A model named by Hugging Face repo id (or alias), with the revision the user asked for, if any.</summary>
internal sealed record RepoReference(string RepoId, string? Revision, string? Alias)
{
    public string EffectiveRevision => Revision ?? ModelLocator.DefaultRevision;

    /// <summary>How to name it to the user: the alias with what it stands for, else the repo id.</summary>
    public string Display => Alias is null ? RepoId : $"{Alias} (= {RepoId})";

    /// <summary>owner/name[@revision], as typed on the command line.</summary>
    public string Spec => Revision is null ? RepoId : $"{RepoId}@{Revision}";
}
