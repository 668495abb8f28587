using System.Runtime.InteropServices;
using CogVideoX.Engine;
using SkiaSharp;

namespace CogVideoX.Media;

/// <summary>Reads a still picture (PNG, JPEG, WebP) into 8-bit RGB with SkiaSharp.</summary>
public static class ImageReader
{
    /// <summary>The formats an input image may have.</summary>
    public const string Formats = "PNG, JPEG or WebP";

    /// <summary>
    /// Decodes <paramref name="bytes"/> (the file <paramref name="path"/>) to interleaved RGB [H, W, 3]. Alpha is
    /// dropped without blending, as PIL's <c>convert("RGB")</c> (diffusers' <c>load_image</c>) drops it: the colour
    /// values are read unpremultiplied. Grey and palette images come out as RGB; an EXIF orientation is applied.
    /// </summary>
    public static (byte[] Rgb, int Height, int Width) DecodeRgb(byte[] bytes, string path)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        using var data = SKData.CreateCopy(bytes);
        using var codec = SKCodec.Create(data)
            ?? throw new CogVideoXException($"{path}: not an image this program can read; give a {Formats} file", 2);
        var format = codec.EncodedFormat;
        if (format is not (SKEncodedImageFormat.Png or SKEncodedImageFormat.Jpeg or SKEncodedImageFormat.Webp))
            throw new CogVideoXException($"{path}: a {format} image; give a {Formats} file (convert it first, e.g. with ffmpeg -i {Path.GetFileName(path)} image.png)", 2);
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        if (info.Width < 1 || info.Height < 1)
            throw new CogVideoXException($"{path}: the image is empty ({info.Width}×{info.Height})", 2);
        var rgba = new byte[info.BytesSize];
        var handle = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        try
        {
            var result = codec.GetPixels(info, handle.AddrOfPinnedObject());
            if (result is not (SKCodecResult.Success or SKCodecResult.IncompleteInput))
                throw new CogVideoXException($"{path}: the {format} data could not be decoded ({result}); the file may be damaged", 2);
            if (result == SKCodecResult.IncompleteInput)
                throw new CogVideoXException($"{path}: the {format} file is truncated; give a complete image", 2);
        }
        finally
        {
            handle.Free();
        }
        return Orient(rgba, info.Height, info.Width, (int)codec.EncodedOrigin);
    }

    /// <summary>
    /// RGB of the RGBA pixels, turned upright as the EXIF orientation <paramref name="orientation"/> (1–8) says — what
    /// PIL's <c>ImageOps.exif_transpose</c> does in diffusers' <c>load_image</c> (5–8 swap height and width).
    /// </summary>
    internal static (byte[] Rgb, int Height, int Width) Orient(byte[] rgba, int h, int w, int orientation)
    {
        bool swap = orientation is >= 5 and <= 8;
        int outH = swap ? w : h, outW = swap ? h : w;
        var rgb = new byte[outH * outW * 3];
        for (int y = 0; y < outH; y++)
            for (int x = 0; x < outW; x++)
            {
                var (sy, sx) = orientation switch
                {
                    2 => (y, w - 1 - x),
                    3 => (h - 1 - y, w - 1 - x),
                    4 => (h - 1 - y, x),
                    5 => (x, y),
                    6 => (h - 1 - x, y),
                    7 => (h - 1 - x, w - 1 - y),
                    8 => (x, w - 1 - y),
                    _ => (y, x),
                };
                int s = 4 * (sy * w + sx), d = 3 * (y * outW + x);
                rgb[d] = rgba[s];
                rgb[d + 1] = rgba[s + 1];
                rgb[d + 2] = rgba[s + 2];
            }
        return (rgb, outH, outW);
    }
}
