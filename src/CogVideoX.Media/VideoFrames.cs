using CogVideoX.Engine;

namespace CogVideoX.Media;

/// <summary>
/// Decoded video on the host: RGB, channel-first per frame ([F, 3, H, W]), values in [0, 1], as the pipeline
/// outputs them. Metrics, images and the encoder all read this.
/// </summary>
public sealed class VideoFrames
{
    public VideoFrames(float[] data, int count, int height, int width)
    {
        if ((long)count * 3 * height * width != data.Length)
            throw new ArgumentException($"{data.Length} values do not make {count} frames of 3×{height}×{width}");
        Data = data;
        Count = count;
        Height = height;
        Width = width;
    }

    public float[] Data { get; }

    public int Count { get; }

    public int Height { get; }

    public int Width { get; }

    public int FrameSize => 3 * Height * Width;

    /// <summary>From a [F, 3, H, W] tensor on any backend.</summary>
    public static VideoFrames FromTensor(Tensor frames)
    {
        if (frames.Rank != 4 || frames.Dim(1) != 3)
            throw new ArgumentException($"frames must be [F, 3, H, W], got {frames.ShapeString}");
        return new VideoFrames(frames.ToFloatArray(), frames.Dim(0), frames.Dim(2), frames.Dim(3));
    }

    public ReadOnlySpan<float> Frame(int index) => Data.AsSpan(index * FrameSize, FrameSize);

    /// <summary>One frame as interleaved 8-bit RGB (rounded, clamped), as video encoders and images want it.</summary>
    public void ToRgb24(int index, Span<byte> rgb)
    {
        int plane = Height * Width;
        if (rgb.Length < plane * 3) throw new ArgumentException("rgb buffer too small");
        var f = Frame(index);
        for (int p = 0; p < plane; p++)
        {
            rgb[3 * p] = ToByte(f[p]);
            rgb[3 * p + 1] = ToByte(f[plane + p]);
            rgb[3 * p + 2] = ToByte(f[2 * plane + p]);
        }
    }

    /// <summary>Builds frames from interleaved 8-bit RGB frames (what a decoder returns).</summary>
    public static VideoFrames FromRgb24(IReadOnlyList<byte[]> frames, int height, int width)
    {
        int plane = height * width;
        var data = new float[frames.Count * 3 * plane];
        for (int i = 0; i < frames.Count; i++)
        {
            var rgb = frames[i];
            int baseIndex = i * 3 * plane;
            for (int p = 0; p < plane; p++)
            {
                data[baseIndex + p] = rgb[3 * p] / 255f;
                data[baseIndex + plane + p] = rgb[3 * p + 1] / 255f;
                data[baseIndex + 2 * plane + p] = rgb[3 * p + 2] / 255f;
            }
        }
        return new VideoFrames(data, frames.Count, height, width);
    }

    // Same rounding as diffusers' numpy_to_pil: (x * 255).round().
    private static byte ToByte(float v) => (byte)Math.Clamp(MathF.Round(v * 255f), 0f, 255f);
}
