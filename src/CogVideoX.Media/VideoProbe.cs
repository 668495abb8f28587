using System.Globalization;
using System.Text.Json;
using CogVideoX.Engine;

namespace CogVideoX.Media;

/// <summary>What ffprobe says about the first video stream of a file.</summary>
public sealed record VideoInfo(int Width, int Height, int FrameCount, double Fps, string Codec, string PixelFormat, double DurationSeconds);

public static class VideoProbe
{
    /// <summary>Reads stream facts with ffprobe (counting decoded frames, so a truncated file shows).</summary>
    public static VideoInfo Probe(string path)
    {
        if (!File.Exists(path)) throw new CogVideoXException($"{path}: no such video file");
        var r = Ffmpeg.RunCapture(Ffmpeg.FfprobePath,
            ["-v", "error", "-select_streams", "v:0", "-count_frames",
             "-show_entries", "stream=width,height,codec_name,pix_fmt,avg_frame_rate,nb_read_frames:format=duration",
             "-of", "json", path], TimeSpan.FromMinutes(2));
        if (r.ExitCode != 0)
            throw new CogVideoXException($"{path}: not a readable video ({Ffmpeg.Tail(r.StdErr)})");
        using var doc = JsonDocument.Parse(r.StdOut);
        if (!doc.RootElement.TryGetProperty("streams", out var streams) || streams.GetArrayLength() == 0)
            throw new CogVideoXException($"{path}: has no video stream");
        var s = streams[0];
        double duration = 0;
        if (doc.RootElement.TryGetProperty("format", out var fmt) && fmt.TryGetProperty("duration", out var d))
            double.TryParse(d.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out duration);
        return new VideoInfo(
            s.GetProperty("width").GetInt32(),
            s.GetProperty("height").GetInt32(),
            int.Parse(s.GetProperty("nb_read_frames").GetString() ?? "0", CultureInfo.InvariantCulture),
            ParseRate(s.GetProperty("avg_frame_rate").GetString()),
            s.GetProperty("codec_name").GetString() ?? "",
            s.GetProperty("pix_fmt").GetString() ?? "",
            duration);
    }

    private static double ParseRate(string? rate)
    {
        if (string.IsNullOrEmpty(rate)) return 0;
        var parts = rate.Split('/');
        double num = double.Parse(parts[0], CultureInfo.InvariantCulture);
        double den = parts.Length > 1 ? double.Parse(parts[1], CultureInfo.InvariantCulture) : 1;
        return den == 0 ? 0 : num / den;
    }
}
