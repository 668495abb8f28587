using System.Globalization;
using CogVideoX.Engine;

namespace CogVideoX.Media;

/// <summary>
/// Turns the operating system's file errors into messages the user can act on: a full disk, a read-only file
/// system, a missing permission or a file where a folder should be — with the path, instead of an internal error.
/// </summary>
public static class FileErrors
{
    // Linux errno values; .NET puts the raw errno into IOException.HResult on Unix.
    private const int ENOTDIR = 20, ENOSPC = 28, EROFS = 30, EDQUOT = 122;

    public static bool IsDiskFull(Exception e) =>
        e is IOException && (e.HResult is ENOSPC or EDQUOT
                             || e.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase)
                             || e.Message.Contains("quota exceeded", StringComparison.OrdinalIgnoreCase)
                             || e.Message.Contains("not enough space", StringComparison.OrdinalIgnoreCase));

    public static bool IsReadOnly(Exception e) =>
        e is IOException && (e.HResult == EROFS || e.Message.Contains("Read-only file system", StringComparison.OrdinalIgnoreCase));

    /// <summary>True for the exceptions a file operation throws on a bad path or device (not programming errors).</summary>
    public static bool IsFileError(Exception e) => e is IOException or UnauthorizedAccessException or NotSupportedException;

    /// <summary>
    /// A user-facing error for <paramref name="e"/>, thrown while writing <paramref name="what"/> (e.g. "the video")
    /// at <paramref name="path"/>.
    /// </summary>
    public static CogVideoXException Explain(Exception e, string what, string path)
    {
        if (e is CogVideoXException known) return known;
        var folder = ExistingFolderOf(path);
        if (IsDiskFull(e))
            return new CogVideoXException($"disk full: could not write {what} {path} (no space left on the device of {folder}); free some space or write to another disk", e);
        if (IsReadOnly(e))
            return new CogVideoXException($"could not write {what} {path}: {folder} is on a read-only file system; choose a folder on a writable disk", e);
        if (e is UnauthorizedAccessException)
            return new CogVideoXException($"could not write {what} {path}: permission denied; choose a folder you can write to or change its permissions", e);
        if (e is IOException && e.HResult == ENOTDIR || FileInPath(path) is not null)
            return new CogVideoXException($"could not write {what} {path}: {FileInPath(path) ?? "part of the path"} is a file, not a folder; choose another path", e);
        return new CogVideoXException($"could not write {what} {path}: {e.Message}", e);
    }

    /// <summary>
    /// A message for a file error whose operation is not known here: the runtime's own text (which names the path)
    /// led by what kind of failure it is and followed by what to do.
    /// </summary>
    public static string Describe(Exception e)
    {
        if (e is CogVideoXException) return e.Message;
        if (IsDiskFull(e)) return $"disk full: {e.Message}; free some space or write to another disk";
        if (IsReadOnly(e)) return $"read-only file system: {e.Message}; choose a folder on a writable disk";
        if (e is UnauthorizedAccessException) return $"permission denied: {e.Message}; choose a folder you can write to or change its permissions";
        return $"{e.GetType().Name}: {e.Message}";
    }

    /// <summary>The nearest folder of <paramref name="path"/> that exists (the one a missing folder would be made in).</summary>
    private static string ExistingFolderOf(string path)
    {
        var p = Path.GetDirectoryName(Path.GetFullPath(path));
        while (p is not null && !Directory.Exists(p) && Path.GetDirectoryName(p) is { } parent) p = parent;
        return p ?? path;
    }

    internal static string Bytes(long n)
    {
        var c = CultureInfo.InvariantCulture;
        return n >= 1L << 30 ? (n / (double)(1L << 30)).ToString("0.0 GiB", c)
            : n >= 1L << 20 ? (n / (double)(1L << 20)).ToString("0.0 MiB", c)
            : n >= 1024 ? (n / 1024.0).ToString("0.0 KiB", c)
            : n.ToString(c) + " bytes";
    }

    /// <summary>The first ancestor of <paramref name="path"/> that is a file (so no folder can be made under it), or null.</summary>
    private static string? FileInPath(string path)
    {
        var p = Path.GetDirectoryName(Path.GetFullPath(path));
        while (p is not null)
        {
            if (File.Exists(p)) return p;
            if (Directory.Exists(p)) return null;
            p = Path.GetDirectoryName(p);
        }
        return null;
    }
}
