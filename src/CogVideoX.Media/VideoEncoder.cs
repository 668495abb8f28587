using System.Diagnostics;
using System.Globalization;
using CogVideoX.Engine;

namespace CogVideoX.Media;

/// <summary>Encoder settings: H.264 in yuv420p plays in every browser and player.</summary>
public sealed record VideoEncoding
{
    public int Fps { get; init; } = 8;

    /// <summary>x264 constant rate factor: 0 lossless … 51 worst; 18 is visually lossless.</summary>
    public int Crf { get; init; } = 18;

    public string Preset { get; init; } = "medium";

    /// <summary>Hears (frames handed to ffmpeg, all frames) after each frame, for progress bars.</summary>
    public Action<int, int>? Progress { get; init; }
}

/// <summary>Writes frames to an MP4 through ffmpeg, atomically (temporary name, then rename).</summary>
public static class VideoEncoder
{
    public static void WriteMp4(VideoFrames frames, string path, VideoEncoding? encoding = null)
    {
        encoding ??= new VideoEncoding();
        if (frames.Count == 0) throw new CogVideoXException("cannot write a video with no frames");
        if (encoding.Fps < 1 || encoding.Fps > 240) throw new CogVideoXException($"fps {encoding.Fps} is out of range; use 1–240");
        var ffmpeg = Ffmpeg.FfmpegPath;
        AtomicFile.Write(path, tmp => Encode(ffmpeg, frames, tmp, encoding));
    }

    private static void Encode(string ffmpeg, VideoFrames frames, string output, VideoEncoding e)
    {
        var psi = new ProcessStartInfo(ffmpeg)
        {
            RedirectStandardInput = true,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        string[] args =
        [
            "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", $"{frames.Width}x{frames.Height}",
            "-r", e.Fps.ToString(CultureInfo.InvariantCulture),
            "-i", "-",
            // yuv420p needs even sizes: pad odd ones by one pixel rather than fail.
            "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
            "-c:v", "libx264", "-preset", e.Preset, "-crf", e.Crf.ToString(CultureInfo.InvariantCulture),
            "-pix_fmt", "yuv420p", "-movflags", "+faststart",
            "-f", "mp4", output,
        ];
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new CogVideoXException($"could not start {ffmpeg}");
        var stderr = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        var rgb = new byte[frames.Height * frames.Width * 3];
        try
        {
            using var stdin = p.StandardInput.BaseStream;
            for (int i = 0; i < frames.Count; i++)
            {
                frames.ToRgb24(i, rgb);
                stdin.Write(rgb);
                e.Progress?.Invoke(i + 1, frames.Count);
            }
        }
        catch (IOException)
        {
            // ffmpeg quit early; its stderr (below) says why.
        }
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new CogVideoXException($"ffmpeg failed to encode {frames.Count} frames of {frames.Width}×{frames.Height} (exit {p.ExitCode}): {Ffmpeg.Tail(stderr.Result)}");
    }
}
