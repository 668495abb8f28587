using System.Numerics.Tensors;

namespace CogVideoX.Engine;

public sealed unsafe partial class CpuBackend
{
    /// <summary>
    /// Statistics per (item, group) over C/groups channels × spatial (two vectorised passes, blocks summed in
    /// double), then one fused x·scale + shift pass per channel with the activation applied in place.
    /// </summary>
    public void GroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, float eps, Activation activation, Tensor y)
    {
        using var xc = F32(x);
        using var gc = gamma is null ? null : F32(gamma);
        using var bc = beta is null ? null : F32(beta);
        int n = xc.Dim(0), c = xc.Dim(1);
        long spatial = xc.ElementCount / Math.Max((long)n * c, 1);
        int perGroup = c / groups;
        float* xp = Ptr<float>(xc);
        float* gp = gc is null ? null : Ptr<float>(gc);
        float* bp = bc is null ? null : Ptr<float>(bc);
        var stats = new (float Mean, float InvStd)[n * groups];
        ParallelRange((long)n * groups, 1, (s, e) =>
        {
            for (long ng = s; ng < e; ng++)
                stats[ng] = MeanInvStd(xp + ng * perGroup * spatial, perGroup * spatial, eps);
        });
        // One task per (item, channel) plane: enough of them to balance even with few groups.
        WriteF32Parallel(y, (long)n * c, Math.Max(1, ElementChunk / Math.Max(spatial, 1)), (yp, s, e) =>
        {
            for (long nc = s; nc < e; nc++)
            {
                int ch = (int)(nc % c);
                var (mean, invStd) = stats[nc / c * groups + ch / perGroup];
                float scale = invStd * (gp == null ? 1f : gp[ch]);
                float shift = bp == null ? 0f : bp[ch];
                for (long s0 = 0; s0 < spatial; s0 += ElementChunk)
                {
                    int count = (int)Math.Min(spatial - s0, ElementChunk);
                    long off = nc * spatial + s0;
                    var dst = new Span<float>(yp + off, count);
                    VectorMath.Normalize(new ReadOnlySpan<float>(xp + off, count), mean, scale, shift, dst);
                    if (activation != Activation.None) ApplyActivationSpan(activation, dst);
                }
            }
        });
    }

    public void SpatialGroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Activation activation, Tensor y)
    {
        using var normed = Tensor.Empty(Instance, DType.F32, x.ShapeArray());
        GroupNorm(x, groups, gamma, beta, eps, Activation.None, normed);
        using var sc = F32(scale);
        using var hc = F32(shift);
        int t = x.Dim(2), h = x.Dim(3), w = x.Dim(4), zh = sc.Dim(3), zw = sc.Dim(4), fh = h / zh, fw = w / zw;
        long rows = x.ElementCount / w;
        float* np = Ptr<float>(normed);
        float* sp = Ptr<float>(sc);
        float* bp = Ptr<float>(hc);
        WriteF32Parallel(y, rows, Math.Max(1, 8192 / w), (yp, s, e) =>
        {
            for (long r = s; r < e; r++)
            {
                // Row r is (n, c, t, hh); its modulation row is (n, c, t, hh / fh) of the small tensors.
                long nct = r / h;
                int hh = (int)(r % h);
                long m = (nct * zh + hh / fh) * zw;
                var dst = new Span<float>(yp + r * w, w);
                float* src = np + r * w;
                for (int i = 0; i < w; i++)
                {
                    // Product and sum each rounded once, as the GPU kernel does.
                    float product = src[i] * sp[m + i / fw];
                    dst[i] = product + bp[m + i / fw];
                }
                if (activation != Activation.None) ApplyActivationSpan(activation, dst);
            }
        });
    }

    // Strided copies are already this backend's fastest form of the op.
    public void UpsampleNearest(Tensor x, Tensor y) => Decompositions.UpsampleNearest(x, y);

    /// <summary>Applies a fused activation in place.</summary>
    internal static void ApplyActivationSpan(Activation activation, Span<float> span)
    {
        var op = activation switch
        {
            Activation.GeluTanh => UnaryOp.GeluTanh,
            Activation.Gelu => UnaryOp.Gelu,
            Activation.Silu => UnaryOp.Silu,
            Activation.Relu => UnaryOp.Relu,
            _ => throw new ArgumentOutOfRangeException(nameof(activation)),
        };
        UnarySpan(op, span, span);
    }

    /// <summary>Mean and 1/sqrt(biased variance + eps), two passes accumulated in double.</summary>
    private static (float Mean, float InvStd) MeanInvStd(float* p, long len, float eps)
    {
        double mean = VectorMath.Sum(p, len) / len;
        double variance = VectorMath.SumSquaredDeviations(p, len, (float)mean) / len;
        return ((float)mean, (float)(1.0 / Math.Sqrt(variance + eps)));
    }

    public void LayerNorm(Tensor x, Tensor? gamma, Tensor? beta, float eps, Tensor y)
    {
        using var xc = F32(x);
        using var gc = gamma is null ? null : F32(gamma);
        using var bc = beta is null ? null : F32(beta);
        int d = xc.Dim(-1);
        float* xp = Ptr<float>(xc);
        float* gp = gc is null ? null : Ptr<float>(gc);
        float* bp = bc is null ? null : Ptr<float>(bc);
        WriteF32Parallel(y, y.ElementCount / d, Math.Max(1, 8192 / d), (yp, s, e) =>
        {
            for (long r = s; r < e; r++)
            {
                var (mean, invStd) = MeanInvStd(xp + r * d, d, eps);
                var dst = new Span<float>(yp + r * d, d);
                VectorMath.Normalize(new ReadOnlySpan<float>(xp + r * d, d), mean, invStd, 0f, dst);
                if (gp != null && bp != null)
                    TensorPrimitives.FusedMultiplyAdd(dst, new ReadOnlySpan<float>(gp, d), new ReadOnlySpan<float>(bp, d), dst);
                else if (gp != null) TensorPrimitives.Multiply(dst, new ReadOnlySpan<float>(gp, d), dst);
                else if (bp != null) TensorPrimitives.Add(dst, new ReadOnlySpan<float>(bp, d), dst);
            }
        });
    }

    public void ModulatedLayerNorm(Tensor x, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Tensor y)
    {
        using var xc = F32(x);
        using var gc = gamma is null ? null : F32(gamma);
        using var bc = beta is null ? null : F32(beta);
        // The modulation rows stay compact (broadcast dims are not materialised): row r of x reads row offset(r).
        using var sc = Compact(scale, out var scaleStrides);
        using var hc = Compact(shift, out var shiftStrides);
        int d = xc.Dim(-1);
        var leading = xc.Shape[..^1].ToArray();
        float* xp = Ptr<float>(xc);
        float* gp = gc is null ? null : Ptr<float>(gc);
        float* bp = bc is null ? null : Ptr<float>(bc);
        float* sp = Ptr<float>(sc);
        float* hp = Ptr<float>(hc);
        WriteF32Parallel(y, y.ElementCount / d, Math.Max(1, 8192 / d), (yp, s, e) =>
        {
            for (long r = s; r < e; r++)
            {
                float* row = xp + r * d;
                float* outRow = yp + r * d;
                float* scaleRow = sp + RowOffset(r, leading, scaleStrides);
                float* shiftRow = hp + RowOffset(r, leading, shiftStrides);
                // The plain LayerNorm's arithmetic (normalise, then γ·n + β fused), then the modulation:
                // (1 + scale) and the product and the sum each rounded once.
                var (mean, invStd) = MeanInvStd(row, d, eps);
                var dst = new Span<float>(outRow, d);
                VectorMath.Normalize(new ReadOnlySpan<float>(row, d), mean, invStd, 0f, dst);
                if (gp != null && bp != null)
                    TensorPrimitives.FusedMultiplyAdd(dst, new ReadOnlySpan<float>(gp, d), new ReadOnlySpan<float>(bp, d), dst);
                else if (gp != null) TensorPrimitives.Multiply(dst, new ReadOnlySpan<float>(gp, d), dst);
                else if (bp != null) TensorPrimitives.Add(dst, new ReadOnlySpan<float>(bp, d), dst);
                for (int i = 0; i < d; i++)
                {
                    float onePlus = 1f + scaleRow[i];
                    float product = outRow[i] * onePlus;
                    outRow[i] = product + shiftRow[i];
                }
            }
        });
    }

    /// <summary>
    /// An F32 contiguous copy of a broadcast view without its broadcast dims (they become size 1), and the strides
    /// that address it from an index of the full shape's leading dims (zero for the broadcast ones).
    /// </summary>
    private static Tensor Compact(Tensor t, out long[] leadingStrides)
    {
        var view = t.Alias();
        for (int dim = 0; dim < t.Rank; dim++)
        {
            if (t.Dim(dim) > 1 && t.Layout.Stride(dim) == 0)
            {
                var narrowed = view.Narrow(dim, 0, 1);
                view.Dispose();
                view = narrowed;
            }
        }
        using (view)
        {
            var c = F32(view);
            leadingStrides = new long[t.Rank - 1];
            for (int dim = 0; dim < t.Rank - 1; dim++) leadingStrides[dim] = c.Dim(dim) == 1 ? 0 : c.Layout.Stride(dim);
            return c;
        }
    }

    private static long RowOffset(long row, int[] leading, long[] strides)
    {
        long offset = 0;
        for (int dim = leading.Length - 1; dim >= 0; dim--)
        {
            offset += row % leading[dim] * strides[dim];
            row /= leading[dim];
        }
        return offset;
    }

    public void RmsNorm(Tensor x, Tensor? gamma, float eps, Tensor y)
    {
        using var xc = F32(x);
        using var gc = gamma is null ? null : F32(gamma);
        int d = xc.Dim(-1);
        float* xp = Ptr<float>(xc);
        float* gp = gc is null ? null : Ptr<float>(gc);
        WriteF32Parallel(y, y.ElementCount / d, Math.Max(1, 8192 / d), (yp, s, e) =>
        {
            for (long r = s; r < e; r++)
            {
                var row = new ReadOnlySpan<float>(xp + r * d, d);
                var dst = new Span<float>(yp + r * d, d);
                float inv = (float)(1.0 / Math.Sqrt(VectorMath.SumOfSquares(row) / d + eps));
                TensorPrimitives.Multiply(row, inv, dst);
                if (gp != null) TensorPrimitives.Multiply(dst, new ReadOnlySpan<float>(gp, d), dst);
            }
        });
    }

    public void Softmax(Tensor x, Tensor y)
    {
        using var xc = F32(x);
        int d = xc.Dim(-1);
        float* xp = Ptr<float>(xc);
        WriteF32Parallel(y, y.ElementCount / d, Math.Max(1, 8192 / d), (yp, s, e) =>
        {
            for (long r = s; r < e; r++)
                SoftmaxRow(new ReadOnlySpan<float>(xp + r * d, d), new Span<float>(yp + r * d, d));
        });
    }

    /// <summary>exp(x − max) / Σ; a row of −∞ only (everything masked) gives NaN, as torch does.</summary>
    internal static void SoftmaxRow(ReadOnlySpan<float> x, Span<float> y)
    {
        float max = TensorPrimitives.Max(x);
        if (float.IsNegativeInfinity(max))
        {
            y.Fill(float.NaN);
            return;
        }
        TensorPrimitives.Subtract(x, max, y);
        TensorPrimitives.Exp(y, y);
        TensorPrimitives.Multiply(y, (float)(1.0 / VectorMath.Sum(y)), y);
    }
}
