using System.Diagnostics;
using CogVideoX.Engine;

namespace CogVideoX.Media;

/// <summary>Reads an MP4 back into frames through ffmpeg (for metrics and reports on finished runs).</summary>
public static class VideoDecoder
{
    public static VideoFrames Read(string path)
    {
        var (frames, info) = ReadRgb24(path);
        return VideoFrames.FromRgb24(frames, info.Height, info.Width);
    }

    /// <summary>
    /// The first <paramref name="maxFrames"/> frames (all when null) as interleaved 8-bit RGB, exactly as ffmpeg
    /// converts them to rgb24, with what ffprobe says about the file (its <see cref="VideoInfo.FrameCount"/> counts
    /// every frame, also those not read). A video stored sideways with a rotation (as phones record) comes out
    /// upright, as a player shows it and as diffusers' <c>load_video</c> reads it (imageio-ffmpeg runs ffmpeg, which
    /// applies the rotation by default, and takes the frame size from ffmpeg's output stream): ffmpeg turns the frames,
    /// and the probe's size is the turned one.
    /// </summary>
    public static (List<byte[]> Frames, VideoInfo Info) ReadRgb24(string path, int? maxFrames = null)
    {
        var info = VideoProbe.Probe(path);
        var psi = new ProcessStartInfo(Ffmpeg.FfmpegPath)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // -autorotate is ffmpeg's default; named so that the frame size (the probe's upright one) cannot drift from it.
        var args = new List<string> { "-hide_banner", "-loglevel", "error", "-autorotate", "1", "-i", path };
        if (maxFrames is { } max) args.AddRange(["-frames:v", max.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        args.AddRange(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new CogVideoXException("could not start ffmpeg");
        var stderr = p.StandardError.ReadToEndAsync();
        int frameBytes = info.Width * info.Height * 3;
        var frames = new List<byte[]>();
        var stdout = p.StandardOutput.BaseStream;
        while (true)
        {
            var buffer = new byte[frameBytes];
            int read = 0;
            while (read < frameBytes)
            {
                int n = stdout.Read(buffer, read, frameBytes - read);
                if (n == 0) break;
                read += n;
            }
            if (read < frameBytes) break;
            frames.Add(buffer);
        }
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new CogVideoXException($"{path}: ffmpeg could not decode it ({Ffmpeg.Tail(stderr.Result)})");
        return (frames, info);
    }
}
