using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace CogVideoX.Weights;

/// <summary>A repo's file list at one commit, from <c>GET /api/models/{repo}/revision/{revision}?blobs=true</c>.</summary>
internal sealed record RepoInfo(string RepoId, string Commit, IReadOnlyList<RepoSibling> Files)
{
    public RepoSibling? File(string path) => Files.FirstOrDefault(f => f.Path == path);
}

/// <summary>One file of a repo; size and hashes when the server gives them (<c>blobs=true</c>).</summary>
internal sealed record RepoSibling(string Path, long? Size, string? BlobId, string? Sha256);

/// <summary>A file's metadata from the HEAD of its resolve URL: what to store it as, how big it is, where to get it.</summary>
/// <param name="Etag">The blob name: the SHA-256 for LFS files (X-Linked-Etag), the git blob id for small ones (ETag).</param>
/// <param name="Location">Where the bytes are: the resolve URL itself, or a CDN it redirects to.</param>
internal sealed record RemoteFile(string Path, string Etag, long Size, string? Commit, Uri Location);

/// <summary>A failure worth another try: a dropped or stalled connection, a timeout, a 5xx or 429.</summary>
internal sealed class TransientHubException(string message, HubFailure failure, Exception? inner = null) : Exception(message, inner)
{
    public HubFailure Failure { get; } = failure;
}

/// <summary>
/// HTTP to the Hub with huggingface_hub's URL patterns and headers: the revision API for the file list, HEAD on
/// <c>{endpoint}/{repo}/resolve/{revision}/{path}</c> for a file's ETag, size and commit (following only redirects
/// within the Hub, as a renamed repo gives; a redirect elsewhere is the CDN holding the bytes), and GET with
/// <c>Range</c> to resume. The token goes to the Hub only, never to another host. Errors carry the Hub's
/// <c>X-Error-Code</c> meaning (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo).
/// </summary>
internal sealed class HubClient : IDisposable
{
    private const int MaxRedirects = 10;

    private static readonly string s_userAgent = $"cogvideox/{typeof(HubClient).Assembly.GetName().Version?.ToString(3) ?? "0"} dotnet/{Environment.Version}";

    private readonly HubSettings _settings;
    private readonly HttpClient _http;
    private readonly Uri _endpoint;

    public HubClient(HubSettings settings)
    {
        _settings = settings;
        _endpoint = new Uri(settings.Endpoint + "/");
        var handler = new SocketsHttpHandler
        {
            // Redirects are followed by hand: the token must not follow one to a CDN, and a HEAD must stop at it.
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = settings.RequestTimeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        };
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
    }

    public HubSettings Settings => _settings;

    public void Dispose() => _http.Dispose();

