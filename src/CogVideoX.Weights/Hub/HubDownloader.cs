using System.Buffers;
using System.Collections.Concurrent;
using System.Net;

namespace CogVideoX.Weights;

/// <summary>
/// Fetches files of one repo commit into the cache, several at once: for each file a HEAD (ETag, size, location),
/// then the bytes into <c>blobs/&lt;etag&gt;.incomplete</c> — resumed with <c>Range</c> from what is there, hashed
/// as they arrive, retried with a doubling wait when the connection drops or stalls — verified against the ETag,
/// renamed to <c>blobs/&lt;etag&gt;</c>, and linked from the snapshot. A file that fails leaves no blob and no link
/// behind it; a partial download stays (unless it proved corrupt) for the next try to resume.
/// </summary>
internal sealed class HubDownloader
{
    private const int BufferSize = 1 << 20;

    private readonly HubSettings _settings;
    private readonly HubClient _client;
    private readonly HubCacheFolder _cache;
    private readonly RepoInfo _repo;
    private readonly IDownloadProgress _progress;
    private readonly ConcurrentDictionary<string, Lazy<Task>> _blobs = new(StringComparer.Ordinal);
    private long _remaining;

    public HubDownloader(HubClient client, HubCacheFolder cache, RepoInfo repo, IDownloadProgress progress)
    {
        _settings = client.Settings;
        _client = client;
        _cache = cache;
        _repo = repo;
        _progress = progress;
    }

    private string Commit => _repo.Commit;

    private int _fetched;
    private long _fetchedBytes;

    /// <summary>Files fetched (not found in the cache) so far, and their bytes.</summary>
    public int Fetched => Volatile.Read(ref _fetched);

    public long FetchedBytes => Interlocked.Read(ref _fetchedBytes);

