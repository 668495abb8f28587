using CogVideoX.Lab.Metrics;
using CogVideoX.Media;

namespace CogVideoX.Tests.Lab;

public class MetricsTests
{
    /// <summary>Frames where every pixel of frame t has grey level <paramref name="level"/>(t, y, x) (R = G = B, so luma = level).</summary>
    private static VideoFrames Grey(int count, int height, int width, Func<int, int, int, double> level)
    {
        int plane = height * width;
        var data = new float[count * 3 * plane];
        for (int t = 0; t < count; t++)
            for (int y = 0; y < height; y++)
                for (int x = 0; x < width; x++)
                    for (int c = 0; c < 3; c++)
                        data[t * 3 * plane + c * plane + y * width + x] = (float)level(t, y, x);
        return new VideoFrames(data, count, height, width);
    }

    private static VideoFrames Rgb(int height, int width, Func<int, int, (double R, double G, double B)> colour)
    {
        int plane = height * width;
        var data = new float[3 * plane];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                var (r, g, b) = colour(y, x);
                data[y * width + x] = (float)r;
                data[plane + y * width + x] = (float)g;
                data[2 * plane + y * width + x] = (float)b;
            }
        return new VideoFrames(data, 1, height, width);
    }

    [Fact]
    public void ConstantFramesHaveNoFlickerNoSharpnessNoColour()
    {
        var m = VideoMetrics.Measure(Grey(5, 20, 30, (_, _, _) => 0.4));
        Assert.Equal(0, m.Flicker);
        Assert.Equal(0, m.Sharpness, 9);
        Assert.Equal(0, m.Colourfulness, 9);
    }

    [Fact]
    public void FlickerIsTheMeanAbsoluteFrameDifference()
    {
        // Alternating 0.2 / 0.7: every step differs by 0.5.
        Assert.Equal(0.5, VideoMetrics.Flicker(Grey(6, 8, 8, (t, _, _) => t % 2 == 0 ? 0.2 : 0.7)), 6);
        // A ramp of 0.1 per frame on half the pixels: mean difference 0.05.
        Assert.Equal(0.05, VideoMetrics.Flicker(Grey(4, 8, 8, (t, _, x) => x < 4 ? 0.1 * t : 0.3)), 6);
        Assert.Equal(0, VideoMetrics.Flicker(Grey(1, 8, 8, (_, _, _) => 0.9)));
    }

    [Fact]
    public void SharpnessOfACheckerboardIsKnown()
    {
        // Luma alternates 0 / 255: the 4-neighbour Laplacian is ±4·255 on every interior pixel, mean 0,
        // so its variance is (4·255)² = 1,040,400.
        var checker = Grey(2, 16, 16, (_, y, x) => (x + y) % 2);
        Assert.Equal(1_040_400, VideoMetrics.Sharpness(checker), 3);
        // A linear ramp has zero Laplacian.
        Assert.Equal(0, VideoMetrics.Sharpness(Grey(1, 16, 16, (_, _, x) => x / 16.0)), 6);
        // Blurring lowers it.
        var soft = Grey(1, 16, 16, (_, y, x) => 0.5 + 0.25 * ((x + y) % 2 * 2 - 1));
        Assert.Equal(1_040_400 / 4.0, VideoMetrics.Sharpness(soft), 3);
    }

    [Fact]
    public void ColourfulnessFollowsHaslerSusstrunk()
    {
        // Half pure red, half pure green: rg = ±255 (mean 0, σ 255), yb = 127.5 everywhere (mean 127.5, σ 0).
        // M = √(255² + 0) + 0.3 √(0 + 127.5²) = 255 + 38.25.
        var redGreen = Rgb(10, 10, (_, x) => x < 5 ? (1, 0, 0) : (0, 1, 0));
        Assert.Equal(293.25, VideoMetrics.Colourfulness(redGreen), 3);
        // Pure blue everywhere: rg = 0, yb = −255 (σ 0): M = 0.3 × 255.
        Assert.Equal(76.5, VideoMetrics.Colourfulness(Rgb(4, 4, (_, _) => (0, 0, 1))), 3);
        Assert.Equal(0, VideoMetrics.Colourfulness(Grey(1, 4, 4, (_, y, x) => (x + y) / 8.0)), 6);
    }

    [Fact]
    public void IdenticalVideosHaveInfinitePsnrAndSsimOne()
    {
        var a = Grey(3, 24, 24, (t, y, x) => ((x * 7 + y * 3 + t) % 11) / 10.0);
        var d = VideoMetrics.Compare(a, a)!;
        Assert.True(double.IsPositiveInfinity(d.Psnr));
        Assert.Equal(1, d.Ssim, 9);
        Assert.Equal(3, d.Frames);
    }

    [Fact]
    public void KnownNoiseGivesKnownPsnr()
    {
        // ±0.01 on every pixel: MSE = 1e-4, PSNR = 10 log10(1 / 1e-4) = 40 dB exactly.
        var clean = Grey(4, 16, 16, (_, _, _) => 0.5);
        var noisy = Grey(4, 16, 16, (_, y, x) => 0.5 + ((x + y) % 2 == 0 ? 0.01 : -0.01));
        Assert.Equal(40, VideoMetrics.Compare(noisy, clean)!.Psnr, 3);
        // ±0.1: 20 dB.
        var noisier = Grey(4, 16, 16, (_, y, x) => 0.5 + ((x + y) % 2 == 0 ? 0.1 : -0.1));
        Assert.Equal(20, VideoMetrics.Compare(noisier, clean)!.Psnr, 3);
    }

    [Fact]
    public void SsimMatchesItsClosedFormOnConstantImages()
    {
        // Constant images a and b: σ = 0, so SSIM = (2ab + C1) / (a² + b² + C1) with C1 = 0.0001.
        var a = Grey(1, 16, 16, (_, _, _) => 0.3);
        var b = Grey(1, 16, 16, (_, _, _) => 0.6);
        double expected = (2 * 0.3 * 0.6 + 1e-4) / (0.09 + 0.36 + 1e-4);
        Assert.Equal(expected, VideoMetrics.Compare(a, b)!.Ssim, 5);
        // A frame against its negative: structure inverted, SSIM strongly negative.
        var pattern = Grey(1, 32, 32, (_, y, x) => (x / 4 + y / 4) % 2 == 0 ? 0.2 : 0.8);
        var negative = Grey(1, 32, 32, (_, y, x) => (x / 4 + y / 4) % 2 == 0 ? 0.8 : 0.2);
        Assert.True(VideoMetrics.Compare(pattern, negative)!.Ssim < -0.5);
    }

    [Fact]
    public void DifferencesAverageOverTheFramesBothVideosHave()
    {
        var shortClip = Grey(2, 16, 16, (_, _, _) => 0.5);
        // Frames 0–1 equal, frames 2–4 very different: only the first two count.
        var longClip = Grey(5, 16, 16, (t, _, _) => t < 2 ? 0.5 : 0.0);
        var d = VideoMetrics.Compare(shortClip, longClip)!;
        Assert.Equal(2, d.Frames);
        Assert.True(double.IsPositiveInfinity(d.Psnr));
        // Per-frame PSNR averaged: one frame at 40 dB, one at 20 dB → 30.
        var mixed = Grey(2, 16, 16, (t, y, x) => 0.5 + ((x + y) % 2 == 0 ? 1 : -1) * (t == 0 ? 0.01 : 0.1));
        Assert.Equal(30, VideoMetrics.Compare(mixed, Grey(2, 16, 16, (_, _, _) => 0.5))!.Psnr, 3);
        Assert.Null(VideoMetrics.Compare(Grey(1, 16, 16, (_, _, _) => 0), Grey(1, 32, 16, (_, _, _) => 0)));
    }
}