    /// <summary>The commit a revision names and the repo's files at that commit.</summary>
    public async Task<RepoInfo> GetRepoInfoAsync(string repoId, string revision, CancellationToken ct)
    {
        var url = new Uri(_endpoint, $"api/models/{repoId}/revision/{Uri.EscapeDataString(revision)}?blobs=true");
        var what = $"the file list of {repoId}@{revision}";
        using var response = await SendAsync(HttpMethod.Get, url, what, followRedirects: true, ct).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.OK)
            throw Refused(response, repoId, revision, path: null);
        var tooLarge = $"{what} from {url.Authority} is larger than {Sizes.Format(_settings.MaxFileListBytes)}, far more than a model repository's; check HF_ENDPOINT and any proxy";
        if (response.Content.Headers.ContentLength > _settings.MaxFileListBytes)
            throw new HubException(HubFailure.BadResponse, tooLarge);
        byte[] body;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            timeout.CancelAfter(_settings.RequestTimeout);
            try
            {
                // Read with a cap: without a Content-Length the body is only bounded by what the server sends.
                body = await ReadAtMostAsync(response, _settings.MaxFileListBytes, timeout.Token).ConfigureAwait(false)
                    ?? throw new HubException(HubFailure.BadResponse, tooLarge);
            }
            catch (Exception e) when (IsNetworkFailure(e, ct))
            {
                throw new HubException(HubFailure.ConnectionLost, $"{what}: the connection to {url.Authority} failed while reading the answer ({Reason(e)}); try again");
            }
        }
        return ParseRepoInfo(body, repoId, revision, url);
    }

    /// <summary>The body, or null when it is longer than <paramref name="limit"/> bytes.</summary>
    private static async Task<byte[]?> ReadAtMostAsync(HttpResponseMessage response, long limit, CancellationToken ct)
    {
        var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        await using (body.ConfigureAwait(false))
        {
            using var bytes = new MemoryStream();
            var buffer = new byte[81920];
            int n;
            while ((n = await body.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
            {
                if (bytes.Length + n > limit) return null;
                bytes.Write(buffer, 0, n);
            }
            return bytes.ToArray();
        }
    }

    /// <summary>HEAD of a file at a commit: its blob name (ETag), size and download location.</summary>
    public async Task<RemoteFile> GetFileMetadataAsync(string repoId, string commit, string path, CancellationToken ct)
    {
        var url = ResolveUrl(repoId, commit, path);
        using var response = await SendAsync(HttpMethod.Head, url, $"{repoId}: {path}", followRedirects: false, ct).ConfigureAwait(false);
        int status = (int)response.StatusCode;
        bool redirect = status is >= 300 and < 400;
        if (!redirect && status != 200)
            throw Refused(response, repoId, commit, path);

        // As huggingface_hub: the linked (LFS) ETag and size win; the plain ones describe the file itself.
        var etag = NormalizeEtag(Header(response, "X-Linked-Etag") ?? Header(response, "ETag"));
        long? size = ParseLong(Header(response, "X-Linked-Size")) ?? (redirect ? null : response.Content.Headers.ContentLength);
        var location = redirect
            ? (response.Headers.Location is { } l ? new Uri(response.RequestMessage!.RequestUri!, l) : null)
            : response.RequestMessage!.RequestUri;
        if (etag is null || size is null || location is null)
        {
            var missing = string.Join(", ", new[] { etag is null ? "ETag" : null, size is null ? "size (X-Linked-Size or Content-Length)" : null, location is null ? "Location" : null }.OfType<string>());
            throw new HubException(HubFailure.BadResponse,
                $"{repoId}: {path}: {_endpoint.Authority} answered the file's HEAD without {missing}; is {_settings.Endpoint} a Hugging Face Hub (or a mirror of one)? Check HF_ENDPOINT and any proxy");
        }
        return new RemoteFile(path, etag, size.Value, Header(response, "X-Repo-Commit"), location);
    }

    /// <summary>
    /// GET of a file's bytes from <paramref name="offset"/> (a <c>Range</c> request when above 0). Returns the
    /// response with headers read (200, 206 or 416); the caller reads and disposes it.
    /// </summary>
    public async Task<HttpResponseMessage> GetContentAsync(string repoId, string revision, RemoteFile file, long offset, CancellationToken ct)
    {
        var response = await SendAsync(HttpMethod.Get, file.Location, $"{repoId}: {file.Path}", followRedirects: true, ct, offset).ConfigureAwait(false);
        if (response.StatusCode is HttpStatusCode.OK or HttpStatusCode.PartialContent or HttpStatusCode.RequestedRangeNotSatisfiable)
            return response;
        using (response)
            throw Refused(response, repoId, revision, file.Path);
    }

    /// <summary>
    /// Sends a request and returns the response once its headers are in, retrying connection failures, timeouts,
    /// 408, 429 and 5xx answers with a doubling wait. Other answers (errors included) are returned as they are.
    /// </summary>
    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri url, string what, bool followRedirects, CancellationToken ct, long offset = 0)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await SendOnceAsync(method, url, what, followRedirects, offset, ct).ConfigureAwait(false);
            }
            catch (TransientHubException) when (attempt < _settings.MaxAttempts)
            {
                await Task.Delay(BackoffDelay(attempt), ct).ConfigureAwait(false);
            }
            catch (TransientHubException e)
            {
                throw new HubException(e.Failure, $"{e.Message} ({_settings.MaxAttempts} tries); {(e.Failure == HubFailure.ServerError ? "the Hub may be busy or down: try again later" : "check the network (and HF_ENDPOINT, proxies), then run again")}", e);
            }
        }
    }

    internal TimeSpan BackoffDelay(int attempt) => _settings.RetryDelay * Math.Min(16, 1 << Math.Min(attempt - 1, 4));

    private async Task<HttpResponseMessage> SendOnceAsync(HttpMethod method, Uri url, string what, bool followRedirects, long offset, CancellationToken ct)
    {
        for (int redirects = 0; ; redirects++)
        {
            using var request = new HttpRequestMessage(method, url);
            request.Headers.UserAgent.ParseAdd(s_userAgent);
            // The real size is wanted, and compressed bytes could not be resumed by offset.
            request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            if (_settings.Token is { } token && IsHub(url))
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            if (offset > 0)
                request.Headers.Range = new RangeHeaderValue(offset, null);

            HttpResponseMessage response;
            using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                timeout.CancelAfter(_settings.RequestTimeout);
                try
                {
                    response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    throw new TransientHubException($"{what}: {url.Authority} did not answer within {Seconds(_settings.RequestTimeout)} (HF_HUB_ETAG_TIMEOUT)", HubFailure.ServerError);
                }
                catch (HttpRequestException e) when (e.HttpRequestError == HttpRequestError.NameResolutionError)
                {
                    throw new HubException(HubFailure.ConnectionLost,
                        $"{what}: cannot find the host {url.Host} ({Reason(e)}); check the network and HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only models already in the cache");
                }
                catch (Exception e) when (IsNetworkFailure(e, ct))
                {
                    throw new TransientHubException($"{what}: cannot reach {url.Authority} ({Reason(e)})", HubFailure.ConnectionLost, e);
                }
            }

            int status = (int)response.StatusCode;
            if (status is 408 or 429 or >= 500)
            {
                var message = $"{what}: {url.Authority} answered {status} {response.ReasonPhrase}{ErrorMessage(response)}";
                response.Dispose();
                throw new TransientHubException(message, HubFailure.ServerError);
            }
            bool isRedirect = status is 301 or 302 or 303 or 307 or 308 && response.Headers.Location is not null;
            if (!isRedirect) return response;
            var next = new Uri(url, response.Headers.Location!);
            // A HEAD follows redirects within the Hub only (a renamed repo); one elsewhere is the file's location.
            if (!followRedirects && !SameAuthority(next, url)) return response;
            response.Dispose();
            if (redirects >= MaxRedirects)
                throw new HubException(HubFailure.BadResponse, $"{what}: more than {MaxRedirects} redirects from {url.Authority}; check HF_ENDPOINT and any proxy");
            url = next;
        }
    }

    private Uri ResolveUrl(string repoId, string revision, string path) =>
        new(_endpoint, $"{repoId}/resolve/{Uri.EscapeDataString(revision)}/{string.Join('/', path.Split('/').Select(Uri.EscapeDataString))}");

    private bool IsHub(Uri url) => SameAuthority(url, _endpoint);

    private static bool SameAuthority(Uri a, Uri b) =>
        string.Equals(a.Scheme, b.Scheme, StringComparison.OrdinalIgnoreCase) && string.Equals(a.Authority, b.Authority, StringComparison.OrdinalIgnoreCase);

    /// <summary>The Hub's refusal, said in terms of what to do about it.</summary>
    internal HubException Refused(HttpResponseMessage response, string repoId, string revision, string? path)
    {
        int status = (int)response.StatusCode;
        var code = Header(response, "X-Error-Code");
        var serverMessage = Header(response, "X-Error-Message");
        var endpoint = _settings.Endpoint;
        var tokens = $"{endpoint}/settings/tokens";
        var what = path is null ? repoId : $"{repoId}: {path}";
        bool fromHub = response.RequestMessage?.RequestUri is { } u && IsHub(u);

        if (code == "GatedRepo")
        {
            var tokenPart = _settings.Token is null
                ? $"no token was sent: set HF_TOKEN to an access token of that account ({tokens})"
                : $"the token from {_settings.TokenSource} was sent, but its account has no access yet (if the conditions are accepted, access may still await the authors' approval)";
            return new HubException(HubFailure.Gated,
                $"{repoId} is a gated model ({status}): its files can be downloaded only by accounts that accepted its conditions. " +
                $"Log in at {endpoint}, accept them on {_settings.RepoPage(repoId)}, and use a token of that account; {tokenPart}");
        }
        if (status == 401 && _settings.Token is not null && serverMessage is { } m && (m.StartsWith("Invalid credentials", StringComparison.OrdinalIgnoreCase) || m.StartsWith("Invalid username or password", StringComparison.OrdinalIgnoreCase)))
            return new HubException(HubFailure.Unauthorized,
                $"{endpoint} rejected the access token from {_settings.TokenSource} (401: {m}); create a new token at {tokens} and set HF_TOKEN to it, or unset HF_TOKEN (and remove the token file) to download public models without one");
        if (code == "RevisionNotFound")
            return new HubException(HubFailure.RevisionNotFound,
                $"{repoId}: revision '{revision}' not found on {endpoint} (404: no branch, tag or commit of that name); see {_settings.RepoPage(repoId)}/tree/main for the repository's branches and files, or leave the revision out for 'main'");
        if (code == "EntryNotFound" || (status == 404 && path is not null && code is null && fromHub))
            return new HubException(HubFailure.FileNotFound,
                $"{repoId}@{revision}: file '{path}' not found on {endpoint} (404){(code is null ? "" : " although the repository's file list names it")}; the repository may have changed during the download: run it again");
        if (code == "RepoNotFound" || (fromHub && (status == 404 || (status == 401 && path is null))))
        {
            var tokenPart = _settings.Token is null
                ? $"if it is private, set HF_TOKEN to an access token of an account that can read it ({tokens})"
                : $"if it is private, the token from {_settings.TokenSource} gives no access to it";
            return new HubException(HubFailure.RepoNotFound,
                $"{repoId}: repository not found on {endpoint} ({status}); check the name (such as THUDM/CogVideoX-2b); {tokenPart}");
        }
        if (status is 401 or 403)
        {
            var tokenPart = _settings.Token is null
                ? $"set HF_TOKEN to an access token that can read {repoId} ({tokens})"
                : $"make sure the token from {_settings.TokenSource} may read {repoId} (a fine-grained token needs read access to it)";
            var host = fromHub ? endpoint : response.RequestMessage?.RequestUri?.Authority ?? "the server";
            var cdnNote = fromHub ? "" : "; the signed download link may have expired: run the download again";
            return new HubException(HubFailure.Unauthorized,
                $"{host} refused {what} ({status} {response.ReasonPhrase}{ErrorMessage(response)}); {tokenPart}{cdnNote}");
        }
        return new HubException(HubFailure.BadResponse,
            $"{what}: {response.RequestMessage?.RequestUri?.Authority ?? endpoint} answered {status} {response.ReasonPhrase}{ErrorMessage(response)}; check HF_ENDPOINT and any proxy, or try again later");
    }

    private RepoInfo ParseRepoInfo(byte[] body, string repoId, string revision, Uri url)
    {
        RepoInfoJson? json;
        try
        {
            json = JsonSerializer.Deserialize(body, HubJsonContext.Default.RepoInfoJson);
        }
        catch (JsonException e)
        {
            throw new HubException(HubFailure.BadResponse, $"the file list of {repoId}@{revision} from {url.Authority} is not the Hub's JSON ({e.Message}); check HF_ENDPOINT and any proxy");
        }
        if (json?.Sha is not { } sha || !ModelLocator.IsCommit(sha))
            throw new HubException(HubFailure.BadResponse, $"the file list of {repoId}@{revision} from {url.Authority} has no commit hash ('sha'); check HF_ENDPOINT and any proxy");
        if (json.Siblings is null)
            throw new HubException(HubFailure.BadResponse, $"the file list of {repoId}@{revision} from {url.Authority} has no 'siblings' (the repository's files); check HF_ENDPOINT and any proxy");
        var files = new List<RepoSibling>(json.Siblings.Count);
        foreach (var s in json.Siblings)
        {
            if (s.Rfilename is not { } name || !HubCacheFolder.IsSafeRelativePath(name))
                throw new HubException(HubFailure.BadResponse, $"the file list of {repoId}@{revision} names a file '{s.Rfilename}' that cannot be stored safely (an absolute path, '..', or a backslash); refusing to download from {url.Authority}");
            files.Add(new RepoSibling(name, s.Size ?? s.Lfs?.Size, s.BlobId, s.Lfs?.Sha256));
        }
        return new RepoInfo(repoId, sha, files);
    }

    internal static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values)
            ? values.FirstOrDefault() is { Length: > 0 } v ? v : null
            : null;

    private static string ErrorMessage(HttpResponseMessage response) => Header(response, "X-Error-Message") is { } m ? $": {m}" : "";

    /// <summary>huggingface_hub's _normalize_etag: drops a weak marker and quotes.</summary>
    internal static string? NormalizeEtag(string? etag)
    {
        if (etag is null) return null;
        var e = etag.Trim();
        if (e.StartsWith("W/", StringComparison.Ordinal)) e = e[2..];
        e = e.Trim('"');
        return e.Length == 0 ? null : e;
    }

    private static long? ParseLong(string? text) =>
        long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : null;

    /// <summary>A failure of the connection (not of our own cancellation): worth retrying.</summary>
    internal static bool IsNetworkFailure(Exception e, CancellationToken ct) =>
        e is HttpRequestException or IOException or System.Net.Sockets.SocketException
        || (e is OperationCanceledException && !ct.IsCancellationRequested);

    internal static string Reason(Exception e)
    {
        var inner = e;
        while (inner.InnerException is { } next && inner is HttpRequestException or IOException) inner = next;
        return inner == e ? e.Message : $"{e.Message}: {inner.Message}";
    }

    internal static string Seconds(TimeSpan t) => t.TotalSeconds >= 1 ? $"{t.TotalSeconds:0.#} s" : $"{t.TotalMilliseconds:0} ms";
}

internal sealed record RepoInfoJson(string? Id, string? Sha, List<RepoSiblingJson>? Siblings);

internal sealed record RepoSiblingJson(string? Rfilename, long? Size, string? BlobId, RepoLfsJson? Lfs);

internal sealed record RepoLfsJson(long? Size, string? Sha256, long? PointerSize);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(RepoInfoJson))]
internal sealed partial class HubJsonContext : JsonSerializerContext;
