using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace CogVideoX.Tests.Hub;

/// <summary>
/// A Hugging Face Hub on loopback, written from huggingface_hub's view of it: the revision API
/// (<c>/api/models/{repo}/revision/{rev}</c> with sha and siblings, sizes, blob ids and LFS hashes when
/// <c>blobs=true</c>), resolve URLs answering HEAD and GET with <c>X-Repo-Commit</c>, <c>ETag</c> (the git blob
/// id for small files) or, for LFS files, a 302 to a second "CDN" listener with <c>X-Linked-Etag</c> (the SHA-256)
/// and <c>X-Linked-Size</c>; errors with the Hub's <c>X-Error-Code</c>; Range requests. Raw HTTP/1.1 over
/// <see cref="TcpListener"/>, one request per connection, so that a test can drop, stall or corrupt a transfer
/// exactly where it wants (<see cref="Fault"/>). Every request is recorded.
/// </summary>
public sealed class FakeHub : IDisposable
{
    private readonly TcpListener _hub = new(IPAddress.Loopback, 0);
    private readonly TcpListener _cdn = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, FakeRepo> _repos = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, FakeFile> _blobsBySha256 = new(StringComparer.Ordinal);
    private readonly List<Fault> _faults = [];
    private int _contentInFlight;
    private int _maxContentInFlight;

    public FakeHub()
    {
        _hub.Start();
        _cdn.Start();
        _ = AcceptLoop(_hub, cdn: false);
        _ = AcceptLoop(_cdn, cdn: true);
    }

    /// <summary>The Hub's base URL (what HF_ENDPOINT would be).</summary>
    public string Endpoint => $"http://127.0.0.1:{((IPEndPoint)_hub.LocalEndpoint).Port}";

    /// <summary>The CDN's base URL: another port, so another host as far as credentials go.</summary>
    public string CdnBase => $"http://127.0.0.1:{((IPEndPoint)_cdn.LocalEndpoint).Port}";

    public ConcurrentQueue<Request> Requests { get; } = new();

    /// <summary>Tokens the Hub knows; any other bearer token is "Invalid credentials".</summary>
    public HashSet<string> Tokens { get; } = new(StringComparer.Ordinal);

    /// <summary>Spaces appended to the file list's JSON (still valid JSON), to make it as large as a test wants.</summary>
    public int FileListPadding { get; set; }

    /// <summary>Send the file list without Content-Length: its end is where the connection closes.</summary>
    public bool FileListWithoutLength { get; set; }

    /// <summary>A wait before every file transfer's first byte (to see how many run at once).</summary>
    public TimeSpan ContentDelay { get; set; }

    /// <summary>The most file transfers (content GETs) that were in progress at once.</summary>
    public int MaxContentInFlight => Volatile.Read(ref _maxContentInFlight);

    /// <summary>Content requests (GETs of file bytes, Hub or CDN) for one repo path.</summary>
    public IReadOnlyList<Request> ContentRequests(string path) =>
        Requests.Where(r => r.Method == "GET" && r.FilePath == path).ToList();

    public FakeRepo AddRepo(string repoId) => _repos.GetOrAdd(repoId, id => new FakeRepo(id));

    /// <summary>Adds a commit made of a folder's files (and extra files) to a repo and points <paramref name="branch"/> at it.</summary>
    public string AddCommit(string repoId, string folder, string branch = "main", IEnumerable<(string Path, byte[] Content)>? extra = null, Func<string, bool>? include = null)
    {
        var files = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var file in Directory.GetFiles(folder, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(folder, file).Replace('\\', '/');
            if (include is null || include(relative)) files[relative] = File.ReadAllBytes(file);
        }
        foreach (var (path, content) in extra ?? []) files[path] = content;
        return AddCommit(repoId, files, branch);
    }

