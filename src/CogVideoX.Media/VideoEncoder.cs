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

/// <summary>
/// Writes frames to an MP4 through ffmpeg, atomically (temporary name, then rename), and only after ffprobe has
/// read the encoded file back with every frame at the right size: ffmpeg can exit 0 with a truncated file (a full
/// disk), and such a file must never take the place of a good one.
/// </summary>
public static class VideoEncoder
{
    public static void WriteMp4(VideoFrames frames, string path, VideoEncoding? encoding = null)
    {
        Check(frames, encoding ??= new VideoEncoding());
        AtomicFile.Write(path, tmp => Encode(frames, tmp, encoding, path));
    }

    /// <summary>
    /// Encodes to exactly <paramref name="path"/> (for a caller that renames it into place itself) and checks the
    /// result; errors name the file <paramref name="shownAs"/> (the final name).
    /// </summary>
    public static VideoInfo Encode(VideoFrames frames, string path, VideoEncoding? encoding, string shownAs)
    {
        Check(frames, encoding ??= new VideoEncoding());
        Encode(Ffmpeg.FfmpegPath, frames, path, encoding, shownAs);
        WriteFaults.At(WriteFaults.Encoded, path);
        return Verify(frames, path, shownAs);
    }

    private static void Check(VideoFrames frames, VideoEncoding encoding)
    {
        if (frames.Count == 0) throw new CogVideoXException("cannot write a video with no frames");
        if (encoding.Fps < 1 || encoding.Fps > 240) throw new CogVideoXException($"fps {encoding.Fps} is out of range; use 1–240");
    }

    /// <summary>The encoded file as ffprobe reads it: every frame, the (even-padded) size, and no complaints.</summary>
    private static VideoInfo Verify(VideoFrames frames, string path, string shownAs)
    {
        VideoInfo info;
        string complaints;
        try
        {
            (info, complaints) = VideoProbe.Probe(path, shownAs);
        }
        catch (CogVideoXException e)
        {
            throw Incomplete(path, shownAs, e.Message);
        }
        int width = (frames.Width + 1) / 2 * 2, height = (frames.Height + 1) / 2 * 2;
        if (info.FrameCount != frames.Count || info.Width != width || info.Height != height)
            throw Incomplete(path, shownAs, $"ffprobe reads {info.FrameCount} frames of {info.Width}×{info.Height}, expected {frames.Count} of {width}×{height}");
        if (complaints.Length > 0)
            throw Incomplete(path, shownAs, $"ffprobe: {complaints}");
        return info;
    }

    /// <summary>A verification failure, called a full disk when the disk has (next to) no space left.</summary>
    private static CogVideoXException Incomplete(string path, string shownAs, string why)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(shownAs))!;
        long? free = FreeBytes(path);
        return free is < LowSpace
            ? new CogVideoXException($"disk full: the encoded video {shownAs} came out incomplete and was not kept ({why}); only {FileErrors.Bytes(free.Value)} were free in {folder} — free some space or write to another disk; any earlier video there is unchanged")
            : new CogVideoXException($"the encoded video {shownAs} came out incomplete and was not kept ({why}); run again, and if it recurs check the disk of {folder}; any earlier video there is unchanged");
    }

    /// <summary>Below this much free space a file that came out short is taken to have hit a full disk.</summary>
    private const long LowSpace = 1L << 20;

    private static long? FreeBytes(string path)
    {
        try
        {
            return new DriveInfo(Path.GetDirectoryName(Path.GetFullPath(path))!).AvailableFreeSpace;
        }
        catch (Exception e) when (FileErrors.IsFileError(e) || e is ArgumentException)
        {
            return null;
        }
    }

    private static void Encode(string ffmpeg, VideoFrames frames, string output, VideoEncoding e, string shownAs)
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
        // ffmpeg reports ENOSPC on stderr, but not always in its exit code.
        if (stderr.Result.Contains("No space left", StringComparison.OrdinalIgnoreCase))
        {
            var folder = Path.GetDirectoryName(Path.GetFullPath(shownAs))!;
            throw new CogVideoXException($"disk full: ffmpeg could not write the video {shownAs} (no space left on the device of {folder}); free some space or write to another disk; any earlier video there is unchanged");
        }
        if (p.ExitCode != 0)
            throw new CogVideoXException($"ffmpeg failed to encode {frames.Count} frames of {frames.Width}×{frames.Height} (exit {p.ExitCode}): {Ffmpeg.Tail(stderr.Result)}");
    }
}
