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
        WriteF32(y, ys =>
        {
            fixed (float* yp0 = ys)
            {
                float* yp = yp0;
                // One task per (item, channel) plane: enough of them to balance even with few groups.
                ParallelRange((long)n * c, Math.Max(1, ElementChunk / Math.Max(spatial, 1)), (s, e) =>
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
        });
    }

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
        WriteF32(y, ys =>
        {
            fixed (float* yp0 = ys)
            {
                float* yp = yp0;
                ParallelRange(ys.Length / d, Math.Max(1, 8192 / d), (s, e) =>
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
        });
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
                        var row = new ReadOnlySpan<float>(xp + r * d, d);
                        var dst = new Span<float>(yp + r * d, d);
                        float inv = (float)(1.0 / Math.Sqrt(VectorMath.SumOfSquares(row) / d + eps));
                        TensorPrimitives.Multiply(row, inv, dst);
                        if (gp != null) TensorPrimitives.Multiply(dst, new ReadOnlySpan<float>(gp, d), dst);
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
