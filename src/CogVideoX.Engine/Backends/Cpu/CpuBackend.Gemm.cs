using System.Numerics.Tensors;

namespace CogVideoX.Engine;

public sealed unsafe partial class CpuBackend
{
    public void Linear(Tensor x, Tensor weight, Tensor? bias, Activation activation, Tensor y)
    {
        using var xc = F32(x);
        using var wc = F32(weight);
        using var bc = bias is null ? null : F32(bias);
        int m = xc.Dim(0), k = xc.Dim(1), n = wc.Dim(0);
        float* xp = Ptr<float>(xc);
        float* wp = Ptr<float>(wc);
        float* bp = bc is null ? null : Ptr<float>(bc);
        WriteF32(y, ys =>
        {
            fixed (float* yp = ys)
            {
                Gemm.MultiplyTransposed(xp, wp, yp, m, n, k, bp);
                if (activation != Activation.None)
                    ApplyActivation(activation, yp, (long)m * n);
            }
        });
    }

    internal static void ApplyActivation(Activation activation, float* p, long count)
    {
        var op = activation switch
        {
            Activation.GeluTanh => UnaryOp.GeluTanh,
            Activation.Gelu => UnaryOp.Gelu,
            Activation.Silu => UnaryOp.Silu,
            Activation.Relu => UnaryOp.Relu,
            _ => throw new ArgumentOutOfRangeException(nameof(activation)),
        };
        ParallelRange(count, ElementChunk, (s, e) =>
        {
            var span = new Span<float>(p + s, (int)(e - s));
            UnarySpan(op, span, span);
        });
    }

    public void MatMul(Tensor a, Tensor b, Tensor y)
    {
        int m = y.Dim(-2), n = y.Dim(-1), k = a.Dim(-1);
        long batch = y.ElementCount / ((long)m * n);
        using var ac = F32(a);
        // b is needed as [batch, N, K] so each output is a dot of two contiguous rows.
        using var bt = b.Transpose(-1, -2);
        using var btc = bt.Clone();
        using var btf = F32(btc);
        float* ap = Ptr<float>(ac);
        float* bp = Ptr<float>(btf);
        WriteF32(y, ys =>
        {
            fixed (float* yp = ys)
            {
                for (long i = 0; i < batch; i++)
                    Gemm.MultiplyTransposed(ap + i * m * k, bp + i * n * k, yp + i * m * n, m, n, k, null);
            }
        });
    }
}

/// <summary>Float32 matrix kernels.</summary>
internal static unsafe class Gemm
{
    /// <summary>C[m, n] = A[m, k] · B[n, k]ᵀ (+ bias[n]); all row-major and contiguous.</summary>
    public static void MultiplyTransposed(float* a, float* b, float* c, int m, int n, int k, float* bias)
    {
        const int rowBlock = 4;
        long rowBlocks = (m + rowBlock - 1) / rowBlock;
        CpuBackend.ParallelRange(rowBlocks, Math.Max(1, 65536 / Math.Max((long)n * k / 64, 1)), (s, e) =>
        {
            for (long rb = s; rb < e; rb++)
            {
                int i0 = (int)(rb * rowBlock);
                int i1 = Math.Min(m, i0 + rowBlock);
                for (int j = 0; j < n; j++)
                {
                    var bj = new ReadOnlySpan<float>(b + (long)j * k, k);
                    float add = bias == null ? 0f : bias[j];
                    for (int i = i0; i < i1; i++)
                        c[(long)i * n + j] = TensorPrimitives.Dot(new ReadOnlySpan<float>(a + (long)i * k, k), bj) + add;
                }
            }
        });
    }
}
