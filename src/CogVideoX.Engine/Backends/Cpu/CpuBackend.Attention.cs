using System.Numerics.Tensors;

namespace CogVideoX.Engine;

public sealed unsafe partial class CpuBackend
{
    /// <summary>
    /// The 8-bit attention's exact emulation (<see cref="Engine.Sage8Attention"/>): scalar, slow, for fidelity checks;
    /// in the numerics of the GPU kernel it follows (<see cref="Sage8KernelChoice.EmulatedKernel"/>).
    /// </summary>
    public void Sage8Attention(Tensor q, Tensor k, Tensor v, float scale, Tensor y) =>
        Engine.Sage8Attention.Reference(q, k, v, scale, y);

    /// <summary>
    /// Memory-bounded attention (see <see cref="FlashAttention"/>): float32 q/k/v/bias are read through their strides
    /// (head-interleaved [B, N, H, D] views need no copy), and a float32 output view is written in place.
    /// </summary>
    public void Attention(Tensor q, Tensor k, Tensor v, Tensor? bias, float scale, Tensor y)
    {
        using var qf = F32View(q);
        using var kf = F32View(k);
        using var vf = F32View(v);
        using var bf = bias is null ? null : F32View(bias);
        int b = q.Dim(0), h = q.Dim(1), nq = q.Dim(2), d = q.Dim(3), nk = k.Dim(2);
        Strided4? biasView = bf is null ? null : Strided4.Of(bf);
        if (y.DType == DType.F32)
        {
            FlashAttention.Run(Strided4.Of(qf), Strided4.Of(kf), Strided4.Of(vf), biasView, scale, Strided4.Of(y), b, h, nq, nk, d, Gemm.Current);
            return;
        }
        using var result = Tensor.Empty(this, DType.F32, b, h, nq, d);
        FlashAttention.Run(Strided4.Of(qf), Strided4.Of(kf), Strided4.Of(vf), biasView, scale, Strided4.Of(result), b, h, nq, nk, d, Gemm.Current);
        Copy(result, y);
    }

    /// <summary>
    /// The decomposition itself (this backend's norm, then its rotary in place on y, y's dtype between): on the CPU a
    /// fused pass would save nothing worth a second copy of the reference arithmetic.
    /// </summary>
    public void LayerNormRotary(Tensor x, Tensor? gamma, Tensor? beta, float eps, Tensor cos, Tensor sin, Tensor y) =>
        Decompositions.LayerNormRotary(x, gamma, beta, eps, cos, sin, y);

    public void Rotary(Tensor x, Tensor cos, Tensor sin, Tensor y)
    {
        using var xc = F32(x);
        using var cc = F32(cos);
        using var sc = F32(sin);
        int n = xc.Dim(2), d = xc.Dim(3);
        long rows = xc.ElementCount / d;
        float* xp = Ptr<float>(xc);
        float* cp = Ptr<float>(cc);
        float* sp = Ptr<float>(sc);
        WriteF32Parallel(y, rows, Math.Max(1, 8192 / d), (yp, s, e) =>
        {
            for (long r = s; r < e; r++)
            {
                long pos = r % n;
                float* xr = xp + r * d;
                float* yr = yp + r * d;
                float* cr = cp + pos * d;
                float* sr = sp + pos * d;
                for (int i = 0; i < d; i += 2)
                {
                    float re = xr[i], im = xr[i + 1];
                    yr[i] = re * cr[i] - im * sr[i];
                    yr[i + 1] = im * cr[i + 1] + re * sr[i + 1];
                }
            }
        });
    }

    /// <summary>Row lookup. Every id is checked before anything is written, so a bad id leaves y untouched.</summary>
    public void Gather(Tensor table, Tensor indices, Tensor y)
    {
        using var ic = indices.Contiguous();
        long* ip = Ptr<long>(ic);
        int v = table.Dim(0), n = (int)ic.ElementCount;
        for (int i = 0; i < n; i++)
        {
            long id = ip[i];
            if (id < 0 || id >= v)
                throw new ArgumentOutOfRangeException(nameof(indices), $"embedding: id {id} is outside the table of {v} rows (0 to {v - 1})");
        }
        if (table.Layout.Stride(1) == 1 && table.DType == y.DType && y.IsContiguous)
        {
            // Rows are contiguous in both: one block copy each.
            int size = table.DType.SizeOf();
            long rowBytes = (long)table.Dim(1) * size;
            byte* src = BasePointer(table) + table.Layout.Offset * size;
            byte* dst = BasePointer(y) + y.Layout.Offset * size;
            long rowStride = table.Layout.Stride(0) * size;
            ParallelRange(n, Math.Max(1, 65536 / Math.Max(rowBytes, 1)), (s, e) =>
            {
                for (long i = s; i < e; i++)
                    Buffer.MemoryCopy(src + ip[i] * rowStride, dst + i * rowBytes, rowBytes, rowBytes);
            });
            return;
        }
        for (int i = 0; i < n; i++)
        {
            using var src = table.Narrow(0, (int)ip[i], 1);
            using var dst = y.Narrow(0, i, 1);
            Copy(src, dst);
        }
    }
}