    public string AddCommit(string repoId, IReadOnlyDictionary<string, byte[]> files, string branch = "main")
    {
        var repo = AddRepo(repoId);
        var tree = files.ToDictionary(f => f.Key, f => FakeFile.Create(f.Key, f.Value), StringComparer.Ordinal);
        foreach (var f in tree.Values.Where(f => f.Lfs)) _blobsBySha256[f.Sha256] = f;
        // A made-up but stable commit id: the hash of the tree and the commits before it.
        var commit = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(
            repoId + repo.Commits.Count + string.Join("\n", tree.Values.OrderBy(f => f.Path, StringComparer.Ordinal).Select(f => f.Path + " " + f.GitSha1)))));
        repo.Commits[commit] = tree;
        repo.Refs[branch] = commit;
        return commit;
    }

    /// <summary>Adds a fault; it applies to the next <see cref="Fault.Times"/> matching requests.</summary>
    public void Add(Fault fault)
    {
        lock (_faults) _faults.Add(fault);
    }

    public void ClearFaults()
    {
        lock (_faults) _faults.Clear();
    }

    public void Dispose()
    {
        _stop.Cancel();
        _hub.Stop();
        _cdn.Stop();
    }

    private Fault? TakeFault(FaultStage stage, string? path, FaultKind? kind = null)
    {
        lock (_faults)
        {
            var fault = _faults.FirstOrDefault(f => f.Stage == stage && (f.Path is null || f.Path == path) && (kind is null || f.Kind == kind) && f.Times > 0);
            if (fault is null) return null;
            fault.Times--;
            // A fault with a Step applies further on each time (a connection that drops later and later).
            var applied = fault.Step == 0 ? fault : fault with { At = fault.At + fault.Step * fault.Taken };
            fault.Taken++;
            return applied;
        }
    }

    private bool HasFault(FaultStage stage, string? path, FaultKind kind)
    {
        lock (_faults) return _faults.Any(f => f.Stage == stage && (f.Path is null || f.Path == path) && f.Kind == kind && f.Times > 0);
    }

    private async Task AcceptLoop(TcpListener listener, bool cdn)
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = Task.Run(async () =>
            {
                using (client)
                {
                    try
                    {
                        await Serve(client, cdn);
                    }
                    catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
                    {
                        // The client went away (as it does when it times out); nothing to answer.
                    }
                }
            });
        }
    }

    private async Task Serve(TcpClient client, bool cdn)
    {
        var stream = client.GetStream();
        var head = await ReadHead(stream);
        if (head is null) return;
        var lines = head.Split("\r\n");
        var parts = lines[0].Split(' ');
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            int colon = line.IndexOf(':');
            if (colon > 0) headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }
        var method = parts[0];
        var target = parts[1];
        var pathAndQuery = target.Split('?', 2);
        var segments = pathAndQuery[0].TrimStart('/').Split('/');
        var response = new Response(stream, _stop.Token);
        if (cdn) await ServeCdn(method, segments, headers, response);
        else await ServeHub(method, segments, pathAndQuery.Length > 1 ? pathAndQuery[1] : "", headers, response);
    }

    private async Task ServeHub(string method, string[] segments, string query, Dictionary<string, string> headers, Response response)
    {
        headers.TryGetValue("Authorization", out var auth);
        string? token = auth is not null && auth.StartsWith("Bearer ", StringComparison.Ordinal) ? auth[7..] : null;

        // /api/models/{owner}/{name}/revision/{revision}
        if (segments.Length >= 6 && segments[0] == "api" && segments[1] == "models" && segments[4] == "revision")
        {
            var repoId = $"{segments[2]}/{segments[3]}";
            var revision = Uri.UnescapeDataString(string.Join('/', segments.Skip(5)));
            Record("hub", method, repoId, null, "api", headers);
            if (await ApplyHeaderFaults(FaultStage.Api, null, response)) return;
            if (await Resolve(repoId, revision, token, fileRequest: false, response) is not (var repo, var commit)) return;
            bool blobs = query.Split('&').Contains("blobs=true");
            var json = RepoJson(repo, commit, blobs) + new string(' ', FileListPadding);
            if (FileListWithoutLength)
                await response.Send(200, "OK", [("Content-Type", "application/json; charset=utf-8")], Encoding.UTF8.GetBytes(json), contentLength: null, headOnly: false);
            else await response.Json(200, json);
            return;
        }

        // /{owner}/{name}/resolve/{revision}/{path}
        if (segments.Length >= 5 && segments[2] == "resolve")
        {
            var repoId = $"{segments[0]}/{segments[1]}";
            var revision = Uri.UnescapeDataString(segments[3]);
            var path = string.Join('/', segments.Skip(4).Select(Uri.UnescapeDataString));
            var stage = method == "HEAD" ? FaultStage.Head : FaultStage.Content;
            Record("hub", method, repoId, path, method == "HEAD" ? "head" : "content", headers);
            if (await ApplyHeaderFaults(stage, path, response)) return;
            if (await Resolve(repoId, revision, token, fileRequest: true, response) is not (var repo, var commit)) return;
            if (!repo.Commits[commit].TryGetValue(path, out var file) || repo.Unservable.Contains(path))
            {
                await response.Error(404, "EntryNotFound", $"Entry not found", ("X-Repo-Commit", commit));
                return;
            }
            var common = new List<(string, string)> { ("X-Repo-Commit", commit), ("Accept-Ranges", "bytes") };
            if (file.Lfs)
            {
                // As the real Hub: the LFS file lives on a CDN with a signed URL; the linked ETag is its SHA-256.
                common.Add(("Location", $"{CdnBase}/cdn/{file.Sha256}?X-Amz-Signature={file.GitSha1[..16]}"));
                common.Add(("X-Linked-Etag", $"\"{file.Sha256}\""));
                common.Add(("X-Linked-Size", file.Content.Length.ToString(CultureInfo.InvariantCulture)));
                common.Add(("ETag", $"\"{FakeFile.GitBlobId(Encoding.ASCII.GetBytes(file.Pointer))}\""));
                await response.Send(302, "Found", common, body: ReadOnlyMemory<byte>.Empty, contentLength: 0, method == "HEAD");
                return;
            }
            common.Add(("ETag", $"\"{file.GitSha1}\""));
            if (method == "HEAD")
            {
                await response.Send(200, "OK", common, body: ReadOnlyMemory<byte>.Empty, contentLength: file.Content.Length, headOnly: true);
                return;
            }
            await ServeContent(file, headers, response, common);
            return;
        }
        Record("hub", method, null, null, "other", headers);
        await response.Error(404, null, "Not Found");
    }

    private async Task ServeCdn(string method, string[] segments, Dictionary<string, string> headers, Response response)
    {
        if (segments.Length == 2 && segments[0] == "cdn" && _blobsBySha256.TryGetValue(segments[1], out var file))
        {
            Record("cdn", method, null, file.Path, "content", headers);
            if (await ApplyHeaderFaults(FaultStage.Content, file.Path, response)) return;
            await ServeContent(file, headers, response, [("ETag", $"\"{file.Sha256}\""), ("Accept-Ranges", "bytes")]);
            return;
        }
        Record("cdn", method, null, null, "other", headers);
        await response.Error(404, null, "NoSuchKey");
    }

    /// <summary>A file's bytes, whole or from a Range's start, with the content faults applied.</summary>
    private async Task ServeContent(FakeFile file, Dictionary<string, string> headers, Response response, List<(string, string)> extraHeaders)
    {
        int inFlight = Interlocked.Increment(ref _contentInFlight);
        for (int seen = Volatile.Read(ref _maxContentInFlight); inFlight > seen; seen = Volatile.Read(ref _maxContentInFlight))
            if (Interlocked.CompareExchange(ref _maxContentInFlight, inFlight, seen) == seen) break;
        try
        {
            if (ContentDelay > TimeSpan.Zero) await Task.Delay(ContentDelay, _stop.Token);
            var content = file.Content;
            long start = 0;
            int status = 200;
            var responseHeaders = new List<(string, string)>(extraHeaders);
            if (headers.TryGetValue("Range", out var range) && TakeFault(FaultStage.Content, file.Path, FaultKind.IgnoreRange) is null)
            {
                start = long.Parse(range["bytes=".Length..].TrimEnd('-'), CultureInfo.InvariantCulture);
                if (start >= content.Length)
                {
                    responseHeaders.Add(("Content-Range", $"bytes */{content.Length}"));
                    await response.Send(416, "Range Not Satisfiable", responseHeaders, ReadOnlyMemory<byte>.Empty, 0, headOnly: false);
                    return;
                }
                status = 206;
                responseHeaders.Add(("Content-Range", $"bytes {start}-{content.Length - 1}/{content.Length}"));
            }
            var body = content.AsSpan((int)start).ToArray();
            if (TakeFault(FaultStage.Content, file.Path, FaultKind.Corrupt) is { } corrupt && corrupt.At >= start && corrupt.At < content.Length)
                body[corrupt.At - start] ^= 0x5A;
            long? stopAt = null;
            TimeSpan stall = TimeSpan.Zero;
            if (TakeFault(FaultStage.Content, file.Path, FaultKind.DropAt) is { } drop) stopAt = drop.At;
            else if (TakeFault(FaultStage.Content, file.Path, FaultKind.StallAt) is { } stalled) (stopAt, stall) = (stalled.At, stalled.Delay);
            int send = stopAt is { } at ? (int)Math.Clamp(at - start, 0, body.Length) : body.Length;
            await response.Send(status, status == 206 ? "Partial Content" : "OK", responseHeaders, body.AsMemory(0, send), body.Length, headOnly: false);
            if (stall > TimeSpan.Zero) await Task.Delay(stall, _stop.Token);
        }
        finally
        {
            Interlocked.Decrement(ref _contentInFlight);
        }
    }

    /// <summary>Delays and error statuses a test asked for; true when the request has been answered by a fault.</summary>
    private async Task<bool> ApplyHeaderFaults(FaultStage stage, string? path, Response response)
    {
        if (HasFault(stage, path, FaultKind.Delay) && TakeFault(stage, path, FaultKind.Delay) is { } delay)
            await Task.Delay(delay.Delay, _stop.Token);
        if (HasFault(stage, path, FaultKind.Status) && TakeFault(stage, path, FaultKind.Status) is { } status)
        {
            await response.Error(status.Status, status.ErrorCode, status.Message ?? "fault");
            return true;
        }
        return false;
    }

    /// <summary>The repo and commit a request names, or null once answered as the Hub answers (access refused, no such revision).</summary>
    private async Task<(FakeRepo Repo, string Commit)?> Resolve(string repoId, string revision, string? token, bool fileRequest, Response response)
    {
        if (Denied(repoId, token, fileRequest) is { } denied)
        {
            await response.Error(denied.Status, denied.Code, denied.Message);
            return null;
        }
        var repo = _repos[repoId];
        if (repo.Commit(revision) is not { } commit)
        {
            await response.Error(404, "RevisionNotFound", $"Invalid rev id: {revision}");
            return null;
        }
        return (repo, commit);
    }

    private (int Status, string Code, string Message)? Denied(string repoId, string? token, bool fileRequest)
    {
        if (token is not null && !Tokens.Contains(token))
            return (401, "", "Invalid credentials in Authorization header");
        if (!_repos.TryGetValue(repoId, out var repo) || (repo.Private && (token is null || !repo.Readers.Contains(token))))
            return (token is null ? 401 : 404, "RepoNotFound", "Repository not found");
        if (repo.Gated && fileRequest && (token is null || !repo.Readers.Contains(token)))
            return token is null
                ? (401, "GatedRepo", $"Access to model {repoId} is restricted. You must have access to it and be authenticated to access it. Please log in.")
                : (403, "GatedRepo", $"Access to model {repoId} is restricted and you are not in the authorized list. Visit https://huggingface.co/{repoId} to ask for access.");
        return null;
    }

    private static string RepoJson(FakeRepo repo, string commit, bool blobs)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("_id", "6543210fedcba9876543210f");
            json.WriteString("id", repo.Id);
            json.WriteBoolean("private", repo.Private);
            if (repo.Gated) json.WriteString("gated", "auto");
            else json.WriteBoolean("gated", false);
            json.WriteBoolean("disabled", false);
            json.WriteString("library_name", "diffusers");
            json.WriteStartArray("tags");
            json.WriteStringValue("diffusers");
            json.WriteStringValue("text-to-video");
            json.WriteEndArray();
            json.WriteString("pipeline_tag", "text-to-video");
            json.WriteNumber("downloads", 12345);
            json.WriteString("lastModified", "2024-08-29T12:00:00.000Z");
            json.WriteString("sha", commit);
            json.WriteStartArray("siblings");
            foreach (var f in repo.Commits[commit].Values.OrderBy(f => f.Path, StringComparer.Ordinal))
            {
                json.WriteStartObject();
                json.WriteString("rfilename", f.Path);
                if (blobs)
                {
                    json.WriteString("blobId", f.Lfs ? FakeFile.GitBlobId(Encoding.ASCII.GetBytes(f.Pointer)) : f.GitSha1);
                    json.WriteNumber("size", f.Content.Length);
                    if (f.Lfs)
                    {
                        json.WriteStartObject("lfs");
                        json.WriteString("sha256", f.Sha256);
                        json.WriteNumber("size", f.Content.Length);
                        json.WriteNumber("pointerSize", f.Pointer.Length);
                        json.WriteEndObject();
                    }
                }
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteStartObject("cardData");
            json.WriteString("license", "other");
            json.WriteEndObject();
            json.WriteStartArray("spaces");
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private void Record(string host, string method, string? repo, string? path, string kind, Dictionary<string, string> headers) =>
        Requests.Enqueue(new Request(host, method, repo, path, kind,
            headers.GetValueOrDefault("Range"), headers.GetValueOrDefault("Authorization"), headers.GetValueOrDefault("Accept-Encoding")));

    private static async Task<string?> ReadHead(NetworkStream stream)
    {
        var bytes = new List<byte>(1024);
        var one = new byte[1];
        while (bytes.Count < 64 * 1024)
        {
            if (await stream.ReadAsync(one) == 0) return null;
            bytes.Add(one[0]);
            int n = bytes.Count;
            if (n >= 4 && bytes[n - 4] == '\r' && bytes[n - 3] == '\n' && bytes[n - 2] == '\r' && bytes[n - 1] == '\n')
                return Encoding.ASCII.GetString(bytes.ToArray(), 0, n - 4);
        }
        return null;
    }

    /// <summary>One response on a connection that is closed after it.</summary>
    private sealed class Response(NetworkStream stream, CancellationToken stop)
    {
        /// <param name="contentLength">Null: no Content-Length, the body ends with the connection.</param>
        public async Task Send(int status, string reason, IEnumerable<(string Name, string Value)> headers, ReadOnlyMemory<byte> body, long? contentLength, bool headOnly)
        {
            var head = new StringBuilder($"HTTP/1.1 {status} {reason}\r\n");
            foreach (var (name, value) in headers) head.Append(name).Append(": ").Append(value).Append("\r\n");
            if (contentLength is { } length) head.Append("Content-Length: ").Append(length.ToString(CultureInfo.InvariantCulture)).Append("\r\n");
            head.Append("Connection: close\r\n\r\n");
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()), stop);
            if (!headOnly)
            {
                // In pieces, as a network delivers them: the client's reads see partial bodies.
                for (int at = 0; at < body.Length; at += 64 * 1024)
                    await stream.WriteAsync(body.Slice(at, Math.Min(64 * 1024, body.Length - at)), stop);
            }
            await stream.FlushAsync(stop);
        }

        public Task Json(int status, string json) =>
            Send(status, "OK", [("Content-Type", "application/json; charset=utf-8")], Encoding.UTF8.GetBytes(json), Encoding.UTF8.GetByteCount(json), headOnly: false);

        public async Task Error(int status, string? code, string message, params (string, string)[] extra)
        {
            var headers = new List<(string, string)>(extra) { ("Content-Type", "application/json; charset=utf-8") };
            if (!string.IsNullOrEmpty(code)) headers.Add(("X-Error-Code", code));
            headers.Add(("X-Error-Message", message));
            using var buffer = new MemoryStream();
            using (var json = new Utf8JsonWriter(buffer))
            {
                json.WriteStartObject();
                json.WriteString("error", message);
                json.WriteEndObject();
            }
            var body = buffer.ToArray();
            await Send(status, ReasonPhrase(status), headers, body, body.Length, headOnly: false);
        }

        private static string ReasonPhrase(int status) => status switch
        {
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => "Error",
        };
    }
}

