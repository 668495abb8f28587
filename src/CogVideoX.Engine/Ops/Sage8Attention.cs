namespace CogVideoX.Engine;

/// <summary>How a transformer's self-attention is computed.</summary>
public enum AttentionMode
{
    /// <summary>In the tensors' dtype with float accumulation (the default).</summary>
    Exact,

    /// <summary>
    /// 8-bit attention after SageAttention2 (Zhang et al., arXiv 2411.10958): K smoothed, Q and K in INT8 with per-thread
    /// scales, P and V in FP8 E4M3, float accumulation (<see cref="Sage8Attention"/>).
    /// </summary>
    Sage8,
}

/// <summary>
/// The exact CPU reference of the 8-bit attention (docs/fast-modes.md, "8-bit attention"): what the CUDA kernel
/// attention_sage8.cu computes, its quantization steps bit for bit (INT8 and E4M3 rounding, the same scale groups and
/// key tiles), its float arithmetic in a fixed order of its own (the GPU sums in a different order, so the two agree
/// to float rounding, not bit for bit). Slow (scalar managed code): it is there to measure fidelity.
/// <list type="number">
/// <item>K smoothing: k − mean over tokens of k, per batch, head and channel. Adding one vector to every key adds
/// q·mean to every score of a row, which softmax cancels; what it removes is the channel bias that would otherwise
/// take most of INT8's range (SageAttention's observation).</item>
/// <item>Q and K to INT8, symmetric, scale = amax/127 per group of the mma fragments' rows ("per-thread" in the paper):
/// Q per 16-row tile and row mod 8 (rows r and r+8, the rows one thread's accumulators hold), the softmax scale times
/// log2(e) folded into Q's scale; K per 64-token tile and (token mod 8) div 2 (the accumulator columns one thread holds).</item>
/// <item>S = (Σ q8·k8, exact in int32) · sq · sk, in float; online softmax in base 2 over steps of 64 keys (the
/// softmaxStep argument: 128 follows the wgmma kernel built with SAGE90_KEYS=128; K's scale block stays 64).</item>
/// <item>P = exp2(S − running max) ∈ [0, 1] to E4M3 as P·448 (a static scale: the largest value maps to E4M3's
/// largest); V to E4M3 per channel with scale amax over tokens / 448. The row sums are of the rounded P·448 that
/// P·V multiplies (the kernels sum them on the tensor cores, as P times a column of ones; common.cuh's
/// SAGE_TC_ROWSUM), so numerator and denominator weigh the same P.</item>
/// <item>Each step's P·V and row sums in float (the mma's own accumulator), then added to separate float
/// accumulators (SageAttention2's two-level accumulation: Hopper's FP8 mma accumulates with fewer than 32 bits, so long
/// sums do not stay in it); the result times V's channel scale / row sum, in the output's dtype.</item>
/// </list>
/// </summary>
public static class Sage8Attention
{
    /// <summary>Rows of one mma tile of Q; its rows r and r + 8 share a scale.</summary>
    public const int QueryRowTile = 16;

    /// <summary>Keys per tile (the kernel's key block): K's scale block and the online softmax's default step.</summary>
    public const int KeyTile = 64;

    /// <summary>log2(e), folded into Q's scale so the kernel's exponentials are exp2.</summary>
    public const float Log2E = 1.44269504088896341f;

    /// <summary>Quantized Q: values [rows, d] and one scale per row (its group's).</summary>
    public sealed record Quantized(sbyte[] Values, float[] RowScales);

    /// <summary>Q's INT8 values and per-row scales for one head ([n, d] row-major), <paramref name="factor"/> folded into the scales.</summary>
    public static Quantized QuantizeQuery(ReadOnlySpan<float> q, int n, int d, float factor)
    {
        var values = new sbyte[n * d];
        var scales = new float[n];
        for (int tile = 0; tile < n; tile += QueryRowTile)
        {
            for (int g = 0; g < 8; g++)
            {
                int r0 = tile + g, r1 = tile + g + 8;
                float amax = 0;
                foreach (int r in (ReadOnlySpan<int>)[r0, r1])
                    if (r < n)
                        for (int c = 0; c < d; c++) amax = MathF.Max(amax, MathF.Abs(q[r * d + c]));
                float s = Int8Quantizer.Scale(amax);
                foreach (int r in (ReadOnlySpan<int>)[r0, r1])
                {
                    if (r >= n) continue;
                    for (int c = 0; c < d; c++) values[r * d + c] = Int8Quantizer.Quantize(q[r * d + c], s);
                    scales[r] = s * factor;
                }
            }
        }
        return new Quantized(values, scales);
    }

