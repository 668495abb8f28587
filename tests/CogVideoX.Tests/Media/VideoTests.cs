using CogVideoX.Engine;
using CogVideoX.Media;

namespace CogVideoX.Tests.Media;

public class VideoTests
{
    /// <summary>A moving colour gradient: smooth enough for H.264 to keep it close.</summary>
    private static VideoFrames Gradient(int count, int height, int width)
    {
        var data = new float[count * 3 * height * width];
        int plane = height * width;
        for (int f = 0; f < count; f++)
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                {
                    int p = y * width + x, b = f * 3 * plane;
                    data[b + p] = (float)x / width;
                    data[b + plane + p] = (float)y / height;
                    data[b + 2 * plane + p] = (float)f / Math.Max(count - 1, 1);
                }
        return new VideoFrames(data, count, height, width);
    }

    [Fact]
    public void Mp4IsH264Yuv420pWithEveryFrameAndDecodesBack()
    {
        using var dir = new TempDir();
        var frames = Gradient(9, 48, 64);
        var path = dir.File("out", "clip.mp4");
        VideoEncoder.WriteMp4(frames, path, new VideoEncoding { Fps = 8 });
        var info = VideoProbe.Probe(path);
        Assert.Equal((64, 48, 9), (info.Width, info.Height, info.FrameCount));
        Assert.Equal(8.0, info.Fps, 3);
        Assert.Equal("h264", info.Codec);
        Assert.Equal("yuv420p", info.PixelFormat);
        Assert.Empty(Directory.GetFiles(dir.File("out"), ".*partial*"));

        var back = VideoDecoder.Read(path);
        Assert.Equal(9, back.Count);
        double meanErr = frames.Data.Zip(back.Data, (a, b) => Math.Abs(a - b)).Average();
        Assert.True(meanErr < 0.02, $"mean decode error {meanErr}");
    }

    [Fact]
    public void OddSizesArePaddedToEven()
    {
        using var dir = new TempDir();
        var path = dir.File("odd.mp4");
        VideoEncoder.WriteMp4(Gradient(3, 15, 21), path);
        var info = VideoProbe.Probe(path);
        Assert.Equal((22, 16), (info.Width, info.Height));
    }

    [Fact]
    public void FailedEncodeLeavesNoFileAndSaysWhy()
    {
        using var dir = new TempDir();
        var path = dir.File("bad.mp4");
        var e = Assert.Throws<CogVideoXException>(() =>
            VideoEncoder.WriteMp4(Gradient(2, 16, 16), path, new VideoEncoding { Preset = "no-such-preset" }));
        Assert.Contains("ffmpeg failed", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void ProbingAMissingOrBrokenFileIsAClearError()
    {
        using var dir = new TempDir();
        Assert.Contains("no such video", Assert.Throws<CogVideoXException>(() => VideoProbe.Probe(dir.File("none.mp4"))).Message);
        File.WriteAllText(dir.File("junk.mp4"), "not a video");
        Assert.Contains("not a readable video", Assert.Throws<CogVideoXException>(() => VideoProbe.Probe(dir.File("junk.mp4"))).Message);
    }

    [Fact]
    public void KeyFrameGridHasARowPerVideo()
    {
        using var dir = new TempDir();
        var path = dir.File("grid.png");
        FrameImages.SaveKeyFrameGrid(new[] { ("a <b>", Gradient(5, 32, 48)), ("second", Gradient(9, 32, 48)) }, path, cellWidth: 96);
        using var bmp = SkiaSharp.SKBitmap.Decode(path);
        Assert.Equal(180 + 3 * (96 + 6) + 6, bmp.Width);
        Assert.Equal(24 + 2 * (64 + 6) + 6, bmp.Height);
        Assert.Equal(new[] { 0, 2, 4 }, FrameImages.KeyFrameIndices(5));
        Assert.Equal(new[] { 0 }, FrameImages.KeyFrameIndices(1));
    }
}