/// <summary>A request the fake Hub received.</summary>
/// <param name="Host">"hub" or "cdn".</param>
/// <param name="Kind">"api", "head", "content" or "other".</param>
public sealed record Request(string Host, string Method, string? Repo, string? FilePath, string Kind, string? Range, string? Authorization, string? AcceptEncoding);

public sealed class FakeRepo(string id)
{
    public string Id { get; } = id;

    public ConcurrentDictionary<string, IReadOnlyDictionary<string, FakeFile>> Commits { get; } = new(StringComparer.Ordinal);

    public ConcurrentDictionary<string, string> Refs { get; } = new(StringComparer.Ordinal);

    public bool Private { get; set; }

    public bool Gated { get; set; }

    /// <summary>Tokens with read access (for private and gated repos).</summary>
    public HashSet<string> Readers { get; } = new(StringComparer.Ordinal);

    /// <summary>Files the file list names but the resolve endpoint answers 404 for.</summary>
    public HashSet<string> Unservable { get; } = new(StringComparer.Ordinal);

    public string? Commit(string revision) =>
        Refs.TryGetValue(revision, out var c) ? c : Commits.ContainsKey(revision) ? revision : null;
}

/// <summary>A file of a commit, with the ids the Hub gives it.</summary>
public sealed record FakeFile(string Path, byte[] Content, bool Lfs, string Sha256, string GitSha1, string Pointer)
{
    /// <summary>The default .gitattributes of a Hub repo stores these with LFS.</summary>
    private static readonly string[] s_lfsExtensions = [".safetensors", ".bin", ".model", ".pt", ".msgpack", ".gif"];

