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
            write(tmp);
            if (!File.Exists(tmp)) throw new IOException($"{path}: the writer produced no file");
            FlushToDisk(tmp);
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public static void WriteAllText(string path, string text) =>
        Write(path, tmp => File.WriteAllText(tmp, text));

    public static void WriteAllBytes(string path, byte[] bytes) =>
        Write(path, tmp => File.WriteAllBytes(tmp, bytes));

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

    private static void FlushToDisk(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        fs.Flush(flushToDisk: true);
    }
}
