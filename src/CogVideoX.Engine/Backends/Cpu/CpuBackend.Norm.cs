using System.Numerics.Tensors;

namespace CogVideoX.Engine;

public sealed unsafe partial class CpuBackend
{
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
        WriteF32(y, ys =>
        {
            fixed (float* yp0 = ys)
            {
                float* yp = yp0;
                ParallelRange((long)n * groups, 1, (s, e) =>
                {
                    for (long ng = s; ng < e; ng++)
                    {
                        long start = ng * perGroup * spatial;
                        long len = perGroup * spatial;
                        var (mean, invStd) = MeanInvStd(xp + start, len, eps);
                        int g = (int)(ng % groups);
                        for (int ci = 0; ci < perGroup; ci++)
                        {
                            int ch = g * perGroup + ci;
                            float scale = invStd * (gp == null ? 1f : gp[ch]);
                            float shift = (bp == null ? 0f : bp[ch]) - (float)mean * scale;
                            long off = start + ci * spatial;
                            for (long s0 = 0; s0 < spatial; s0 += int.MaxValue / 2)
                            {
                                int cnt = (int)Math.Min(spatial - s0, int.MaxValue / 2);
                                var src = new ReadOnlySpan<float>(xp + off + s0, cnt);
                                var dst = new Span<float>(yp + off + s0, cnt);
                                TensorPrimitives.Multiply(src, scale, dst);
                                TensorPrimitives.Add(dst, shift, dst);
                                if (activation != Activation.None) ApplyActivationSpan(activation, dst);
                            }
                        }
                    }
                });
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
        WriteF32(y, ys =>
        {
            fixed (float* yp0 = ys)
            {
                float* yp = yp0;
                ParallelRange(rows, Math.Max(1, 8192 / w), (s, e) =>
                {
                    for (long r = s; r < e; r++)
                    {
                        // Row r is (n, c, t, hh); its modulation row is (n, c, t, hh / fh) of the small tensors.
                        long nct = r / h;
                        int hh = (int)(r % h);
                        long m = (nct * zh + hh / fh) * zw;
                        var dst = new Span<float>(yp + r * w, w);
                        float* src = np + r * w;
                        for (int i = 0; i < w; i++) dst[i] = src[i] * sp[m + i / fw] + bp[m + i / fw];
                        if (activation != Activation.None) ApplyActivationSpan(activation, dst);
                    }
                });
            }
        });
    }

    public void UpsampleNearest(Tensor x, Tensor y)
    {
        var (source, destination) = Ops.NearestUpsampleViews(x, y);
        using (source)
        using (destination)
            Copy(source, destination);
    }

    private static void ApplyActivationSpan(Activation activation, Span<float> span)
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

    /// <summary>Mean and 1/sqrt(biased variance + eps), accumulated in double (two passes).</summary>
    private static (double Mean, float InvStd) MeanInvStd(float* p, long len, float eps)
    {
        double sum = 0;
        for (long i = 0; i < len; i++) sum += p[i];
        double mean = sum / len;
        double sq = 0;
        for (long i = 0; i < len; i++)
        {
            double d = p[i] - mean;
            sq += d * d;
        }
        double variance = sq / len;
        return (mean, (float)(1.0 / Math.Sqrt(variance + eps)));
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
        WriteF32(y, ys =>
        {
            fixed (float* yp0 = ys)
            {
                float* yp = yp0;
                ParallelRange(ys.Length / d, Math.Max(1, 8192 / d), (s, e) =>
                {
                    for (long r = s; r < e; r++)
                    {
                        float* row = xp + r * d;
                        float* outRow = yp + r * d;
                        var (mean, invStd) = MeanInvStd(row, d, eps);
                        float m = (float)mean;
                        for (int i = 0; i < d; i++)
                        {
                            float v = (row[i] - m) * invStd;
                            if (gp != null) v *= gp[i];
                            if (bp != null) v += bp[i];
                            outRow[i] = v;
                        }
                    }
                });
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
        WriteF32(y, ys =>
        {
            fixed (float* yp0 = ys)
            {
                float* yp = yp0;
                ParallelRange(ys.Length / d, Math.Max(1, 8192 / d), (s, e) =>
                {
                    for (long r = s; r < e; r++)
                    {
                        float* row = xp + r * d;
                        float* outRow = yp + r * d;
                        float* scaleRow = sp + RowOffset(r, leading, scaleStrides);
                        float* shiftRow = hp + RowOffset(r, leading, shiftStrides);
                        var (mean, invStd) = MeanInvStd(row, d, eps);
                        float m = (float)mean;
                        for (int i = 0; i < d; i++)
                        {
                            float v = (row[i] - m) * invStd;
                            if (gp != null) v *= gp[i];
                            if (bp != null) v += bp[i];
                            outRow[i] = v * (1f + scaleRow[i]) + shiftRow[i];
                        }
                    }
                });
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
        WriteF32(y, ys =>
        {
            fixed (float* yp0 = ys)
            {
                float* yp = yp0;
                ParallelRange(ys.Length / d, Math.Max(1, 8192 / d), (s, e) =>
                {
                    for (long r = s; r < e; r++)
                    {
                        float* row = xp + r * d;
                        float* outRow = yp + r * d;
                        double sq = 0;
                        for (int i = 0; i < d; i++) sq += (double)row[i] * row[i];
                        float inv = (float)(1.0 / Math.Sqrt(sq / d + eps));
                        for (int i = 0; i < d; i++) outRow[i] = row[i] * inv * (gp == null ? 1f : gp[i]);
                    }
                });
            }
        });
    }

    public void Softmax(Tensor x, Tensor y)
    {
        using var xc = F32(x);
        int d = xc.Dim(-1);
        float* xp = Ptr<float>(xc);
        WriteF32(y, ys =>
        {
            fixed (float* yp0 = ys)
            {
                float* yp = yp0;
                ParallelRange(ys.Length / d, Math.Max(1, 8192 / d), (s, e) =>
                {
                    for (long r = s; r < e; r++)
                        SoftmaxRow(new ReadOnlySpan<float>(xp + r * d, d), new Span<float>(yp + r * d, d));
                });
            }
        });
    }

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
        float sum = SumPrecise(y);
        TensorPrimitives.Divide(y, sum, y);
    }
}