    /// <summary>K's INT8 values and per-token scales for one head ([n, d], already smoothed).</summary>
    public static Quantized QuantizeKey(ReadOnlySpan<float> k, int n, int d)
    {
        var values = new sbyte[n * d];
        var scales = new float[n];
        for (int tile = 0; tile < n; tile += KeyTile)
        {
            int end = Math.Min(n, tile + KeyTile);
            for (int p = 0; p < 4; p++)
            {
                float amax = 0;
                for (int t = tile; t < end; t++)
                    if ((t % 8) / 2 == p)
                        for (int c = 0; c < d; c++) amax = MathF.Max(amax, MathF.Abs(k[t * d + c]));
                float s = Int8Quantizer.Scale(amax);
                for (int t = tile; t < end; t++)
                {
                    if ((t % 8) / 2 != p) continue;
                    for (int c = 0; c < d; c++) values[t * d + c] = Int8Quantizer.Quantize(k[t * d + c], s);
                    scales[t] = s;
                }
            }
        }
        return new Quantized(values, scales);
    }

    /// <summary>The per-token mean of k [n, d] per channel (float sums in token order).</summary>
    public static float[] KeyMean(ReadOnlySpan<float> k, int n, int d)
    {
        var mean = new float[d];
        for (int t = 0; t < n; t++)
            for (int c = 0; c < d; c++) mean[c] += k[t * d + c];
        for (int c = 0; c < d; c++) mean[c] /= n;
        return mean;
    }

    /// <summary>V's E4M3 codes [n, d] and per-channel scales (amax over tokens / 448; 1 for an all-zero channel).</summary>
    public static (byte[] Codes, float[] ChannelScales) QuantizeValue(ReadOnlySpan<float> v, int n, int d)
    {
        var scales = new float[d];
        for (int c = 0; c < d; c++)
        {
            float amax = 0;
            for (int t = 0; t < n; t++) amax = MathF.Max(amax, MathF.Abs(v[t * d + c]));
            float s = amax / E4M3.Max;
            scales[c] = s > 0 && float.IsFinite(s) ? s : 1f;
        }
        var codes = new byte[n * d];
        for (int t = 0; t < n; t++)
            for (int c = 0; c < d; c++) codes[t * d + c] = E4M3.FromFloat(v[t * d + c] / scales[c]);
        return (codes, scales);
    }

