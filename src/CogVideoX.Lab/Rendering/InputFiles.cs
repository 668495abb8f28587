using System.Security.Cryptography;
using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Media;

namespace CogVideoX.Lab;

/// <summary>
/// The input image (image-to-video) or video (video-to-video) a job names, read into the pipeline's
/// <see cref="InputMedia"/> with the file's SHA-256 for the sidecar. Errors name the file and say what to do.
/// </summary>
public static class InputFiles
{
    /// <summary>The most bytes an input image file may have (a 480 × 720 PNG is about 1 MB).</summary>
    public const long MaxImageBytes = 256L << 20;

    /// <summary>Checks a path names a readable file (before anything loads); <paramref name="what"/> is "image" or "video".</summary>
    public static void CheckReadable(string path, string what)
    {
        if (string.IsNullOrWhiteSpace(path))
            throw new CogVideoXException($"the input {what} path is empty; give the file to start from", GenerationRules.UsageExitCode);
        if (Directory.Exists(path))
            throw new CogVideoXException($"{path}: is a folder; give the input {what} file itself", GenerationRules.UsageExitCode);
        if (!File.Exists(path))
            throw new CogVideoXException($"{path}: no such {what} file ({Path.GetFullPath(path)}); check the path", GenerationRules.UsageExitCode);
    }

    /// <summary>Reads an image file: one RGB frame.</summary>
    public static InputMedia LoadImage(string path)
    {
        CheckReadable(path, "image");
        byte[] bytes;
        try
        {
            var length = new FileInfo(path).Length;
            if (length > MaxImageBytes)
                throw new CogVideoXException($"{path}: {MemoryText(length)} is too large for an input image (at most {MemoryText(MaxImageBytes)}); give a {ImageReader.Formats} picture", GenerationRules.UsageExitCode);
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (FileErrors.IsFileError(e))
        {
            throw new CogVideoXException($"{path}: cannot read the input image ({FileErrors.Describe(e)})", e, GenerationRules.UsageExitCode);
        }
        if (bytes.Length == 0)
            throw new CogVideoXException($"{path}: the file is empty; give a {ImageReader.Formats} picture", GenerationRules.UsageExitCode);
        var (rgb, height, width) = ImageReader.DecodeRgb(bytes, path);
        return new InputMedia(path, Convert.ToHexStringLower(SHA256.HashData(bytes)), [rgb], height, width, 1);
    }

    /// <summary>Reads the first <paramref name="frames"/> frames of a video file (through ffmpeg, as RGB24).</summary>
    public static InputMedia LoadVideo(string path, int frames)
    {
        CheckReadable(path, "video");
        string sha;
        try
        {
            using var stream = File.OpenRead(path);
            sha = Convert.ToHexStringLower(SHA256.HashData(stream));
        }
        catch (Exception e) when (FileErrors.IsFileError(e))
        {
            throw new CogVideoXException($"{path}: cannot read the input video ({FileErrors.Describe(e)})", e, GenerationRules.UsageExitCode);
        }
        List<byte[]> rgb;
        VideoInfo info;
        try
        {
            (rgb, info) = VideoDecoder.ReadRgb24(path, frames);
        }
        catch (CogVideoXException e) when (e.ExitCode != GenerationRules.UsageExitCode)
        {
            throw new CogVideoXException($"{e.Message}; give an MP4 (or another video ffmpeg reads) as --video", e, GenerationRules.UsageExitCode);
        }
        if (rgb.Count == 0)
            throw new CogVideoXException($"{path}: no frames could be decoded; give a video with frames in it", GenerationRules.UsageExitCode);
        return new InputMedia(path, sha, rgb, info.Height, info.Width, Math.Max(info.FrameCount, rgb.Count));
    }

    private static string MemoryText(long bytes) => bytes >= 1 << 20 ? $"{bytes / (1 << 20)} MiB" : $"{bytes} bytes";
}
