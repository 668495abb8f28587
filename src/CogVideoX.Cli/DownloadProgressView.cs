using System.Diagnostics;
using System.Globalization;
using System.Text;
using CogVideoX.Weights;

namespace CogVideoX.Cli;

/// <summary>
/// Shows a model download: on a terminal, a live block with one bar per file being fetched (size, percent, speed)
/// and a total line with speed and time left, redrawn at most ten times a second; when the output is redirected,
/// plain lines — one per finished file, notes (retries, restarts), and a total line every few seconds.
/// </summary>
internal sealed class DownloadProgressView : IDownloadProgress
{
    private static readonly TimeSpan s_redrawInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan s_plainTotalInterval = TimeSpan.FromSeconds(5);

    private readonly TextWriter _out;
    private readonly bool _live;
    private readonly Lock _lock = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Dictionary<string, FileState> _active = new(StringComparer.Ordinal);
    private long _plannedBytes;
    private long _doneBytes;
    private long _transferred;
    private int _liveLines;
    private TimeSpan _lastDraw = TimeSpan.FromDays(-1); // (not MinValue: Elapsed - MinValue overflows)
    private TimeSpan _lastPlainTotal;

    public DownloadProgressView(TextWriter output, bool live)
    {
        _out = output;
        _live = live;
    }

    /// <summary>A live display when <paramref name="output"/> is the process's terminal (not redirected, TERM not dumb, bars not disabled).</summary>
    public static DownloadProgressView For(TextWriter output, Func<string, string?> environment)
    {
        bool live = ReferenceEquals(output, Console.Error) && !Console.IsErrorRedirected
            && environment("TERM") != "dumb"
            && environment("HF_HUB_DISABLE_PROGRESS_BARS")?.Trim().ToUpperInvariant() is not ("1" or "ON" or "YES" or "TRUE");
        return new DownloadProgressView(output, live);
    }

    public void Resolved(string repoId, string revision, string commit)
    {
        lock (_lock) Line(revision == commit ? $"{repoId}: commit {commit}" : $"{repoId}: revision {revision} is commit {commit}");
    }

    public void Planned(IReadOnlyList<(string Path, long? Size)> files, int alreadyCached)
    {
        if (files.Count == 0) return;
        lock (_lock)
        {
            long known = files.Sum(f => f.Size ?? 0);
            _plannedBytes += known;
            bool unknown = files.Any(f => f.Size is null);
            var what = files.Count == 1 ? files[0].Path : $"{files.Count} files";
            Line($"fetching {what} ({Sizes.Format(known)}{(unknown ? " and more" : "")}){(alreadyCached > 0 ? $"; {alreadyCached} more already in the cache" : "")}");
            // The weights: say what the gigabytes are before they start.
            if (known >= 100L << 20 && files.Count > 1)
                Line($"  {string.Join(", ", files.OrderByDescending(f => f.Size ?? 0).Take(6).Select(f => $"{f.Path} {Sizes.Format(f.Size ?? 0)}"))}{(files.Count > 6 ? $" and {files.Count - 6} more" : "")}");
        }
    }

    public void FileStarted(string path, long size, long resumedFrom)
    {
        lock (_lock)
        {
            _active[path] = new FileState(size, resumedFrom, _clock.Elapsed);
            _doneBytes += resumedFrom;
            if (resumedFrom > 0) Line($"  resuming {path} at {Sizes.Format(resumedFrom)} of {Sizes.Format(size)}");
            Redraw(force: false);
        }
    }

    public void FileAdvanced(string path, long bytes)
    {
        lock (_lock)
        {
            if (!_active.TryGetValue(path, out var file)) return;
            long delta = bytes - file.Bytes;
            _doneBytes += delta;
            if (delta > 0) _transferred += delta;
            else file.TransferStart = bytes; // started over: speed counts from here
            file.Bytes = bytes;
            if (_live)
            {
                Redraw(force: false);
            }
            else if (_clock.Elapsed - _lastPlainTotal >= s_plainTotalInterval)
            {
                _lastPlainTotal = _clock.Elapsed;
                Line("  " + TotalText());
            }
        }
    }

    public void Note(string path, string message)
    {
        lock (_lock) Line($"  note: {path}: {message}");
    }

