namespace CogVideoX.Diffusion;

/// <summary>
/// An input picture or video for image-to-video or video-to-video, as read from its file: 8-bit RGB frames
/// (interleaved, row-major, alpha already dropped as PIL's <c>convert("RGB")</c> drops it), their size, and where
/// they came from (path and SHA-256 of the file, recorded in the sidecar). An image is one frame.
/// </summary>
/// <param name="Path">The file as the user named it.</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the file's bytes.</param>
/// <param name="Frames">RGB24 frames, each <c>Height × Width × 3</c> bytes.</param>
/// <param name="Height">Pixel rows of each frame.</param>
/// <param name="Width">Pixel columns of each frame.</param>
/// <param name="FramesInFile">Frames the file holds (a video may hold more than were read); null when not counted.</param>
public sealed record InputMedia(string Path, string Sha256, IReadOnlyList<byte[]> Frames, int Height, int Width, int? FramesInFile = null)
{
    public int FrameCount => Frames.Count;
}

/// <summary>
/// diffusers' <c>VideoProcessor.preprocess</c> / <c>preprocess_video</c> for PIL input, as CogVideoX's pipelines call
/// it: each frame resized to the video's height × width with PIL's Lanczos filter (<c>resize_mode="default"</c>: the
/// picture is stretched to the size, not cropped, as THUDM's demo and diffusers do it), then mapped to [−1, 1] as
/// <c>2 · (byte / 255) − 1</c> in float32.
/// </summary>
public static class VideoProcessor
{
    /// <summary>Frames <c>[first, first + count)</c> of <paramref name="input"/> as float32 [3, count, height, width] in [−1, 1].</summary>
    public static float[] Preprocess(InputMedia input, int height, int width, int count)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (count < 1 || count > input.FrameCount)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"{input.Path} has {input.FrameCount} frames");
        int plane = height * width;
        var result = new float[3 * count * plane];
        for (int f = 0; f < count; f++)
        {
            var rgb = PilResize.Lanczos(input.Frames[f], input.Height, input.Width, height, width);
            for (int p = 0; p < plane; p++)
                for (int c = 0; c < 3; c++)
                {
                    // numpy: astype(float32) / 255.0, then torch: 2.0 * x - 1.0, all in float32.
                    float v = rgb[3 * p + c] / 255f;
                    result[(c * count + f) * plane + p] = 2f * v - 1f;
                }
        }
        return result;
    }
}

/// <summary>
/// Pillow's <c>Image.resize(size, Image.LANCZOS)</c> on 8-bit RGB (its <c>Resample.c</c>): separable, horizontal pass
/// first (on the rows the vertical pass will read), then vertical; the filter is widened by the scale when shrinking
/// (antialiasing); weights normalised in double, then rounded to 22-bit fixed point; each pass rounds and clips to
/// 8 bits. Reproduces Pillow's bytes exactly (tested against Pillow's output).
/// </summary>
public static class PilResize
{
    private const int PrecisionBits = 32 - 8 - 2;
    private const double LanczosSupport = 3.0;

    /// <summary>Resizes interleaved RGB <paramref name="source"/> [inHeight, inWidth, 3] to [outHeight, outWidth, 3].</summary>
    public static byte[] Lanczos(byte[] source, int inHeight, int inWidth, int outHeight, int outWidth)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (inHeight < 1 || inWidth < 1 || outHeight < 1 || outWidth < 1)
            throw new ArgumentException($"cannot resize {inHeight}×{inWidth} to {outHeight}×{outWidth}: every size must be at least 1");
        if (source.Length != inHeight * inWidth * 3)
            throw new ArgumentException($"{source.Length} bytes are not an RGB image of {inHeight}×{inWidth}");
        if (inHeight == outHeight && inWidth == outWidth) return (byte[])source.Clone();

