using CogVideoX.Engine;

namespace CogVideoX.Models.Vae;

/// <summary>Frame-axis helpers for [B, C, T, H, W] video tensors.</summary>
internal static class Frames
{
    /// <summary>A new tensor whose frame i is x's frame source[i] (runs of a repeated frame are broadcast, then copied once).</summary>
    public static Tensor Gather(Tensor x, int[] source)
    {
        int b = x.Dim(0), c = x.Dim(1), h = x.Dim(3), w = x.Dim(4);
        var parts = new List<Tensor>();
        try
        {
            for (int i = 0; i < source.Length;)
            {
                int run = 1;
                while (i + run < source.Length && source[i + run] == source[i]) run++;
                using var frame = x.Narrow(2, source[i], 1);
                parts.Add(frame.BroadcastTo(b, c, run, h, w));
                i += run;
            }
            return Ops.Concat(2, parts.ToArray());
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <summary>
    /// Frames produced by diffusers' temporal ×2 up-sampling (compress_time): a single frame stays one frame, an odd
    /// count keeps its first frame and doubles the rest (T → 2T − 1), an even count doubles (T → 2T).
    /// </summary>
    public static int UpsampledCount(int frames) => frames switch
    {
        <= 1 => frames,
        _ when frames % 2 == 1 => 2 * frames - 1,
        _ => 2 * frames,
    };

    /// <summary>Source frame of each output frame for <see cref="UpsampledCount"/>.</summary>
    public static int[] UpsampledSource(int frames)
    {
        var source = new int[UpsampledCount(frames)];
        if (frames > 1 && frames % 2 == 1)
        {
            for (int i = 1; i < source.Length; i++) source[i] = 1 + (i - 1) / 2;
        }
        else if (frames > 1)
        {
            for (int i = 0; i < source.Length; i++) source[i] = i / 2;
        }
        return source;
    }
}