    public static FakeFile Create(string path, byte[] content)
    {
        var sha256 = Convert.ToHexStringLower(SHA256.HashData(content));
        bool lfs = s_lfsExtensions.Contains(System.IO.Path.GetExtension(path));
        // git's LFS pointer: what the repo itself stores in place of an LFS file.
        var pointer = string.Format(CultureInfo.InvariantCulture, "version https://git-lfs.github.com/spec/v1\noid sha256:{0}\nsize {1}\n", sha256, content.Length);
        return new FakeFile(path, content, lfs, sha256, GitBlobId(content), pointer);
    }

    /// <summary>git's blob id: SHA-1 of "blob {size}\0" and the content.</summary>
    public static string GitBlobId(byte[] content) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {content.Length}\0"), .. content]));
}

public enum FaultStage
{
    Api,
    Head,
    Content,
}

public enum FaultKind
{
    /// <summary>Close the connection once the file's byte <see cref="Fault.At"/> is reached (all of the headers promised more).</summary>
    DropAt,

    /// <summary>Send up to byte <see cref="Fault.At"/>, then nothing for <see cref="Fault.Delay"/>.</summary>
    StallAt,

    /// <summary>Flip the bits of byte <see cref="Fault.At"/>.</summary>
    Corrupt,

    /// <summary>Answer a Range request with the whole file (200).</summary>
    IgnoreRange,

    /// <summary>Wait <see cref="Fault.Delay"/> before answering at all.</summary>
    Delay,

    /// <summary>Answer <see cref="Fault.Status"/> (with <see cref="Fault.ErrorCode"/>).</summary>
    Status,
}

/// <summary>Something for the fake Hub to do wrong, to the next <see cref="Times"/> requests that match.</summary>
/// <param name="Path">The repo file (null: any; ignored for the API).</param>
/// <param name="Step">How much further <paramref name="At"/> is each time the fault applies.</param>
public sealed record Fault(FaultStage Stage, FaultKind Kind, string? Path = null, long At = 0, TimeSpan Delay = default, int Status = 0, string? ErrorCode = null, string? Message = null, long Step = 0)
{
    public int Times { get; set; } = 1;

    /// <summary>How many times it has applied.</summary>
    public int Taken { get; set; }
}
