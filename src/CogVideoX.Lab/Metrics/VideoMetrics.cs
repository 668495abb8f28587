using CogVideoX.Media;

namespace CogVideoX.Lab.Metrics;

/// <summary>What one video's frames say about it on their own.</summary>
public sealed record FrameMetrics
{
    /// <summary>Mean absolute difference between consecutive frames, over pixels and channels, on the [0, 1] scale.</summary>
    public double Flicker { get; init; }

    /// <summary>Variance of the Laplacian of luma (0–255 scale, as OpenCV users quote it), averaged over frames.</summary>
    public double Sharpness { get; init; }

    /// <summary>Hasler–Süsstrunk colourfulness (0–255 scale), averaged over frames: ≈ 0 grey, ≈ 50 moderately, ≥ 100 very colourful.</summary>
    public double Colourfulness { get; init; }
}

/// <summary>How far a video is from its experiment's reference video.</summary>
public sealed record ReferenceMetrics
{
    /// <summary>Mean over frames of the per-frame PSNR on luma, in dB (peak 1.0); +∞ when the frames are identical.</summary>
    public double Psnr { get; init; }

    /// <summary>Mean over frames of the per-frame SSIM on luma (Gaussian window 11, σ 1.5; 1 = identical).</summary>
    public double Ssim { get; init; }

    /// <summary>Frames compared: the first N both videos have.</summary>
    public int Frames { get; init; }
}

/// <summary>
/// Per-video quality measures computed from decoded frames (<see cref="VideoFrames"/>: [F, 3, H, W] in [0, 1]).
/// Luma is BT.601 (0.299 R + 0.587 G + 0.114 B), as OpenCV's grey conversion and most SSIM/PSNR tools use.
/// </summary>
public static class VideoMetrics
{
    public static FrameMetrics Measure(VideoFrames video) => new()
    {
        Flicker = Flicker(video),
        Sharpness = Sharpness(video),
        Colourfulness = Colourfulness(video),
    };

    /// <summary>Mean |frame[t] − frame[t−1]| over t, pixels and channels; 0 for a single frame.</summary>
    public static double Flicker(VideoFrames video)
    {
        if (video.Count < 2) return 0;
        double sum = 0;
        for (int t = 1; t < video.Count; t++)
        {
            var a = video.Frame(t - 1);
            var b = video.Frame(t);
            double frameSum = 0;
            for (int i = 0; i < a.Length; i++) frameSum += Math.Abs(b[i] - a[i]);
            sum += frameSum / a.Length;
        }
        return sum / (video.Count - 1);
    }

    /// <summary>
    /// Variance of the 4-neighbour Laplacian (kernel [0 1 0; 1 −4 1; 0 1 0], OpenCV's ksize 1) of luma on the 0–255
    /// scale, over the interior pixels (where the kernel fits), averaged over frames.
    /// </summary>
    public static double Sharpness(VideoFrames video)
    {
        int h = video.Height, w = video.Width;
        if (h < 3 || w < 3 || video.Count == 0) return 0;
        var luma = new float[h * w];
        double total = 0;
        for (int t = 0; t < video.Count; t++)
        {
            Luma(video, t, luma, 255f);
            double sum = 0, sumSq = 0;
            long n = 0;
            for (int y = 1; y < h - 1; y++)
            {
                int row = y * w;
                for (int x = 1; x < w - 1; x++)
                {
                    int p = row + x;
                    double lap = luma[p - w] + luma[p + w] + luma[p - 1] + luma[p + 1] - 4.0 * luma[p];
                    sum += lap;
                    sumSq += lap * lap;
                    n++;
                }
            }
            double mean = sum / n;
            total += Math.Max(0, sumSq / n - mean * mean);
        }
        return total / video.Count;
    }

    /// <summary>
    /// Hasler &amp; Süsstrunk (2003): rg = R − G, yb = (R + G)/2 − B on the 0–255 scale;
    /// M = √(σ²rg + σ²yb) + 0.3 √(μ²rg + μ²yb) with population moments; averaged over frames.
    /// </summary>
    public static double Colourfulness(VideoFrames video)
    {
        if (video.Count == 0) return 0;
        int plane = video.Height * video.Width;
        double total = 0;
        for (int t = 0; t < video.Count; t++)
        {
            var f = video.Frame(t);
            double sRg = 0, sRg2 = 0, sYb = 0, sYb2 = 0;
            for (int p = 0; p < plane; p++)
            {
                double r = f[p] * 255.0, g = f[plane + p] * 255.0, b = f[2 * plane + p] * 255.0;
                double rg = r - g, yb = 0.5 * (r + g) - b;
                sRg += rg;
                sRg2 += rg * rg;
                sYb += yb;
                sYb2 += yb * yb;
            }
            double mRg = sRg / plane, mYb = sYb / plane;
            double vRg = Math.Max(0, sRg2 / plane - mRg * mRg), vYb = Math.Max(0, sYb2 / plane - mYb * mYb);
            total += Math.Sqrt(vRg + vYb) + 0.3 * Math.Sqrt(mRg * mRg + mYb * mYb);
        }
        return total / video.Count;
    }

