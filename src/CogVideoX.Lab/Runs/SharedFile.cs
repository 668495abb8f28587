using System.Runtime.InteropServices;

namespace CogVideoX.Lab.Runs;

/// <summary>
/// Gives a second name to a finished video: a hard link (no extra disk, and unlike a symbolic link it survives
/// copying the folder or deleting the first name), or a copy where the file system has no hard links. Written under
/// a temporary name (<c>.NAME.partial-PID-…</c>, which the runner cleans) and renamed, like every other output.
/// </summary>
internal static partial class SharedFile
{
    public const string HardLink = "hard link", Copy = "copy";

    /// <summary>Makes <paramref name="destination"/> the same file as <paramref name="source"/>; returns how.</summary>
    public static string LinkOrCopy(string source, string destination)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(destination))!;
        Directory.CreateDirectory(dir);
        var temp = Path.Combine(dir, $".{Path.GetFileNameWithoutExtension(destination)}.partial-{Environment.ProcessId}-link{Path.GetExtension(destination)}");
        if (File.Exists(temp)) File.Delete(temp);
        string how = HardLink;
        if (OperatingSystem.IsWindows() || link(Path.GetFullPath(source), temp) != 0)
        {
            how = Copy;
            File.Copy(source, temp, overwrite: true);
        }
        File.Move(temp, destination, overwrite: true);
        return how;
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int link(string existing, string created);
}
