using System.Numerics.Tensors;

namespace CogVideoX.Engine;

public sealed unsafe partial class CpuBackend
{
    private const int QueryBlock = 32;

    /// <summary>
    /// Attention one block of queries at a time: scores for QueryBlock × Nk live in a per-task buffer, so memory is
    /// bounded by QueryBlock · Nk per thread instead of H · Nq · Nk.
    /// </summary>
    public void Attention(Tensor q, Tensor k, Tensor v, Tensor? bias, float scale, Tensor y)
    {
        using var qc = F32(q);
        using var kc = F32(k);
        using var vc = F32(v);
        int b = qc.Dim(0), h = qc.Dim(1), nq = qc.Dim(2), d = qc.Dim(3), nk = kc.Dim(2);
        // bias is a broadcast view [B, H, Nq, Nk]; read it through its strides (no copy of broadcast dims).
        using var bf = bias is null ? null : (bias.DType == DType.F32 ? bias.Alias() : F32(bias));
        float* qp = Ptr<float>(qc);
        float* kp = Ptr<float>(kc);
        float* vp = Ptr<float>(vc);
        float* biasPtr = bf is null ? null : Ptr<float>(bf);
        long bs0 = 0, bs1 = 0, bs2 = 0, bs3 = 0;
        if (bf is not null)
        {
            bs0 = bf.Layout.Stride(0); bs1 = bf.Layout.Stride(1); bs2 = bf.Layout.Stride(2); bs3 = bf.Layout.Stride(3);
        }
        using var result = Tensor.Empty(Instance, DType.F32, b, h, nq, d);
        float* op = Ptr<float>(result);
        int qBlocks = (nq + QueryBlock - 1) / QueryBlock;
        ParallelRange((long)b * h * qBlocks, 1, (s, e) =>
        {
            var scores = new float[QueryBlock * nk];
            var acc = new float[d];
            for (long task = s; task < e; task++)
            {
                int qb = (int)(task % qBlocks);
                long bh = task / qBlocks;
                int bi = (int)(bh / h), hi = (int)(bh % h);
                float* qh = qp + bh * nq * d;
                float* kh = kp + bh * nk * d;
                float* vh = vp + bh * nk * d;
                int i0 = qb * QueryBlock, i1 = Math.Min(nq, i0 + QueryBlock);
                for (int i = i0; i < i1; i++)
                {
                    var row = scores.AsSpan((i - i0) * nk, nk);
                    var qi = new ReadOnlySpan<float>(qh + (long)i * d, d);
                    for (int j = 0; j < nk; j++)
                        row[j] = TensorPrimitives.Dot(qi, new ReadOnlySpan<float>(kh + (long)j * d, d)) * scale;
                    if (biasPtr != null)
                    {
                        float* brow = biasPtr + bi * bs0 + hi * bs1 + i * bs2;
                        for (int j = 0; j < nk; j++) row[j] += brow[j * bs3];
                    }
                    SoftmaxRow(row, row);
                    Array.Clear(acc);
                    for (int j = 0; j < nk; j++)
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(vh + (long)j * d, d), row[j], acc, acc);
                    acc.AsSpan().CopyTo(new Span<float>(op + (bh * nq + i) * d, d));
                }
            }
        });
        Copy(result, y);
    }

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
        WriteF32(y, ys =>
        {
            fixed (float* yp0 = ys)
            {
                float* yp = yp0;
                ParallelRange(rows, Math.Max(1, 8192 / d), (s, e) =>
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
        });
    }

    public void Gather(Tensor table, Tensor indices, Tensor y)
    {
        using var ic = indices.Contiguous();
        long* ip = Ptr<long>(ic);
        int v = table.Dim(0), n = (int)ic.ElementCount;
        for (int i = 0; i < n; i++)
        {
            long id = ip[i];
            if (id < 0 || id >= v)
                throw new ArgumentOutOfRangeException(nameof(indices), $"embedding: id {id} is outside the table of {v} rows");
            using var src = table.Narrow(0, (int)id, 1);
            using var dst = y.Narrow(0, i, 1);
            Copy(src, dst);
        }
    }
}
