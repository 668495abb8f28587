using CogVideoX.Media;

namespace CogVideoX.Tests;

/// <summary>
/// A full or read-only disk without root or a tmpfs: hooks <see cref="WriteFaults"/> for the current test only
/// (async-local), so a write can fail with ENOSPC/EROFS or an encoded video come out truncated, as it does when
/// ffmpeg runs out of space and still exits 0.
/// </summary>
internal sealed class FaultyDisk : IDisposable
{
    private FaultyDisk(Action<string, string> hook) => WriteFaults.Hook.Value = hook;

    /// <summary>Calls <paramref name="hook"/> with (stage, path) at every folder, written temporary file and encoded video.</summary>
    public static FaultyDisk Inject(Action<string, string> hook) => new(hook);

    /// <summary>Fails the write of every temporary file whose name ends in <paramref name="extension"/> with ENOSPC.</summary>
    public static FaultyDisk FullOn(string extension) => new((stage, path) =>
    {
        if (stage == WriteFaults.Written && path.EndsWith(extension, StringComparison.Ordinal)) throw Full(path);
    });

    /// <summary>Cuts every encoded video to half its length.</summary>
    public static FaultyDisk TruncatingEncodes() => new((stage, path) =>
    {
        if (stage != WriteFaults.Encoded) return;
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        fs.SetLength(fs.Length / 2);
    });

    /// <summary>What .NET throws on Linux for ENOSPC (errno 28).</summary>
    public static IOException Full(string path) => new($"No space left on device : '{path}'", 28);

    /// <summary>What .NET throws on Linux for EROFS (errno 30).</summary>
    public static IOException ReadOnly(string path) => new($"Read-only file system : '{path}'", 30);

    public void Dispose() => WriteFaults.Hook.Value = null;
}
