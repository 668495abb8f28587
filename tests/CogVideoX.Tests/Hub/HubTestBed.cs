using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Hub;

/// <summary>
/// A fake Hub on loopback serving the tiny 2b-style fixture pipeline, and an empty cache in a temp folder. Nothing
/// here reads the process environment or the machine's real Hugging Face cache.
/// </summary>
public sealed class HubTestBed : IDisposable
{
    public const string Repo = "test/tiny-2b";

    /// <summary>What the pipeline needs from the fixture repo: exactly these are downloaded.</summary>
    public static readonly string[] PipelineFiles =
    [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/added_tokens.json",
        "tokenizer/special_tokens_map.json",
        "tokenizer/spiece.model",
        "tokenizer/tokenizer_config.json",
        "transformer/config.json",
        "transformer/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ];

    /// <summary>What a real repo holds besides the pipeline, none of which may be downloaded.</summary>
    public static readonly (string Path, byte[] Content)[] Extras =
    [
        (".gitattributes", Encoding.UTF8.GetBytes("*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n")),
        ("README.md", Encoding.UTF8.GetBytes("# tiny CogVideoX\n")),
        ("samples/panda.gif", RandomBytes(40_000, 1)),
        ("transformer/diffusion_pytorch_model.bin", RandomBytes(30_000, 2)),
        ("text_encoder/pytorch_model.bin", RandomBytes(20_000, 3)),
        ("vae/diffusion_pytorch_model.fp16.safetensors", RandomBytes(50_000, 4)),
    ];

    public HubTestBed()
    {
        Cache = Path.Combine(Dir.Path, "hub");
    }

    public FakeHub Hub { get; } = new();

    public TempFolder Dir { get; } = new();

    public string Cache { get; }

    public string RepoFolder(string repoId = Repo) => Path.Combine(Cache, "models--" + repoId.Replace("/", "--"));

    public string Snapshot(string commit, string repoId = Repo) => Path.Combine(RepoFolder(repoId), "snapshots", commit);

    public string Blobs(string repoId = Repo) => Path.Combine(RepoFolder(repoId), "blobs");

    /// <summary>Test timings: near-instant retries, three tries; timeouts long enough that a busy machine causes no unplanned retry (the stall tests shorten them).</summary>
    public HubSettings Settings(string? token = null, bool offline = false) => new()
    {
        Endpoint = Hub.Endpoint,
        Cache = Cache,
        CacheSource = "$HF_HUB_CACHE",
        Token = token,
        TokenSource = token is null ? null : "$HF_TOKEN",
        Offline = offline,
        RequestTimeout = TimeSpan.FromSeconds(5),
        StallTimeout = TimeSpan.FromSeconds(5),
        RetryDelay = TimeSpan.FromMilliseconds(10),
        MaxAttempts = 3,
        MaxParallelDownloads = 4,
    };

    /// <summary>The fixture pipeline (without its golden runs) and the extras, as commit of <paramref name="repoId"/> on main.</summary>
    public string AddTiny2b(string repoId = Repo, string branch = "main") =>
        Hub.AddCommit(repoId, Fixtures.Path2b, branch, Extras, include: p => !p.StartsWith("runs/", StringComparison.Ordinal));

    /// <summary>The fixture's bytes of a repo file.</summary>
    public static byte[] FixtureBytes(string path) => File.ReadAllBytes(Path.Combine(Fixtures.Path2b, path));

    /// <summary>The blob name huggingface_hub gives a file: SHA-256 for LFS files, git blob id for small ones.</summary>
    public static string Etag(string path, byte[] content) => FakeFile.Create(path, content).Lfs
        ? Convert.ToHexStringLower(SHA256.HashData(content))
        : FakeFile.GitBlobId(content);

    public IReadOnlyList<string> SnapshotFiles(string commit, string repoId = Repo) =>
        Directory.Exists(Snapshot(commit, repoId))
            ? Directory.GetFiles(Snapshot(commit, repoId), "*", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(Snapshot(commit, repoId), f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToList()
            : [];

    public IReadOnlyList<string> BlobNames(string repoId = Repo) =>
        Directory.Exists(Blobs(repoId)) ? Directory.GetFiles(Blobs(repoId)).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal).ToList() : [];

    /// <summary>
    /// Writes a cache entry as huggingface_hub does: the content in blobs/ under its ETag, the snapshot path a
    /// relative symbolic link to it, refs/main naming the commit.
    /// </summary>
    public static string WriteAsHuggingFaceHub(string cache, string repoId, string commit, string source, IEnumerable<(string Path, byte[] Content)>? extra = null)
    {
        var repo = Path.Combine(cache, "models--" + repoId.Replace("/", "--"));
        var files = Directory.GetFiles(source, "*", SearchOption.AllDirectories)
            .Select(f => (Path: Path.GetRelativePath(source, f).Replace('\\', '/'), Content: File.ReadAllBytes(f)))
            .Where(f => !f.Path.StartsWith("runs/", StringComparison.Ordinal))
            .Concat(extra ?? []);
        foreach (var (path, content) in files)
        {
            var blob = Path.Combine(repo, "blobs", Etag(path, content));
            Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
            File.WriteAllBytes(blob, content);
            var link = Path.Combine(repo, "snapshots", commit, path);
            Directory.CreateDirectory(Path.GetDirectoryName(link)!);
            File.CreateSymbolicLink(link, Path.GetRelativePath(Path.GetDirectoryName(link)!, blob));
        }
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), commit);
        return Path.Combine(repo, "snapshots", commit);
    }

    public static byte[] RandomBytes(int count, int seed)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public void Dispose()
    {
        Hub.Dispose();
        Dir.Dispose();
    }
}

/// <summary>Records what a download reports.</summary>
public sealed class RecordingProgress : IDownloadProgress
{
    public ConcurrentQueue<string> Events { get; } = new();

    public IReadOnlyList<string> Notes => Events.Where(e => e.StartsWith("note ", StringComparison.Ordinal)).ToList();

    public IReadOnlyList<string> Done => Events.Where(e => e.StartsWith("done ", StringComparison.Ordinal)).ToList();

    public void Resolved(string repoId, string revision, string commit) => Events.Enqueue($"resolved {repoId} {revision} {commit}");

    public void Planned(IReadOnlyList<(string Path, long? Size)> files, int alreadyCached) =>
        Events.Enqueue($"planned {string.Join(",", files.Select(f => f.Path))} cached {alreadyCached}");

    public void FileStarted(string path, long size, long resumedFrom) => Events.Enqueue($"started {path} {size} from {resumedFrom}");

    public void Note(string path, string message) => Events.Enqueue($"note {path}: {message}");

    public void FileDone(string path, long size, string verification) => Events.Enqueue($"done {path} {size} {verification}");
}
