using SkiaSharp;

namespace CogVideoX.Media;

/// <summary>Still images from videos: single frames and labelled key-frame grids (PNG, drawn with SkiaSharp).</summary>
public static class FrameImages
{
    /// <summary>The first, middle and last frame indices of a clip (fewer when it is shorter).</summary>
    public static int[] KeyFrameIndices(int count) =>
        count <= 0 ? [] : new[] { 0, (count - 1) / 2, count - 1 }.Distinct().ToArray();

    public static SKBitmap ToBitmap(VideoFrames frames, int index)
    {
        var bmp = new SKBitmap(new SKImageInfo(frames.Width, frames.Height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rgb = new byte[frames.Width * frames.Height * 3];
        frames.ToRgb24(index, rgb);
        var rgba = new byte[frames.Width * frames.Height * 4];
        for (int p = 0, n = frames.Width * frames.Height; p < n; p++)
        {
            rgba[4 * p] = rgb[3 * p];
            rgba[4 * p + 1] = rgb[3 * p + 1];
            rgba[4 * p + 2] = rgb[3 * p + 2];
            rgba[4 * p + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bmp.GetPixels(), rgba.Length);
        return bmp;
    }

    public static void SaveFramePng(VideoFrames frames, int index, string path)
    {
        using var bmp = ToBitmap(frames, index);
        SavePng(bmp, path);
    }

    /// <summary>
    /// One row per video (label on the left), one column per key frame (first / middle / last), cells scaled to
    /// <paramref name="cellWidth"/> pixels wide.
    /// </summary>
    public static void SaveKeyFrameGrid(IReadOnlyList<(string Label, VideoFrames Frames)> rows, string path, int cellWidth = 240)
    {
        if (rows.Count == 0) throw new ArgumentException("a grid needs at least one video");
        const int pad = 6, labelWidth = 180, header = 24;
        int cellHeight = rows.Max(r => (int)Math.Round((double)r.Frames.Height * cellWidth / r.Frames.Width));
        int columns = rows.Max(r => KeyFrameIndices(r.Frames.Count).Length);
        int width = labelWidth + columns * (cellWidth + pad) + pad;
        int height = header + rows.Count * (cellHeight + pad) + pad;
        using var canvasBmp = new SKBitmap(width, height);
        using var canvas = new SKCanvas(canvasBmp);
        canvas.Clear(new SKColor(250, 250, 250));
        using var font = new SKFont(SKTypeface.Default, 13);
        using var text = new SKPaint { Color = new SKColor(30, 30, 30), IsAntialias = true };
        using var sampling = new SKPaint { IsAntialias = true };
        string[] names = ["first", "middle", "last"];
        for (int c = 0; c < columns; c++)
            canvas.DrawText(columns == 3 ? names[c] : $"frame {c}", labelWidth + c * (cellWidth + pad) + pad, 16, font, text);
        for (int r = 0; r < rows.Count; r++)
        {
            var (label, frames) = rows[r];
            int y = header + r * (cellHeight + pad);
            DrawWrapped(canvas, label, pad, y + 16, labelWidth - 2 * pad, font, text);
            var indices = KeyFrameIndices(frames.Count);
            for (int c = 0; c < indices.Length; c++)
            {
                using var bmp = ToBitmap(frames, indices[c]);
                using var image = SKImage.FromBitmap(bmp);
                var dest = SKRect.Create(labelWidth + c * (cellWidth + pad) + pad, y, cellWidth, cellHeight);
                canvas.DrawImage(image, dest, new SKSamplingOptions(SKFilterMode.Linear, SKMipmapMode.Linear), sampling);
            }
        }
        SavePng(canvasBmp, path);
    }

    private static void DrawWrapped(SKCanvas canvas, string text, float x, float y, float maxWidth, SKFont font, SKPaint paint)
    {
        var line = "";
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = line.Length == 0 ? word : line + " " + word;
            if (font.MeasureText(candidate) > maxWidth && line.Length > 0)
            {
                canvas.DrawText(line, x, y, font, paint);
                y += font.Size + 3;
                line = word;
            }
            else line = candidate;
        }
        if (line.Length > 0) canvas.DrawText(line, x, y, font, paint);
    }

    private static void SavePng(SKBitmap bmp, string path)
    {
        using var image = SKImage.FromBitmap(bmp);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.WriteAllBytes(path, data.ToArray());
    }
}
