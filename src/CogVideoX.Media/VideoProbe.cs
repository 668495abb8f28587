using System.Globalization;
using System.Text.Json;
using CogVideoX.Engine;

namespace CogVideoX.Media;

/// <summary>
/// What ffprobe says about the first video stream of a file. <see cref="Width"/> and <see cref="Height"/> are the
/// upright size a player shows: for a video stored sideways with a rotation (the display matrix phones write, or an
/// older <c>rotate</c> tag) of ±90°, the stored size turned; <see cref="Rotation"/> is that rotation in degrees
/// counter-clockwise (ffprobe's sign), 0 for none.
/// </summary>
public sealed record VideoInfo(int Width, int Height, int FrameCount, double Fps, string Codec, string PixelFormat, double DurationSeconds, int Rotation = 0);

public static class VideoProbe
{
    /// <summary>Reads stream facts with ffprobe (counting decoded frames, so a truncated file shows).</summary>
    public static VideoInfo Probe(string path) => Probe(path, path).Info;

    /// <summary>
    /// The same, naming the file <paramref name="shownAs"/> in errors (a temporary file by its final name), and with
    /// what ffprobe complained about while reading it (empty for a sound file).
    /// </summary>
    internal static (VideoInfo Info, string Complaints) Probe(string path, string shownAs)
    {
        if (!File.Exists(path)) throw new CogVideoXException($"{shownAs}: no such video file");
        var r = Ffmpeg.RunCapture(Ffmpeg.FfprobePath,
            ["-v", "error", "-select_streams", "v:0", "-count_frames",
             "-show_entries", "stream=width,height,codec_name,pix_fmt,avg_frame_rate,nb_read_frames:stream_tags=rotate:stream_side_data=rotation:format=duration",
             "-of", "json", path], TimeSpan.FromMinutes(2));
        if (r.ExitCode != 0)
            throw new CogVideoXException($"{shownAs}: not a readable video ({Ffmpeg.Tail(r.StdErr.Replace(path, shownAs, StringComparison.Ordinal))})");
        using var doc = JsonDocument.Parse(r.StdOut);
        if (!doc.RootElement.TryGetProperty("streams", out var streams) || streams.GetArrayLength() == 0)
            throw new CogVideoXException($"{shownAs}: has no video stream");
        var s = streams[0];
        double duration = 0;
        if (doc.RootElement.TryGetProperty("format", out var fmt) && fmt.TryGetProperty("duration", out var d))
            double.TryParse(d.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out duration);
        VideoInfo info;
        try
        {
            int rotation = ReadRotation(s);
            bool sideways = Math.Abs(rotation) % 180 == 90;
            int storedWidth = s.GetProperty("width").GetInt32(), storedHeight = s.GetProperty("height").GetInt32();
            info = new VideoInfo(
                sideways ? storedHeight : storedWidth,
                sideways ? storedWidth : storedHeight,
                int.Parse(s.GetProperty("nb_read_frames").GetString() ?? "0", CultureInfo.InvariantCulture),
                ParseRate(s.GetProperty("avg_frame_rate").GetString()),
                s.GetProperty("codec_name").GetString() ?? "",
                s.GetProperty("pix_fmt").GetString() ?? "",
                duration,
                rotation);
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException or OverflowException)
        {
            // A damaged file can leave ffprobe without a size or frame count.
            throw new CogVideoXException($"{shownAs}: not a readable video (ffprobe could not read its stream's size and frames: {Ffmpeg.Tail(r.StdErr.Replace(path, shownAs, StringComparison.Ordinal))})");
        }
        return (info, Ffmpeg.Tail(r.StdErr.Replace(path, shownAs, StringComparison.Ordinal)));
    }

    /// <summary>
    /// The stream's rotation in degrees counter-clockwise, normalised to (-180, 180]: the display matrix's (side data)
    /// when there is one, else the old <c>rotate</c> tag's (which counts clockwise); 0 for none.
    /// </summary>
    private static int ReadRotation(JsonElement stream)
    {
        double? degrees = null;
        if (stream.TryGetProperty("side_data_list", out var sideData) && sideData.ValueKind == JsonValueKind.Array)
            foreach (var item in sideData.EnumerateArray())
                if (item.TryGetProperty("rotation", out var r) && TryNumber(r, out var value))
                {
                    degrees = value;
                    break;
                }
        if (degrees is null && stream.TryGetProperty("tags", out var tags) && tags.TryGetProperty("rotate", out var tag) && TryNumber(tag, out var clockwise))
            degrees = -clockwise;
        if (degrees is not { } d || !double.IsFinite(d)) return 0;
        int whole = (int)Math.Round(d % 360);
        whole = ((whole % 360) + 360) % 360;
        return whole > 180 ? whole - 360 : whole;
    }

    private static bool TryNumber(JsonElement element, out double value)
    {
        value = 0;
        return element.ValueKind switch
        {
            JsonValueKind.Number => element.TryGetDouble(out value),
            JsonValueKind.String => double.TryParse(element.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out value),
            _ => false,
        };
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