        bool horizontal = outWidth != inWidth, vertical = outHeight != inHeight;
        var (kernelH, boundsH, sizeH) = Coefficients(inWidth, outWidth);
        var (kernelV, boundsV, sizeV) = Coefficients(inHeight, outHeight);
        int firstRow = boundsV[0];
        int lastRow = boundsV[2 * (outHeight - 1)] + boundsV[2 * (outHeight - 1) + 1];

        byte[] current = source;
        int rows = inHeight, columns = inWidth;
        if (horizontal)
        {
            for (int i = 0; i < outHeight; i++) boundsV[2 * i] -= firstRow;
            rows = lastRow - firstRow;
            var temp = new byte[rows * outWidth * 3];
            for (int y = 0; y < rows; y++)
            {
                int rowBase = (y + firstRow) * inWidth * 3;
                for (int x = 0; x < outWidth; x++)
                {
                    int min = boundsH[2 * x], count = boundsH[2 * x + 1];
                    for (int c = 0; c < 3; c++)
                    {
                        int sum = 1 << (PrecisionBits - 1);
                        for (int k = 0; k < count; k++)
                            sum += source[rowBase + (min + k) * 3 + c] * kernelH[x * sizeH + k];
                        temp[(y * outWidth + x) * 3 + c] = Clip8(sum);
                    }
                }
            }
            current = temp;
            columns = outWidth;
        }
        if (!vertical) return current;

        var output = new byte[outHeight * columns * 3];
        for (int y = 0; y < outHeight; y++)
        {
            int min = boundsV[2 * y], count = boundsV[2 * y + 1];
            for (int x = 0; x < columns; x++)
                for (int c = 0; c < 3; c++)
                {
                    int sum = 1 << (PrecisionBits - 1);
                    for (int k = 0; k < count; k++)
                        sum += current[((min + k) * columns + x) * 3 + c] * kernelV[y * sizeV + k];
                    output[(y * columns + x) * 3 + c] = Clip8(sum);
                }
        }
        return output;
    }

    /// <summary>Pillow's <c>precompute_coeffs</c> + <c>normalize_coeffs_8bpc</c> for one axis (no crop box).</summary>
    private static (int[] Kernel, int[] Bounds, int KernelSize) Coefficients(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = LanczosSupport * filterScale;
        int kernelSize = (int)Math.Ceiling(support) * 2 + 1;
        var weights = new double[outSize * kernelSize];
        var bounds = new int[outSize * 2];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            double total = 0.0, ss = 1.0 / filterScale;
            int min = (int)(center - support + 0.5);
            if (min < 0) min = 0;
            int max = (int)(center + support + 0.5);
            if (max > inSize) max = inSize;
            max -= min;
            for (int x = 0; x < max; x++)
            {
                double w = LanczosFilter((x + min - center + 0.5) * ss);
                weights[xx * kernelSize + x] = w;
                total += w;
            }
            for (int x = 0; x < max; x++)
                if (total != 0.0) weights[xx * kernelSize + x] /= total;
            bounds[2 * xx] = min;
            bounds[2 * xx + 1] = max;
        }
        var kernel = new int[weights.Length];
        for (int i = 0; i < weights.Length; i++)
            kernel[i] = weights[i] < 0
                ? (int)(-0.5 + weights[i] * (1 << PrecisionBits))
                : (int)(0.5 + weights[i] * (1 << PrecisionBits));
        return (kernel, bounds, kernelSize);
    }

    private static double Sinc(double x)
    {
        if (x == 0.0) return 1.0;
        x *= Math.PI;
        return Math.Sin(x) / x;
    }

    private static double LanczosFilter(double x) => x >= -3.0 && x < 3.0 ? Sinc(x) * Sinc(x / 3.0) : 0.0;

    private static byte Clip8(int value)
    {
        if (value >= (1 << PrecisionBits << 8)) return 255;
        if (value <= 0) return 0;
        return (byte)(value >> PrecisionBits);
    }
}
