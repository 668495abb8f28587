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
    /// values are read unpremultiplied. Grey and palette images come out as RGB.
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
        int pixels = info.Width * info.Height;
        var rgb = new byte[pixels * 3];
        for (int p = 0; p < pixels; p++)
        {
            rgb[3 * p] = rgba[4 * p];
            rgb[3 * p + 1] = rgba[4 * p + 1];
            rgb[3 * p + 2] = rgba[4 * p + 2];
        }
        return (rgb, info.Height, info.Width);
    }
}