    /// <summary>
    /// The 8-bit attention of contiguous float q [B, H, Nq, D], k and v [B, H, Nk, D] (Nk ≥ 1); returns y [B, H, Nq, D].
    /// <paramref name="smoothKeys"/> false skips K smoothing (to measure what it buys). <paramref name="softmaxStep"/>:
    /// the keys the online softmax takes at once (one maximum, one correction, one two-level accumulation), a positive
    /// multiple of <see cref="KeyTile"/>; the kernel's, since a different step rounds P against a different maximum.
    /// </summary>
    public static float[] Compute(float[] q, float[] k, float[] v, int batch, int heads, int nq, int nk, int d, float scale, bool smoothKeys = true,
        int softmaxStep = KeyTile, bool linearExp = false)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        if (nk < 1) throw new ArgumentOutOfRangeException(nameof(nk), "8-bit attention needs at least one key");
        if (softmaxStep < KeyTile || softmaxStep % KeyTile != 0)
            throw new ArgumentOutOfRangeException(nameof(softmaxStep), softmaxStep, $"the softmax step must be a positive multiple of {KeyTile} keys");
        var y = new float[(long)batch * heads * nq * d];
        Parallel.For(0, batch * heads, bh =>
        {
            var qh = q.AsSpan(bh * nq * d, nq * d);
            var kh = k.AsSpan(bh * nk * d, nk * d).ToArray();
            var vh = v.AsSpan(bh * nk * d, nk * d);
            if (smoothKeys)
            {
                var mean = KeyMean(kh, nk, d);
                for (int t = 0; t < nk; t++)
                    for (int c = 0; c < d; c++) kh[t * d + c] -= mean[c];
            }
            var q8 = QuantizeQuery(qh, nq, d, scale * Log2E);
            var k8 = QuantizeKey(kh, nk, d);
            var (v8, vScales) = QuantizeValue(vh, nk, d);
            var vDecoded = Array.ConvertAll(v8, E4M3.ToFloat);
            var yh = y.AsSpan(bh * nq * d, nq * d);
            var s = new float[softmaxStep];
            var dots = new int[softmaxStep];
            var p = new float[softmaxStep];
            var tileSum = new float[d];
            var acc = new float[d];
            for (int i = 0; i < nq; i++)
            {
                float m = float.NegativeInfinity, l = 0;
                Array.Clear(acc);
                for (int tile = 0; tile < nk; tile += softmaxStep)
                {
                    int count = Math.Min(softmaxStep, nk - tile);
                    float tileMax = float.NegativeInfinity;
                    for (int j = 0; j < count; j++)
                    {
                        int t = tile + j, dot = 0;
                        for (int c = 0; c < d; c++) dot += q8.Values[i * d + c] * k8.Values[t * d + c];
                        dots[j] = dot;
                        s[j] = dot * (q8.RowScales[i] * k8.RowScales[t]);
                        tileMax = MathF.Max(tileMax, s[j]);
                    }
                    float mNew = MathF.Max(m, tileMax);
                    float correction = float.Exp2(m - mNew);  // 0 on the first tile (m = −∞)
                    if (linearExp) LinearProbabilities(dots, count, q8.RowScales[i], k8.RowScales.AsSpan(tile), mNew, p);
                    else
                        for (int j = 0; j < count; j++) p[j] = E4M3.Round(float.Exp2(s[j] - mNew) * E4M3.Max);
                    float rowSum = 0;
                    for (int j = 0; j < count; j++) rowSum += p[j];
                    l = l * correction + rowSum;
                    Array.Clear(tileSum);
                    for (int j = 0; j < count; j++)
                    {
                        int row = (tile + j) * d;
                        for (int c = 0; c < d; c++) tileSum[c] += p[j] * vDecoded[row + c];
                    }
                    for (int c = 0; c < d; c++) acc[c] = acc[c] * correction + tileSum[c];
                    m = mNew;
                }
                float inverse = 1f / l;
                for (int c = 0; c < d; c++) yh[i * d + c] = acc[c] * vScales[c] * inverse;
            }
        });
        return y;
    }

    /// <summary>log2(448) as the wgmma kernel writes it (SAGE90_LOG2_448): P·448 = exp2(s − m + log2 448).</summary>
    private const float Log2Max = 8.807354922057604f;

    /// <summary>
    /// P·448 in E4M3 for one row's tile of integer dot products as the wgmma kernel computes it with SAGE90_EXP_LIN=1,
    /// bit for bit: Schraudolph's exponential, the float whose bits are (y + 127)·2²³ (the mantissa linear in y's
    /// fraction, at most 6.1 % above 2^y), as one integer multiply-add on the dot product. Per 64-key scale block and K
    /// scale group (the keys one thread holds, tokens with the same (t mod 8) div 2): M = round(sc·2²³) and the bits of
    /// the group's largest dot product im, A = round(max(log2 448 + 127 + float(im)·sc − m, 0)·2²³); a dot product S
    /// gets A + (S − im)·M, 0 where that is negative (the kernel clamps S there; E4M3 rounds both to 0).
    /// </summary>
    public static void LinearProbabilities(ReadOnlySpan<int> dots, int count, float queryScale, ReadOnlySpan<float> keyScales, float max, Span<float> p)
    {
        for (int block = 0; block < count; block += KeyTile)
            for (int group = 0; group < 4; group++)
            {
                int im = int.MinValue, end = Math.Min(block + KeyTile, count);
                for (int j = block + 2 * group; j < end; j += 8)
                {
                    im = Math.Max(im, dots[j]);
                    if (j + 1 < end) im = Math.Max(im, dots[j + 1]);
                }
                if (im == int.MinValue) continue;
                float sc = queryScale * keyScales[block + 2 * group];
                int m = (int)MathF.Round(sc * 8388608f);
                float a = MathF.Max(Log2Max + 127f + ((float)im * sc - max), 0f) * 8388608f;
                long ai = (long)MathF.Round(a);
                for (int j = block + 2 * group; j < end; j += 8)
                    for (int e = j; e < Math.Min(j + 2, end); e++)
                    {
                        long bits = ai + (long)(dots[e] - im) * m;
                        p[e] = bits <= 0 ? 0f : E4M3.Round(BitConverter.Int32BitsToSingle((int)bits));
                    }
            }
    }

    /// <summary>
    /// <see cref="Compute"/> on tensors (any backend, dtype and strides; copied through the host): y = 8-bit attention of
    /// q [B, H, Nq, D], k and v [B, H, Nk, D], written into y (its dtype, any strides), in the numerics the emulation
    /// follows on this thread (<see cref="Sage8KernelChoice.EmulatedKernel"/>: its softmax step and exponentials).
    /// </summary>
    public static void Reference(Tensor q, Tensor k, Tensor v, float scale, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(y);
        int b = q.Dim(0), h = q.Dim(1), nq = q.Dim(2), d = q.Dim(3), nk = k.Dim(2);
        var result = Compute(q.ToFloatArray(), k.ToFloatArray(), v.ToFloatArray(), b, h, nq, nk, d, scale,
            softmaxStep: Sage8KernelChoice.EmulatedSoftmaxStep, linearExp: Sage8KernelChoice.EmulatedLinearExp);
        using var t = Tensor.FromArray(result, [b, h, nq, d], y.Backend, y.DType);
        y.Backend.Copy(t, y);
    }
}
