namespace CogVideoX.Weights;

/// <summary>
/// Where and how to reach the Hugging Face Hub, read from the environment variables huggingface_hub reads:
/// <c>HF_ENDPOINT</c> (a mirror), <c>HF_TOKEN</c> (else the token file at <c>HF_TOKEN_PATH</c> or
/// <c>$HF_HOME/token</c>), <c>HF_HUB_OFFLINE</c>, the cache (<c>HF_HUB_CACHE</c>, <c>HF_HOME</c>, ...), and the
/// timeouts <c>HF_HUB_ETAG_TIMEOUT</c> (waiting for an answer) and <c>HF_HUB_DOWNLOAD_TIMEOUT</c> (waiting for the
/// next bytes of a file).
/// </summary>
public sealed record HubSettings
{
    public const string DefaultEndpoint = "https://huggingface.co";

    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The Hub's base URL, without a trailing '/'.</summary>
    public required string Endpoint { get; init; }

    /// <summary>The hub cache folder (holding <c>models--owner--name</c> folders).</summary>
    public required string Cache { get; init; }

    /// <summary>What chose <see cref="Cache"/> (for messages): "$HF_HUB_CACHE", "~/.cache/huggingface/hub", ...</summary>
    public string CacheSource { get; init; } = "settings";

    /// <summary>The access token sent as <c>Authorization: Bearer</c>, or null.</summary>
    public string? Token { get; init; }

    /// <summary>Where the token came from (for messages): "$HF_TOKEN" or the token file's path.</summary>
    public string? TokenSource { get; init; }

    /// <summary>Never touch the network: use what is cached or fail.</summary>
    public bool Offline { get; init; }

    /// <summary>The longest wait for the answer to a request (its status and headers).</summary>
    public TimeSpan RequestTimeout { get; init; } = DefaultTimeout;

    /// <summary>The longest wait for the next bytes of a file being downloaded: a stream silent that long is stalled.</summary>
    public TimeSpan StallTimeout { get; init; } = DefaultTimeout;

    /// <summary>How many files are downloaded at once (huggingface_hub's snapshot_download uses 8).</summary>
    public int MaxParallelDownloads { get; init; } = 8;

    /// <summary>
    /// Tries per request before a lost connection or a failing server is reported; a try that brought bytes never
    /// received before resets the count (except from a server that ignores Range, where every try starts over).
    /// </summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>Tries per file in all, however much each one brought: a connection that keeps dropping ends some time.</summary>
    public int MaxTotalAttempts { get; init; } = 50;

    /// <summary>The longest a file's download may go on failing without bringing bytes never received before.</summary>
    public TimeSpan RetryTimeLimit { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>The largest repo file list read (a real one is well under a megabyte, even for thousands of files).</summary>
    internal long MaxFileListBytes { get; init; } = 32L << 20;

    /// <summary>The wait before the first retry; it doubles with each further try (up to 16 times this).</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Free bytes on the disk holding a folder; tests replace it to check the space check.</summary>
    internal Func<string, long?> FreeSpace { get; init; } = DiskFreeSpace;

    /// <summary>Settings from environment variables (the process environment when null).</summary>
    public static HubSettings FromEnvironment(Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        string? Get(string name) => environment(name) is { Length: > 0 } v ? v : null;

        var endpoint = (Get("HF_ENDPOINT") ?? DefaultEndpoint).TrimEnd('/');
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw new HubException(HubFailure.BadSettings, $"HF_ENDPOINT='{Get("HF_ENDPOINT")}' is not an http(s) URL; set it to a Hub mirror's address (such as https://hf-mirror.com) or unset it to use {DefaultEndpoint}");

        var (cache, cacheSource) = ModelLocator.HubCache(environment);
        var (token, tokenSource) = ReadToken(environment);
        var offlineVariable = IsTrue(Get("HF_HUB_OFFLINE")) ? "HF_HUB_OFFLINE" : IsTrue(Get("TRANSFORMERS_OFFLINE")) ? "TRANSFORMERS_OFFLINE" : null;
        return new HubSettings
        {
            Endpoint = endpoint,
            Cache = cache,
            CacheSource = cacheSource,
            Token = token,
            TokenSource = tokenSource,
            Offline = offlineVariable is not null,
            RequestTimeout = Seconds(environment, "HF_HUB_ETAG_TIMEOUT"),
            StallTimeout = Seconds(environment, "HF_HUB_DOWNLOAD_TIMEOUT"),
        };
    }

    /// <summary>The Hub's web page of a repo (where its licence is accepted).</summary>
    public string RepoPage(string repoId) => $"{Endpoint}/{repoId}";

    /// <summary>As huggingface_hub: <c>HF_TOKEN</c> (or the older <c>HUGGING_FACE_HUB_TOKEN</c>), else the token file.</summary>
    private static (string? Token, string? Source) ReadToken(Func<string, string?> environment)
    {
        foreach (var name in (string[])["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"])
            if (Clean(environment(name)) is { } token) return (token, "$" + name);

        var path = environment("HF_TOKEN_PATH") is { Length: > 0 } explicitPath
            ? HomeFolder.Expand(explicitPath, environment)
            : Path.Combine(HfHome(environment), "token");
        try
        {
            return File.Exists(path) && Clean(File.ReadAllText(path)) is { } stored ? (stored, path) : (null, null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HubException(HubFailure.BadSettings, $"{path}: the Hugging Face token file cannot be read ({e.Message}); fix its permissions, or set HF_TOKEN");
        }
    }

    /// <summary>huggingface_hub's HF_HOME: <c>$HF_HOME</c>, else <c>$XDG_CACHE_HOME/huggingface</c>, else <c>~/.cache/huggingface</c>.</summary>
    private static string HfHome(Func<string, string?> environment)
    {
        if (environment("HF_HOME") is { Length: > 0 } home) return HomeFolder.Expand(home, environment);
        if (environment("XDG_CACHE_HOME") is { Length: > 0 } xdg) return Path.Combine(HomeFolder.Expand(xdg, environment), "huggingface");
        return Path.Combine(HomeFolder.Of(environment), ".cache", "huggingface");
    }

    private static string? Clean(string? token) =>
        token?.Replace("\r", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal).Trim() is { Length: > 0 } t ? t : null;

    /// <summary>huggingface_hub's truth test for flags: 1, ON, YES or TRUE in any case.</summary>
    private static bool IsTrue(string? value) =>
        value is not null && value.Trim().ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";

    private static TimeSpan Seconds(Func<string, string?> environment, string name)
    {
        if (environment(name) is not { Length: > 0 } text) return DefaultTimeout;
        if (double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var seconds) && seconds > 0 && seconds <= 86_400)
            return TimeSpan.FromSeconds(seconds);
        throw new HubException(HubFailure.BadSettings, $"{name}='{text}' is not a number of seconds between 0 and 86400; unset it for the default ({DefaultTimeout.TotalSeconds:0} s)");
    }

    private static long? DiskFreeSpace(string folder)
    {
        try
        {
            return new DriveInfo(folder).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }
}