    /// <summary>
    /// PSNR and SSIM on luma ([0, 1], peak 1) per frame, averaged over the first N frames both videos have. Null when
    /// the frame sizes differ (nothing meaningful to compare).
    /// </summary>
    public static ReferenceMetrics? Compare(VideoFrames video, VideoFrames reference)
    {
        if (video.Height != reference.Height || video.Width != reference.Width) return null;
        int frames = Math.Min(video.Count, reference.Count);
        if (frames == 0) return null;
        // Frames are independent: spread them over cores, each thread with its own buffers.
        var psnr = new double[frames];
        var ssim = new double[frames];
        Parallel.For(0, frames,
            () => (A: new float[video.Height * video.Width], B: new float[video.Height * video.Width], Ssim: new SsimCalculator(video.Height, video.Width)),
            (t, _, local) =>
            {
                Luma(video, t, local.A, 1f);
                Luma(reference, t, local.B, 1f);
                psnr[t] = Psnr(local.A, local.B);
                ssim[t] = local.Ssim.Compute(local.A, local.B);
                return local;
            },
            _ => { });
        double psnrSum = psnr.Sum(), ssimSum = ssim.Sum();
        return new ReferenceMetrics { Psnr = psnrSum / frames, Ssim = ssimSum / frames, Frames = frames };
    }

    /// <summary>PSNR in dB of two images on the [0, 1] scale; +∞ when identical.</summary>
    public static double Psnr(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double sq = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = a[i] - b[i];
            sq += d * d;
        }
        double mse = sq / a.Length;
        return mse == 0 ? double.PositiveInfinity : 10.0 * Math.Log10(1.0 / mse);
    }

    /// <summary>SSIM of two luma images on the [0, 1] scale (see <see cref="SsimCalculator"/>).</summary>
    public static double Ssim(float[] a, float[] b, int height, int width) => new SsimCalculator(height, width).Compute(a, b);

    /// <summary>BT.601 luma of frame <paramref name="t"/>, times <paramref name="scale"/>.</summary>
    public static void Luma(VideoFrames video, int t, Span<float> luma, float scale)
    {
        int plane = video.Height * video.Width;
        var f = video.Frame(t);
        for (int p = 0; p < plane; p++)
            luma[p] = scale * (0.299f * f[p] + 0.587f * f[plane + p] + 0.114f * f[2 * plane + p]);
    }
}

/// <summary>
/// Structural similarity (Wang, Bovik, Sheikh, Simoncelli 2004) as their reference implementation computes it:
/// local statistics under an 11×11 Gaussian window (σ = 1.5, normalised), C1 = (0.01 L)², C2 = (0.03 L)² with L = 1,
/// population (co)variances, and the mean of the SSIM map over the positions where the window fits ("valid").
/// Images smaller than 11 pixels use the largest odd window that fits.
/// </summary>
public sealed class SsimCalculator
{
    private const double C1 = 0.01 * 0.01, C2 = 0.03 * 0.03;
    private readonly int _height, _width, _window;
    private readonly double[] _kernel;
    private readonly double[] _rows;

    public SsimCalculator(int height, int width)
    {
        _height = height;
        _width = width;
        _window = Math.Min(11, Math.Min(height, width));
        if (_window % 2 == 0) _window--;
        if (_window < 1) throw new ArgumentException("SSIM needs an image of at least 1×1");
        _kernel = new double[_window];
        int r = _window / 2;
        double sum = 0;
        for (int i = 0; i < _window; i++)
        {
            _kernel[i] = Math.Exp(-((i - r) * (i - r)) / (2 * 1.5 * 1.5));
            sum += _kernel[i];
        }
        for (int i = 0; i < _window; i++) _kernel[i] /= sum;
        // Five row-filtered maps: a, b, a², b², ab.
        _rows = new double[5 * height * (width - _window + 1)];
    }

    public double Compute(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        int h = _height, w = _width, k = _window, ow = w - k + 1, oh = h - k + 1, plane = h * ow;
        // Separable filter: rows first (into _rows), then columns at each valid position.
        for (int y = 0; y < h; y++)
        {
            int row = y * w;
            for (int x = 0; x < ow; x++)
            {
                double ma = 0, mb = 0, maa = 0, mbb = 0, mab = 0;
                for (int i = 0; i < k; i++)
                {
                    double g = _kernel[i], va = a[row + x + i], vb = b[row + x + i];
                    ma += g * va;
                    mb += g * vb;
                    maa += g * va * va;
                    mbb += g * vb * vb;
                    mab += g * va * vb;
                }
                int o = y * ow + x;
                _rows[o] = ma;
                _rows[plane + o] = mb;
                _rows[2 * plane + o] = maa;
                _rows[3 * plane + o] = mbb;
                _rows[4 * plane + o] = mab;
            }
        }
        double total = 0;
        for (int y = 0; y < oh; y++)
        {
            for (int x = 0; x < ow; x++)
            {
                double ma = 0, mb = 0, maa = 0, mbb = 0, mab = 0;
                for (int i = 0; i < k; i++)
                {
                    double g = _kernel[i];
                    int o = (y + i) * ow + x;
                    ma += g * _rows[o];
                    mb += g * _rows[plane + o];
                    maa += g * _rows[2 * plane + o];
                    mbb += g * _rows[3 * plane + o];
                    mab += g * _rows[4 * plane + o];
                }
                double va = maa - ma * ma, vb = mbb - mb * mb, cov = mab - ma * mb;
                total += (2 * ma * mb + C1) * (2 * cov + C2) / ((ma * ma + mb * mb + C1) * (va + vb + C2));
            }
        }
        return total / (oh * ow);
    }
}
