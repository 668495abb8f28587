using System.Text.RegularExpressions;

namespace CogVideoX.Weights;

/// <summary>
/// One repo's folder in the Hugging Face cache, written as huggingface_hub writes it so that either can use what
/// the other fetched: <c>blobs/&lt;etag&gt;</c> holds each file's content under its ETag (the SHA-256 for LFS files,
/// the git blob id for small ones), <c>blobs/&lt;etag&gt;.incomplete</c> a partial download,
/// <c>snapshots/&lt;commit&gt;/&lt;path&gt;</c> a relative symbolic link to the blob, and
/// <c>refs/&lt;revision&gt;</c> the commit a branch or tag named. Every write is a rename of a finished temporary,
/// so a reader (or a crash) never sees half a blob, link or ref.
/// </summary>
internal sealed partial class HubCacheFolder
{
    public const string IncompleteSuffix = ".incomplete";

    public HubCacheFolder(string cache, string repoId)
    {
        Cache = cache;
        Root = Path.Combine(cache, ModelLocator.RepoFolderName(repoId));
    }

    public string Cache { get; }

    /// <summary>models--owner--name.</summary>
    public string Root { get; }

    public string Blobs => Path.Combine(Root, "blobs");

    public string Blob(string etag) => Path.Combine(Blobs, etag);

    public string Incomplete(string etag) => Blob(etag) + IncompleteSuffix;

    public string Snapshot(string commit) => Path.Combine(Root, "snapshots", commit);

    public string Entry(string commit, string path) => Path.Combine(Snapshot(commit), path.Replace('/', Path.DirectorySeparatorChar));

    public string Ref(string revision) => Path.Combine(Root, "refs", revision.Replace('/', Path.DirectorySeparatorChar));

    /// <summary>Whether a snapshot entry is there and readable: a link whose blob is missing does not count.</summary>
    public bool HasEntry(string commit, string path) => IsPresent(Entry(commit, path));

    /// <summary>A file that exists and, if it is a link, leads to a file that exists (File.Exists is true for a dangling link).</summary>
    public static bool IsPresent(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) return false;
        if (info.LinkTarget is null) return true;
        try
        {
            return info.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true };
        }
        catch (IOException)
        {
            return false; // a link loop
        }
    }

    /// <summary>
    /// Points <c>snapshots/&lt;commit&gt;/&lt;path&gt;</c> at the blob with a relative link (so the cache can be moved),
    /// made under a temporary name and renamed over the entry. Where links cannot be made (Windows without the
    /// privilege) the entry is a copy of the blob, as huggingface_hub does.
    /// </summary>
    public void Link(string commit, string path, string etag)
    {
        var entry = Entry(commit, path);
        var folder = Path.GetDirectoryName(entry)!;
        var blob = Blob(etag);
        var temporary = Path.Combine(folder, $".{Path.GetFileName(entry)}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(folder);
            try
            {
                File.CreateSymbolicLink(temporary, Path.GetRelativePath(folder, blob));
            }
            catch (Exception e) when ((e is IOException or UnauthorizedAccessException) && OperatingSystem.IsWindows())
            {
                File.Copy(blob, temporary);
            }
            File.Move(temporary, entry, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(temporary);
            throw Unwritable(entry, e);
        }
    }

    /// <summary>Records that <paramref name="revision"/> (a branch or tag) is <paramref name="commit"/>; nothing for a commit itself.</summary>
    public void WriteRef(string revision, string commit)
    {
        if (revision == commit) return;
        var path = Ref(revision);
        try
        {
            if (File.Exists(path) && File.ReadAllText(path).Trim() == commit) return;
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            var temporary = $"{path}.{Guid.NewGuid():N}.tmp";
            try
            {
                File.WriteAllText(temporary, commit);
                File.Move(temporary, path, overwrite: true);
            }
            finally
            {
                TryDelete(temporary);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Unwritable(path, e);
        }
    }

    /// <summary>Moves a verified download into place; when a blob of that name is already there (another process finished it first), keeps that one.</summary>
    public void Publish(string incomplete, string etag)
    {
        var blob = Blob(etag);
        try
        {
            File.Move(incomplete, blob, overwrite: false);
        }
        catch (IOException) when (File.Exists(blob))
        {
            TryDelete(incomplete);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Unwritable(blob, e);
        }
    }

    public HubException Unwritable(string path, Exception e) =>
        new(HubFailure.CacheNotWritable, $"cannot write {path} in the Hugging Face cache ({e.Message}); make the cache ({Cache}) writable, or set HF_HUB_CACHE (or HF_HOME) to a writable folder", e);

    /// <summary>A repo file name that stays inside the snapshot folder: relative, '/'-separated, no '..' or empty parts.</summary>
    public static bool IsSafeRelativePath(string path) =>
        path.Length is > 0 and <= 1024 && !path.StartsWith('/') && !path.Contains('\\') && !path.Contains('\0')
        && path.Split('/').All(part => part.Length > 0 && part is not "." and not "..");

    /// <summary>An ETag usable as a blob file name (hex digests in practice).</summary>
    public static bool IsSafeEtag(string etag) =>
        SafeEtagPattern().IsMatch(etag) && !etag.EndsWith(IncompleteSuffix, StringComparison.Ordinal) && etag is not "." and not "..";

    internal static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Only a leftover temporary; the real state never depends on it.
        }
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,128}$")]
    private static partial Regex SafeEtagPattern();
}
