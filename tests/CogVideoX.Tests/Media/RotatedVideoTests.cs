using System.Diagnostics;
using CogVideoX.Lab;
using CogVideoX.Media;

namespace CogVideoX.Tests.Media;

/// <summary>
/// Videos stored sideways with a rotation, as phones record them: read upright, as a player shows them and as
/// diffusers' <c>load_video</c> (imageio-ffmpeg: ffmpeg with its default autorotation, frames at the output size) gives them.
/// </summary>
public class RotatedVideoTests
{
    private const int StoredWidth = 48, StoredHeight = 32, Frames = 5;

    /// <summary>ffmpeg with the given arguments; the test fails with its complaint when it does.</summary>
    private static void Ffmpeg(params string[] args)
    {
        var psi = new ProcessStartInfo(CogVideoX.Media.Ffmpeg.FfmpegPath) { RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-y", "-hide_banner", "-loglevel", "error" }.Concat(args)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"ffmpeg {string.Join(' ', args)}: {err}");
    }

    /// <summary>
    /// A lossless 48×32 test pattern, and copies of its stream (the same pixels) carrying a rotation: the container's
    /// display matrix, written from a <c>rotate</c> tag as phones' recorders write it.
    /// </summary>
    private static string MakeVideos(TempDir dir)
    {
        var source = dir.File("upright.mp4");
        Ffmpeg("-f", "lavfi", "-i", $"testsrc=size={StoredWidth}x{StoredHeight}:rate=8", "-frames:v", $"{Frames}",
            "-pix_fmt", "yuv420p", "-c:v", "libx264", "-qp", "0", source);
        foreach (var degrees in new[] { 90, 180, 270 })
            Ffmpeg("-i", source, "-c", "copy", "-metadata:s:v", $"rotate={degrees}", dir.File($"rotate{degrees}.mp4"));
        return source;
    }

    /// <summary>Pixel (x, y) of an interleaved RGB24 frame <paramref name="width"/> wide.</summary>
    private static (byte, byte, byte) Pixel(byte[] frame, int width, int x, int y)
    {
        int i = (y * width + x) * 3;
        return (frame[i], frame[i + 1], frame[i + 2]);
    }

    [Fact]
    public void ARotatedVideoIsReadUprightWithItsTurnedSize()
    {
        using var dir = new TempDir();
        var source = MakeVideos(dir);
        var (stored, storedInfo) = VideoDecoder.ReadRgb24(source);
        Assert.Equal((StoredWidth, StoredHeight, 0), (storedInfo.Width, storedInfo.Height, storedInfo.Rotation));
        Assert.Equal(Frames, stored.Count);

        foreach (var degrees in new[] { 90, 270 })
        {
            var path = dir.File($"rotate{degrees}.mp4");
            var (frames, info) = VideoDecoder.ReadRgb24(path);
            // Sideways: the upright size is the stored one turned, and every frame is the stored frame turned by the
            // rotation ffprobe reports (degrees counter-clockwise), pixel for pixel (the stream is lossless and copied).
            Assert.Equal(90, Math.Abs(info.Rotation));
            Assert.Equal((StoredHeight, StoredWidth, Frames), (info.Width, info.Height, info.FrameCount));
            Assert.Equal(Frames, frames.Count);
            bool counterClockwise = info.Rotation == 90;
            for (int f = 0; f < Frames; f++)
                for (int y = 0; y < info.Height; y++)
                    for (int x = 0; x < info.Width; x++)
                    {
                        // Counter-clockwise: the upright pixel (x, y) is the stored (W−1−y, x); clockwise: (y, H−1−x).
                        var (sx, sy) = counterClockwise ? (StoredWidth - 1 - y, x) : (y, StoredHeight - 1 - x);
                        Assert.Equal(Pixel(stored[f], StoredWidth, sx, sy), Pixel(frames[f], info.Width, x, y));
                    }
        }

        // Upside down: the same size, each frame turned half round.
        var (flipped, flippedInfo) = VideoDecoder.ReadRgb24(dir.File("rotate180.mp4"));
        Assert.Equal((StoredWidth, StoredHeight, 180), (flippedInfo.Width, flippedInfo.Height, Math.Abs(flippedInfo.Rotation)));
        Assert.Equal(Pixel(stored[2], StoredWidth, 0, 0), Pixel(flipped[2], StoredWidth, StoredWidth - 1, StoredHeight - 1));
        Assert.Equal(Pixel(stored[2], StoredWidth, 5, 3), Pixel(flipped[2], StoredWidth, StoredWidth - 6, StoredHeight - 4));
    }

    [Fact]
    public void VideoToVideoInputFromAPhoneIsUpright()
    {
        using var dir = new TempDir();
        MakeVideos(dir);
        var input = InputFiles.LoadVideo(dir.File("rotate90.mp4"), 3);
        // The pipeline resizes what it is given: an upright 32 wide, 48 high picture, three frames of it.
        Assert.Equal((48, 32, 3), (input.Height, input.Width, input.Frames.Count));
        var decoded = VideoDecoder.Read(dir.File("rotate90.mp4"));
        Assert.Equal((48, 32), (decoded.Height, decoded.Width));
    }
}
