namespace CogVideoX.Media;

/// <summary>
/// Writes a file under a temporary name in the same folder and renames it into place, so an interrupted run
/// never leaves a partial file under the final name (rename is atomic on one file system).
/// </summary>
public static class AtomicFile
{
    /// <summary>A temporary path next to <paramref name="path"/> that keeps its extension (tools sniff it).</summary>
    public static string TempPathFor(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var name = Path.GetFileNameWithoutExtension(path);
        var ext = Path.GetExtension(path);
        return Path.Combine(dir, $".{name}.partial-{Environment.ProcessId}-{Guid.NewGuid():N}{ext}");
    }

    /// <summary>Runs <paramref name="write"/> on a temporary path, then moves the result to <paramref name="path"/>.</summary>
    public static void Write(string path, Action<string> write)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        var tmp = TempPathFor(path);
        try
        {
            WriteTemporary(path, tmp, write);
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            TryDelete(tmp);
        }
    }

    public static void WriteAllText(string path, string text) =>
        Write(path, tmp => File.WriteAllText(tmp, text));

    public static void WriteAllBytes(string path, byte[] bytes) =>
        Write(path, tmp => File.WriteAllBytes(tmp, bytes));

    /// <summary>
    /// Writes a file and a text file describing it (a video and its sidecar) so that they appear as a pair: both
    /// are written and flushed under temporary names first — <paramref name="describe"/> reads the finished
    /// temporary file — and only then renamed into place, the file first. A failure before the renames leaves
    /// whatever was there before untouched; a failure between them removes the old description, which no longer
    /// matches. File-system errors come back as <see cref="Engine.CogVideoXException"/>s naming the file concerned.
    /// </summary>
    public static void WritePair(string path, string what, Action<string> write, string companionPath, string companionWhat, Func<string, string> describe)
    {
        var tmp = TempPathFor(path);
        var tmpCompanion = TempPathFor(companionPath);
        try
        {
            Guarded(what, path, () =>
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
                WriteTemporary(path, tmp, write);
            });
            string text = "";
            Guarded(what, path, () => text = describe(tmp));
            Guarded(companionWhat, companionPath, () => WriteTemporary(companionPath, tmpCompanion, t => File.WriteAllText(t, text)));
            Guarded(what, path, () => File.Move(tmp, path, overwrite: true));
            Guarded(companionWhat, companionPath, () =>
            {
                try
                {
                    File.Move(tmpCompanion, companionPath, overwrite: true);
                }
                catch
                {
                    TryDelete(companionPath);
                    throw;
                }
            });
        }
        finally
        {
            TryDelete(tmp);
            TryDelete(tmpCompanion);
        }
    }

    /// <summary>
    /// Checks, before any work is done, that <paramref name="path"/> can be written: its folder exists or can be
    /// made, and a file can be created, written and flushed in it. A read-only file system, a missing permission, a
    /// file in the way or a full disk is reported as a <see cref="Engine.CogVideoXException"/>. The check leaves
    /// nothing behind: the probe file and any folders it had to make are removed again (the writer makes them later),
    /// so a run that fails afterwards for another reason leaves no empty folders.
    /// </summary>
    public static void CheckWritable(string path, string what)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full))
            throw new Engine.CogVideoXException($"{what} {path} is a folder; give the file to write, e.g. {Path.Combine(path, "out" + Path.GetExtension(path))}", 2);
        var dir = Path.GetDirectoryName(full)!;
        var made = new List<string>();
        for (var d = dir; d is not null && !Directory.Exists(d); d = Path.GetDirectoryName(d)) made.Add(d);
        var probe = TempPathFor(full);
        try
        {
            Guarded(what, path, () =>
            {
                WriteFaults.At(WriteFaults.Folder, dir);
                Directory.CreateDirectory(dir);
                using var fs = new FileStream(probe, FileMode.CreateNew, FileAccess.Write);
                fs.WriteByte(0);
                fs.Flush(flushToDisk: true);
            });
        }
        finally
        {
            TryDelete(probe);
            foreach (var d in made) // innermost first; only the folders this check made, and only while empty
            {
                try
                {
                    Directory.Delete(d);
                }
                catch (Exception e) when (FileErrors.IsFileError(e))
                {
                    break;
                }
            }
        }
    }

    /// <summary>Removes temporary files an earlier killed run left in a folder.</summary>
    public static int CleanStale(string directory)
    {
        if (!Directory.Exists(directory)) return 0;
        int n = 0;
        foreach (var f in Directory.EnumerateFiles(directory, ".*.partial-*"))
        {
            try { File.Delete(f); n++; }
            catch (IOException) { }
        }
        return n;
    }

    /// <summary>Deletes a file if it is there; false when it was not, or could not be deleted.</summary>
    public static bool TryDelete(string path)
    {
        try
        {
            if (!File.Exists(path)) return false;
            File.Delete(path);
            return true;
        }
        catch (Exception e) when (FileErrors.IsFileError(e))
        {
            return false;
        }
    }

    /// <summary>The writer's output at <paramref name="tmp"/>, checked to exist and flushed to the device.</summary>
    private static void WriteTemporary(string path, string tmp, Action<string> write)
    {
        write(tmp);
        if (!File.Exists(tmp)) throw new IOException($"{path}: the writer produced no file");
        WriteFaults.At(WriteFaults.Written, tmp);
        FlushToDisk(tmp);
    }

    private static void Guarded(string what, string path, Action action)
    {
        try
        {
            action();
        }
        catch (Exception e) when (FileErrors.IsFileError(e))
        {
            throw FileErrors.Explain(e, what, path);
        }
    }

    private static void FlushToDisk(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        fs.Flush(flushToDisk: true);
    }
}

/// <summary>
/// A test seam for the faults of a full or read-only disk, which tests cannot otherwise make without root: a hook
/// that sees each folder before it is made (<see cref="Folder"/>), each temporary file once written and before it
/// is checked (<see cref="Written"/>), and each encoded video before it is probed (<see cref="Encoded"/>); it may
/// throw (an <see cref="IOException"/> with ENOSPC, EROFS…) or damage the file (truncate it, as ffmpeg does when
/// the disk fills). Async-local, so tests running in parallel never see each other's faults.
/// </summary>
internal static class WriteFaults
{
    public const string Folder = "folder", Written = "written", Encoded = "encoded";

    public static readonly AsyncLocal<Action<string, string>?> Hook = new();

    public static void At(string stage, string path) => Hook.Value?.Invoke(stage, path);
}
