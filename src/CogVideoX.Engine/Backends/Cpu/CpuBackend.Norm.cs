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