    public void FileDone(string path, long size, string verification)
    {
        lock (_lock)
        {
            string timing = "";
            if (_active.Remove(path, out var file))
            {
                _doneBytes += size - file.Bytes;
                var seconds = (_clock.Elapsed - file.Started).TotalSeconds;
                timing = $" in {Duration(seconds)}, {Sizes.Rate((size - file.TransferStart) / Math.Max(seconds, 1e-3))}";
            }
            else
            {
                _doneBytes += size;
            }
            Line($"  done {path} ({Sizes.Format(size)}{timing}; {verification})");
        }
    }

    /// <summary>Clears the live block (call when the download has ended, before printing anything else).</summary>
    public void Finish()
    {
        lock (_lock)
        {
            if (_live) Erase();
            _out.Flush();
        }
    }

    private string TotalText()
    {
        var seconds = _clock.Elapsed.TotalSeconds;
        double rate = seconds > 0 ? _transferred / seconds : 0;
        var text = new StringBuilder($"total {Sizes.Format(_doneBytes)} of {Sizes.Format(_plannedBytes)}");
        if (_plannedBytes > 0) text.Append(CultureInfo.InvariantCulture, $" ({100.0 * _doneBytes / _plannedBytes:0}%)");
        text.Append(", ").Append(Sizes.Rate(rate));
        if (rate > 0 && _plannedBytes > _doneBytes) text.Append(", about ").Append(Duration((_plannedBytes - _doneBytes) / rate)).Append(" left");
        return text.ToString();
    }

    /// <summary>A permanent line: above the live block on a terminal.</summary>
    private void Line(string text)
    {
        if (_live) Erase();
        _out.WriteLine(text);
        if (_live) Redraw(force: true);
        else _out.Flush();
    }

    private void Redraw(bool force)
    {
        if (!_live) return;
        if (!force && _clock.Elapsed - _lastDraw < s_redrawInterval) return;
        _lastDraw = _clock.Elapsed;
        Erase();
        if (_active.Count == 0) return;
        int width = Width();
        foreach (var (path, file) in _active.OrderBy(a => a.Value.Started))
            _out.WriteLine(FileBar(path, file, width));
        _out.WriteLine(Fit("  " + TotalText(), width));
        _liveLines = _active.Count + 1;
        _out.Flush();
    }

    private string FileBar(string path, FileState file, int width)
    {
        const int barWidth = 20;
        double fraction = file.Size > 0 ? Math.Clamp((double)file.Bytes / file.Size, 0, 1) : 0;
        int filled = (int)(fraction * barWidth);
        var seconds = (_clock.Elapsed - file.Started).TotalSeconds;
        var rate = seconds > 0 ? (file.Bytes - file.TransferStart) / seconds : 0;
        var stats = $" [{new string('#', filled)}{new string('.', barWidth - filled)}] {fraction * 100,3:0}% {Sizes.Format(file.Bytes)}/{Sizes.Format(file.Size)} {Sizes.Rate(rate)}";
        int room = Math.Max(10, width - stats.Length - 2);
        var name = path.Length <= room ? path.PadRight(room) : "…" + path[^(room - 1)..];
        return Fit("  " + name + stats, width);
    }

    private void Erase()
    {
        if (_liveLines == 0) return;
        // Cursor up to the block's first line, then clear to the end of the screen.
        _out.Write($"\u001b[{_liveLines}F\u001b[J");
        _liveLines = 0;
    }

    private static int Width()
    {
        try
        {
            return Console.WindowWidth is > 20 and var w ? w - 1 : 100;
        }
        catch (IOException)
        {
            return 100;
        }
    }

    private static string Fit(string text, int width) => text.Length <= width ? text : text[..width];

    internal static string Duration(double seconds)
    {
        if (!double.IsFinite(seconds) || seconds < 0) return "?";
        if (seconds < 10) return $"{seconds.ToString("0.0", CultureInfo.InvariantCulture)} s";
        var t = TimeSpan.FromSeconds(Math.Round(seconds));
        return t.TotalHours >= 1 ? $"{(int)t.TotalHours}h {t.Minutes:00}m" : t.TotalMinutes >= 1 ? $"{t.Minutes}m {t.Seconds:00}s" : $"{t.Seconds} s";
    }

    private sealed class FileState(long size, long resumedFrom, TimeSpan started)
    {
        public long Size { get; } = size;

        public long Bytes { get; set; } = resumedFrom;

        /// <summary>Where this session's transfer of the file began (speed counts bytes from here).</summary>
        public long TransferStart { get; set; } = resumedFrom;

        public TimeSpan Started { get; } = started;
    }
}
