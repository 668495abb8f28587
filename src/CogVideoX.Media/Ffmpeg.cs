using System.Diagnostics;
using CogVideoX.Engine;

namespace CogVideoX.Media;

/// <summary>Finds the ffmpeg/ffprobe executables (COGVIDEOX_FFMPEG / COGVIDEOX_FFPROBE, else PATH).</summary>
public static class Ffmpeg
{
    public const string InstallHint =
        "install it (Debian/Ubuntu: `sudo apt-get install ffmpeg`; macOS: `brew install ffmpeg`; Windows: `winget install ffmpeg`) " +
        "or point COGVIDEOX_FFMPEG / COGVIDEOX_FFPROBE at the executables";

    public static string FfmpegPath => Locate("ffmpeg", "COGVIDEOX_FFMPEG");

    public static string FfprobePath => Locate("ffprobe", "COGVIDEOX_FFPROBE");

    public static bool IsAvailable => TryLocate("ffmpeg", "COGVIDEOX_FFMPEG") is not null;

    private static string Locate(string tool, string variable) =>
        TryLocate(tool, variable) ?? throw new CogVideoXException($"{tool} was not found on PATH; it is needed to write and read MP4 files — {InstallHint}");

    private static string? TryLocate(string tool, string variable)
    {
        var configured = Environment.GetEnvironmentVariable(variable);
        if (!string.IsNullOrEmpty(configured))
            return File.Exists(configured) ? configured
                : throw new CogVideoXException($"{variable} is set to '{configured}', which does not exist; fix or unset it");
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var dir in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            foreach (var name in OperatingSystem.IsWindows() ? new[] { tool + ".exe" } : new[] { tool })
            {
                var candidate = Path.Combine(dir, name);
                if (File.Exists(candidate)) return candidate;
            }
        }
        return null;
    }

    /// <summary>The first line of `ffmpeg -version` (for sidecars), or null.</summary>
    public static string? Version()
    {
        try
        {
            var r = RunCapture(FfmpegPath, new[] { "-hide_banner", "-version" }, TimeSpan.FromSeconds(10));
            return r.StdOut.Split('\n').FirstOrDefault()?.Trim();
        }
        catch (CogVideoXException)
        {
            return null;
        }
    }

    internal readonly record struct ProcessResult(int ExitCode, string StdOut, string StdErr);

    internal static ProcessResult RunCapture(string exe, IEnumerable<string> args, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(exe)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new CogVideoXException($"could not start {exe}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new CogVideoXException($"{Path.GetFileName(exe)} did not finish within {timeout.TotalSeconds:0} s");
        }
        return new ProcessResult(p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>The last lines of ffmpeg's stderr, for error messages.</summary>
    internal static string Tail(string stderr, int lines = 6) =>
        string.Join(" | ", stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(lines));
}
