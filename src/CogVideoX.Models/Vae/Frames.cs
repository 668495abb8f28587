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

    /// <summary>
    /// Frames left by diffusers' temporal ×2 down-sampling (compress_time): a single frame stays one frame, an odd
    /// count keeps its first frame and averages the rest in pairs (T → 1 + (T − 1) / 2), an even count averages pairs.
    /// </summary>
    public static int DownsampledCount(int frames) => frames switch
    {
        <= 1 => frames,
        _ when frames % 2 == 1 => 1 + (frames - 1) / 2,
        _ => frames / 2,
    };

    /// <summary>
    /// The temporal half of compress_time (F.avg_pool1d with kernel and stride 2 over time, the first of an odd count
    /// kept as it is), consuming <paramref name="x"/>: (a + b) · ½ of each pair, read through strided views.
    /// </summary>
    public static Tensor AveragePairsConsuming(Tensor x)
    {
        int t = x.Dim(2);
        if (t <= 1) return x;
        using (x)
        {
            int first = t % 2;
            Tensor averaged;
            using (var even = x.Slice(2, first, t, 2))
            using (var odd = x.Slice(2, first + 1, t, 2))
            using (var sum = even.Add(odd))
                averaged = sum.Scale(0.5f);
            if (first == 0) return averaged;
            using (averaged)
            using (var kept = x.Narrow(2, 0, 1))
                return Ops.Concat(2, kept, averaged);
        }
    }

    /// <summary>
    /// diffusers' frame batches of <paramref name="perBatch"/> frames: max(F / perBatch, 1) batches, the first also
    /// taking the remainder (perBatch 2: 13 → 3, 2, 2, 2, 2, 2; perBatch 8: 49 → 9, 8, 8, 8, 8, 8 and 13 → 13).
    /// </summary>
    public static IEnumerable<(int Start, int Count)> Batches(int frames, int perBatch)
    {
        int batches = Math.Max(frames / perBatch, 1);
        int remainder = frames % perBatch;
        for (int i = 0; i < batches; i++)
        {
            int start = perBatch * i + (i == 0 ? 0 : remainder);
            int end = Math.Min(perBatch * (i + 1) + remainder, frames);
            yield return (start, end - start);
        }
    }
}