    /// <summary>Fetches the files of <paramref name="paths"/> that the snapshot lacks; throws the first failure once every file has ended.</summary>
    public async Task FetchAsync(IReadOnlyList<string> paths, CancellationToken ct)
    {
        var toFetch = paths.Where(p => !_cache.HasEntry(Commit, p) || !CachedEntryIsSound(p)).ToList();
        _progress.Planned(toFetch.Select(p => (p, _repo.File(p)?.Size)).ToList(), paths.Count - toFetch.Count);
        if (toFetch.Count == 0) return;
        _remaining = CheckSpace(toFetch);

        var failures = new ConcurrentDictionary<string, HubException>(StringComparer.Ordinal);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var options = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, _settings.MaxParallelDownloads), CancellationToken = stop.Token };
        try
        {
            await Parallel.ForEachAsync(toFetch, options, async (path, token) =>
            {
                try
                {
                    await FetchFileAsync(path, token).ConfigureAwait(false);
                }
                catch (HubException e)
                {
                    failures[path] = e;
                    // What will fail every file (access, disk, cache) stops the others; a file's own trouble does not.
                    if (e.Failure is HubFailure.Unauthorized or HubFailure.Gated or HubFailure.RepoNotFound or HubFailure.RevisionNotFound
                        or HubFailure.DiskFull or HubFailure.CacheNotWritable or HubFailure.BadSettings)
                        await stop.CancelAsync().ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested && !ct.IsCancellationRequested)
                {
                    // Stopped because another file failed for good; its partial download is kept.
                }
            }).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested && !failures.IsEmpty)
        {
        }
        if (!failures.IsEmpty) throw Summarize(toFetch, failures);
    }

    private async Task FetchFileAsync(string path, CancellationToken ct)
    {
        var file = await _client.GetFileMetadataAsync(_repo.RepoId, Commit, path, ct).ConfigureAwait(false);
        if (!HubCacheFolder.IsSafeEtag(file.Etag))
            throw new HubException(HubFailure.BadResponse, $"{_repo.RepoId}: {path}: the server names the file by the ETag '{file.Etag}', which cannot be a blob name in the cache; check HF_ENDPOINT and any proxy");
        // Two paths with the same content share one blob: one download, two links.
        var mine = new Lazy<Task>(() => EnsureBlobAsync(file, ct));
        var blob = _blobs.GetOrAdd(file.Etag, mine);
        await blob.Value.ConfigureAwait(false);
        if (!ReferenceEquals(blob, mine)) _progress.FileDone(path, file.Size, "same content as another file");
        _cache.Link(Commit, path, file.Etag);
    }

    private async Task EnsureBlobAsync(RemoteFile file, CancellationToken ct)
    {
        var cached = _cache.Blob(file.Etag);
        if (HubCacheFolder.IsPresent(cached))
        {
            if (Damage(cached, file.Size, file.Etag) is not { } damage)
            {
                _progress.FileDone(file.Path, file.Size, "already in the cache's blobs");
                return;
            }
            _progress.Note(file.Path, $"the cached blob {cached} is damaged ({damage}): downloading the file again");
            DeleteDamaged(cached);
        }
        try
        {
            Directory.CreateDirectory(_cache.Blobs);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw _cache.Unwritable(_cache.Blobs, e);
        }
        await DownloadBlobAsync(file, ct).ConfigureAwait(false);
    }

    private async Task DownloadBlobAsync(RemoteFile file, CancellationToken ct)
    {
        var incomplete = _cache.Incomplete(file.Etag);
        var stream = OpenIncomplete(incomplete);
        using var verifier = new BlobVerifier(file.Etag, file.Size);
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        long have = 0;
        bool corrupt = false;
        try
        {
            await using (stream.ConfigureAwait(false))
            {
                have = stream.Length;
                if (have > file.Size)
                {
                    // Longer than the file can be: not a prefix of it.
                    SetLength(stream, incomplete, 0);
                    have = 0;
                }
                else if (have > 0)
                {
                    try
                    {
                        await HashPrefixAsync(stream, have, verifier, buffer, ct).ConfigureAwait(false);
                    }
                    catch (IOException e)
                    {
                        throw new HubException(HubFailure.CacheNotWritable, $"cannot read the partial download {incomplete} ({e.Message}); delete it and run the download again", e);
                    }
                }
                _progress.FileStarted(file.Path, file.Size, have);
                have = await TransferAsync(file, stream, incomplete, verifier, buffer, have, ct).ConfigureAwait(false);

                var digest = verifier.Digest();
                if (digest is not null && digest != verifier.Etag)
                {
                    corrupt = true;
                    throw new HubException(HubFailure.ChecksumMismatch,
                        $"{_repo.RepoId}: {file.Path}: the downloaded bytes have {verifier.Algorithm} {digest}, but the Hub names the file {verifier.Etag}; " +
                        $"the download was corrupted (or the server sent other content), so it was deleted ({incomplete}) and nothing was added to the cache; run the download again");
                }
                try
                {
                    await stream.FlushAsync(ct).ConfigureAwait(false);
                    stream.Flush(flushToDisk: true);
                }
                catch (IOException e)
                {
                    throw WriteFailed(file, incomplete, have, e);
                }
            }
            _cache.Publish(incomplete, file.Etag);
            Interlocked.Increment(ref _fetched);
            Interlocked.Add(ref _fetchedBytes, file.Size);
            _progress.FileDone(file.Path, file.Size, verifier.Algorithm is { } a ? $"{a} verified" : "size checked (the ETag is not a digest)");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            if (corrupt) HubCacheFolder.TryDelete(incomplete);
        }
    }

    /// <summary>
    /// Whether a snapshot entry already there holds what the file list says (size, and the hash where the ETag is one):
    /// a truncated or altered blob (a crash, a disk error, a careless copy) is deleted and fetched again rather
    /// than reported complete.
    /// </summary>
    private bool CachedEntryIsSound(string path)
    {
        if (_repo.File(path) is not { Size: { } size } sibling) return true;
        var entry = new FileInfo(_cache.Entry(Commit, path));
        var target = entry.LinkTarget is null ? entry : entry.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? entry;
        var etag = sibling.Sha256 ?? sibling.BlobId;
        if (Damage(target.FullName, size, etag) is not { } damage) return true;
        _progress.Note(path, $"the cached copy {target.FullName} is damaged ({damage}): downloading it again");
        DeleteDamaged(target.FullName);
        HubCacheFolder.TryDelete(entry.FullName);
        return false;
    }

    /// <summary>What is wrong with a cached file (its size, or its hash when the ETag is a digest); null when nothing is.</summary>
    private static string? Damage(string path, long size, string? etag)
    {
        try
        {
            long length = new FileInfo(path).Length;
            if (length != size) return $"{Sizes.Format(length)} instead of {Sizes.Format(size)}";
            if (etag is null) return null;
            using var verifier = new BlobVerifier(etag, size);
            if (verifier.Algorithm is null) return null;
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize);
            var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
            try
            {
                int n;
                while ((n = stream.Read(buffer, 0, buffer.Length)) > 0) verifier.Append(buffer.AsSpan(0, n));
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
            var digest = verifier.Digest();
            return digest == verifier.Etag ? null : $"its {verifier.Algorithm} is {digest}, not {verifier.Etag}";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"unreadable: {e.Message}";
        }
    }

    private void DeleteDamaged(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HubException(HubFailure.CacheNotWritable, $"cannot delete the damaged cached file {path} ({e.Message}); delete it by hand, or make the cache ({_cache.Cache}) writable, and run again", e);
        }
    }

    /// <summary>Brings the file from <paramref name="have"/> bytes to its full size, retrying what a network can do to a download.</summary>
    private async Task<long> TransferAsync(RemoteFile file, FileStream stream, string incomplete, BlobVerifier verifier, byte[] buffer, long have, CancellationToken ct)
    {
        // Bounded in count and in time whatever the server does: tries without new bytes, tries in all, and time
        // since bytes last arrived that had never arrived before (a restarted transfer repeating old ground is no progress).
        int failedTries = 0, tries = 0;
        long furthest = have;
        bool restarts = false;
        var sinceProgress = System.Diagnostics.Stopwatch.StartNew();
        while (have < file.Size)
        {
            string? retry = null;
            try
            {
                using var response = await _client.GetContentAsync(_repo.RepoId, Commit, file, have, ct).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable || (have > 0 && response.StatusCode == HttpStatusCode.OK))
                {
                    // The server will not resume here (it ignored Range, or refused it): start the file over.
                    _progress.Note(file.Path, response.StatusCode == HttpStatusCode.OK
                        ? $"the server ignored the request to resume at {Sizes.Format(have)}: downloading the file again from its first byte"
                        : $"the server refused to resume at {Sizes.Format(have)} (416): downloading the file again from its first byte");
                    // From now on every try starts the file over, so getting further is no reason to keep trying.
                    restarts = true;
                    SetLength(stream, incomplete, 0);
                    Interlocked.Add(ref _remaining, have);
                    have = 0;
                    verifier.Reset();
                    _progress.FileAdvanced(file.Path, 0);
                    if (response.StatusCode != HttpStatusCode.OK)
                        throw new TransientHubException("the server refused the resume request", HubFailure.BadResponse);
                }
                else if (response.StatusCode == HttpStatusCode.PartialContent && response.Content.Headers.ContentRange?.From != have)
                {
                    throw new HubException(HubFailure.BadResponse,
                        $"{_repo.RepoId}: {file.Path}: asked for the bytes from {have}, the server sent {response.Content.Headers.ContentRange?.ToString() ?? "a part without Content-Range"}; check HF_ENDPOINT and any proxy");
                }
                stream.Position = have;
                have = await CopyAsync(response, file, stream, incomplete, verifier, buffer, have, ct).ConfigureAwait(false);
                if (have < file.Size)
                    retry = $"the connection closed after {Sizes.Format(have)} of {Sizes.Format(file.Size)}";
            }
            catch (TransientHubException e)
            {
                have = stream.Position; // every byte written is hashed: the file resumes from here
                retry = e.Message;
            }
            catch (HubException e) when (e.Failure is HubFailure.ConnectionLost or HubFailure.ServerError)
            {
                throw Lost(file, incomplete, stream.Position, e.Message, e);
            }
            catch (HttpIOException e) when (e.HttpRequestError == HttpRequestError.ResponseEnded)
            {
                have = stream.Position;
                retry = $"the connection closed after {Sizes.Format(have)} of {Sizes.Format(file.Size)}";
            }
            catch (Exception e) when (HubClient.IsNetworkFailure(e, ct))
            {
                have = stream.Position;
                retry = $"the connection failed after {Sizes.Format(have)} of {Sizes.Format(file.Size)} ({HubClient.Reason(e)})";
            }
            if (retry is null) continue;
            if (have > furthest)
            {
                furthest = have;
                if (!restarts)
                {
                    failedTries = 0;
                    sinceProgress.Restart();
                }
            }
            failedTries++;
            tries++;
            if (failedTries >= _settings.MaxAttempts)
                throw Lost(file, incomplete, have, restarts
                    ? $"{retry} ({_settings.MaxAttempts} tries; the server does not resume downloads, so each try started the file over)"
                    : $"{retry} ({_settings.MaxAttempts} tries without new data)", null);
            if (tries >= _settings.MaxTotalAttempts)
                throw Lost(file, incomplete, have, $"{retry} ({tries} tries in all, the most for one file)", null);
            if (sinceProgress.Elapsed >= _settings.RetryTimeLimit)
                throw Lost(file, incomplete, have, $"{retry} (no new data for {HubClient.Seconds(sinceProgress.Elapsed)}, more than the {HubClient.Seconds(_settings.RetryTimeLimit)} allowed)", null);
            var delay = _client.BackoffDelay(failedTries);
            _progress.Note(file.Path, $"{retry}; resuming at {Sizes.Format(have)} in {HubClient.Seconds(delay)} (try {failedTries + 1} of {_settings.MaxAttempts})");
            await Task.Delay(delay, ct).ConfigureAwait(false);
        }
        return have;
    }

    /// <summary>Appends a response body to the file, hashing it; a body silent for longer than the stall timeout is a failure to retry.</summary>
    private async Task<long> CopyAsync(HttpResponseMessage response, RemoteFile file, FileStream stream, string incomplete, BlobVerifier verifier, byte[] buffer, long have, CancellationToken ct)
    {
        var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        await using (body.ConfigureAwait(false))
        {
            using var stall = CancellationTokenSource.CreateLinkedTokenSource(ct);
            while (true)
            {
                int n;
                stall.CancelAfter(_settings.StallTimeout);
                try
                {
                    n = await body.ReadAsync(buffer, stall.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    throw new TransientHubException($"no data for {HubClient.Seconds(_settings.StallTimeout)} after {Sizes.Format(have)} of {Sizes.Format(file.Size)} (a stalled connection; HF_HUB_DOWNLOAD_TIMEOUT sets the limit)", HubFailure.ConnectionLost);
                }
                if (n == 0) return have;
                if (have + n > file.Size)
                {
                    SetLength(stream, incomplete, 0);
                    throw new HubException(HubFailure.BadResponse,
                        $"{_repo.RepoId}: {file.Path}: the server sent more than the {Sizes.Format(file.Size)} it announced; the partial download was discarded; check HF_ENDPOINT and any proxy, or try again later");
                }
                try
                {
                    await stream.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                }
                catch (IOException e)
                {
                    throw WriteFailed(file, incomplete, have, e);
                }
                verifier.Append(buffer.AsSpan(0, n));
                have += n;
                Interlocked.Add(ref _remaining, -n);
                _progress.FileAdvanced(file.Path, have);
            }
        }
    }

    private FileStream OpenIncomplete(string incomplete)
    {
        try
        {
            // Exclusive: a second writer (another cogvideox process) must not append to the same partial file.
            return new FileStream(incomplete, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 0, FileOptions.Asynchronous);
        }
        catch (IOException e) when (File.Exists(incomplete) && IsLocked(e))
        {
            throw new HubException(HubFailure.CacheNotWritable,
                $"{incomplete} is being written by another download (another cogvideox process?); wait for it to finish, or stop it, and run again", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw _cache.Unwritable(incomplete, e);
        }
    }

    private static async Task HashPrefixAsync(FileStream stream, long length, BlobVerifier verifier, byte[] buffer, CancellationToken ct)
    {
        stream.Position = 0;
        long left = length;
        while (left > 0)
        {
            int n = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), ct).ConfigureAwait(false);
            if (n == 0) throw new IOException($"{stream.Name}: shorter than its length");
            verifier.Append(buffer.AsSpan(0, n));
            left -= n;
        }
    }

    private void SetLength(FileStream stream, string incomplete, long length)
    {
        try
        {
            stream.SetLength(length);
        }
        catch (IOException e)
        {
            throw _cache.Unwritable(incomplete, e);
        }
    }

    /// <summary>Checks the disk has room for what is still to come (known sizes, less blobs already there and partial downloads).</summary>
    private long CheckSpace(IReadOnlyList<string> paths)
    {
        long needed = 0;
        foreach (var path in paths)
        {
            if (_repo.File(path) is not { Size: { } size } sibling) continue;
            var etag = sibling.Sha256 ?? sibling.BlobId;
            if (etag is not null && HubCacheFolder.IsSafeEtag(etag))
            {
                if (HubCacheFolder.IsPresent(_cache.Blob(etag))) continue;
                var partial = new FileInfo(_cache.Incomplete(etag));
                if (partial.Exists && partial.Length <= size) size -= partial.Length;
            }
            needed += size;
        }
        var probe = ExistingAncestor(_cache.Root);
        if (probe is not null && _settings.FreeSpace(probe) is { } free && free < needed)
            throw new HubException(HubFailure.DiskFull,
                $"not enough disk space for {_repo.RepoId}: the files still to download take {Sizes.Format(needed)}, but only {Sizes.Format(free)} is free on the disk holding {_cache.Root}; " +
                "free some space, or set HF_HUB_CACHE (or HF_HOME) to a folder on a larger disk");
        return needed;
    }

    private static string? ExistingAncestor(string path)
    {
        for (var dir = new DirectoryInfo(path); dir is not null; dir = dir.Parent)
            if (dir.Exists) return dir.FullName;
        return null;
    }

    private HubException WriteFailed(RemoteFile file, string incomplete, long have, IOException e)
    {
        if (!IsDiskFull(e)) return _cache.Unwritable(incomplete, e);
        var probe = ExistingAncestor(_cache.Blobs);
        var free = probe is null ? null : _settings.FreeSpace(probe);
        return new HubException(HubFailure.DiskFull,
            $"the disk is full: writing {file.Path} of {_repo.RepoId} to {incomplete} failed ({e.Message}); " +
            $"the download still needs {Sizes.Format(Math.Max(0, Interlocked.Read(ref _remaining)))}{(free is { } f ? $" and {Sizes.Format(f)} is free there" : "")}. " +
            $"Free some space, or set HF_HUB_CACHE (or HF_HOME) to a folder on a larger disk, and run again: the {Sizes.Format(have)} already written are kept and will be resumed", e);
    }

    private HubException Lost(RemoteFile file, string incomplete, long have, string reason, Exception? inner)
    {
        var message = $"{_repo.RepoId}: {file.Path}: {reason}. " +
            (have > 0
                ? $"The {Sizes.Format(have)} of {Sizes.Format(file.Size)} downloaded so far are kept in {incomplete}, and the next try resumes from there"
                : "Nothing of it was downloaded") +
            "; check the network, then run the download again";
        return inner is null ? new HubException(HubFailure.ConnectionLost, message) : new HubException(HubFailure.ConnectionLost, message, inner);
    }

    private HubException Summarize(IReadOnlyList<string> paths, ConcurrentDictionary<string, HubException> failures)
    {
        var failed = paths.Where(failures.ContainsKey).ToList();
        var first = failures[failed[0]];
        var message = first.Message;
        if (failed.Count > 1)
            message += $" ({failed.Count - 1} more file{(failed.Count > 2 ? "s" : "")} failed: {string.Join(", ", failed.Skip(1))})";
        int done = paths.Count(p => _cache.HasEntry(Commit, p));
        bool partial = Directory.Exists(_cache.Blobs) && Directory.EnumerateFiles(_cache.Blobs, "*" + HubCacheFolder.IncompleteSuffix).Any(f => new FileInfo(f).Length > 0);
        if (done > 0 || partial)
            message += $". {done} of the {paths.Count} files being fetched are in the cache{(partial ? "; partial downloads are kept in " + _cache.Blobs + " and resumed by the next try" : "")}";
        return new HubException(first.Failure, message, first);
    }

    /// <summary>ENOSPC (28) or EDQUOT (122) on Unix, ERROR_HANDLE_DISK_FULL / ERROR_DISK_FULL on Windows.</summary>
    internal static bool IsDiskFull(IOException e) =>
        OperatingSystem.IsWindows() ? (e.HResult & 0xFFFF) is 39 or 112 : e.HResult is 28 or 122;

    /// <summary>EWOULDBLOCK/EAGAIN (the advisory lock) on Unix, ERROR_SHARING_VIOLATION / ERROR_LOCK_VIOLATION on Windows.</summary>
    private static bool IsLocked(IOException e) =>
        OperatingSystem.IsWindows() ? (e.HResult & 0xFFFF) is 32 or 33 : e.HResult is 11 or 35;
}
