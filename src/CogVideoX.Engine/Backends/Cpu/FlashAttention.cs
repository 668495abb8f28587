using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace CogVideoX.Engine;

/// <summary>A float32 tensor of rank 4 seen through its pointer and element strides.</summary>
internal readonly unsafe struct Strided4(float* data, long s0, long s1, long s2, long s3)
{
    public float* Data { get; } = data;

    public long S0 { get; } = s0;

    public long S1 { get; } = s1;

    public long S2 { get; } = s2;

    public long S3 { get; } = s3;

    public static Strided4 Of(Tensor t) =>
        new(CpuBackend.Ptr<float>(t), t.Layout.Stride(0), t.Layout.Stride(1), t.Layout.Stride(2), t.Layout.Stride(3));

    public float* At(long i0, long i1, long i2) => Data + i0 * S0 + i1 * S1 + i2 * S2;
}

/// <summary>
/// Blocked attention with an online softmax (the FlashAttention recurrence) on the GEMM micro-kernels.
/// For one block of BQ queries it walks the keys BK at a time: Sᵀ = K·Qᵀ (keys × queries, so the running
/// max and sum are vertical vector ops across queries), rescale, P = exp(Sᵀ − m), O += P·V. Per thread that is
/// BK × BQ + BQ × D floats, whatever the sequence length: no [Nq, Nk] matrix ever exists.
/// K and V are packed once per head (O(N·D)), in the micro-kernel's A and B panel formats.
/// </summary>
internal static unsafe class FlashAttention
{
    /// <summary>Keys per block (rounded to MR): the score block BK × BQ stays in L1/L2.</summary>
    private const int KeyBlock = 256;

    /// <summary>Queries per task (rounded to a multiple of MR and NR).</summary>
    private const int QueryBlock = 64;

    public static void Run(Strided4 q, Strided4 k, Strided4 v, Strided4? bias, float scale, Strided4 y,
        int batch, int heads, int nq, int nk, int d, GemmKernelKind kind)
    {
        switch (kind == GemmKernelKind.Auto ? Gemm.Current : kind)
        {
            case GemmKernelKind.Vector512: Run<Kernel512>(q, k, v, bias, scale, y, batch, heads, nq, nk, d); break;
            case GemmKernelKind.Vector256: Run<Kernel256>(q, k, v, bias, scale, y, batch, heads, nq, nk, d); break;
            default: Run<Kernel128>(q, k, v, bias, scale, y, batch, heads, nq, nk, d); break;
        }
    }

    private static void Run<TK>(Strided4 q, Strided4 k, Strided4 v, Strided4? bias, float scale, Strided4 y,
        int batch, int heads, int nq, int nk, int d)
        where TK : IMicroKernel
    {
        int mr = TK.MR, nr = TK.NR;
        int lcm = Lcm(mr, nr);
        int bq = (QueryBlock + lcm - 1) / lcm * lcm;
        int bk = (KeyBlock + mr - 1) / mr * mr;
        int dPad = (d + nr - 1) / nr * nr;
        int nkPad = (nk + mr - 1) / mr * mr;
        int qBlocks = (nq + bq - 1) / bq;
        long kPackFloats = (long)nkPad * d;
        long vPackFloats = (long)nk * dPad;
        int threads = CpuBackend.Threads;
        // Heads are processed in groups: large enough that packing and query tasks keep every thread busy between
        // the group's two parallel phases, small enough to bound the packs (about 64 MiB, at least one head).
        int totalHeads = batch * heads;
        long packBytes = (kPackFloats + vPackFloats) * sizeof(float);
        int wanted = Math.Max(2 * threads, (8 * threads + qBlocks - 1) / qBlocks);
        int group = (int)Math.Clamp(Math.Min(wanted, (64L << 20) / Math.Max(packBytes, 1)), 1, totalHeads);
        using var packs = new NativeBuffer((kPackFloats + vPackFloats) * group);
        float* kPacks = packs.Pointer;
        float* vPacks = packs.Pointer + kPackFloats * group;
        int scratch = d * bq + bk * bq + bq * dPad + 4 * bq;
        for (int g0 = 0; g0 < totalHeads; g0 += group)
        {
            int count = Math.Min(group, totalHeads - g0);
            CpuBackend.ParallelRange(count, 1, (s, e) =>
            {
                for (long g = s; g < e; g++)
                {
                    long bh = g0 + g;
                    long bi = bh / heads, hi = bh % heads;
                    var keys = new StridedMatrix(k.At(bi, hi, 0), k.S2, k.S3);
                    float* kp = kPacks + g * kPackFloats;
                    for (int j = 0; j < nk; j += mr)
                        keys.PackA(j, Math.Min(mr, nk - j), 0, d, mr, kp + (long)j * d);
                    new StridedMatrix(v.At(bi, hi, 0), v.S2, v.S3).PackB(0, nk, 0, d, nr, vPacks + g * vPackFloats);
                }
            });
            Gemm.ForEachTask(count * qBlocks, threads, scratch, (task, buffer) =>
            {
                int g = task / qBlocks;
                int i0 = task % qBlocks * bq;
                long bh = g0 + g;
                int bi = (int)(bh / heads), hi = (int)(bh % heads);
                QueryBlockTask<TK>(q, bias, scale, y, bi, hi, i0, Math.Min(bq, nq - i0), nk, d,
                    kPacks + g * kPackFloats, vPacks + g * vPackFloats, bq, bk, dPad, buffer);
            });
        }
    }

    private static void QueryBlockTask<TK>(Strided4 q, Strided4? bias, float scale, Strided4 y, int bi, int hi,
        int i0, int rows, int nk, int d, float* kPack, float* vPack, int bq, int bk, int dPad, float* buffer)
        where TK : IMicroKernel
    {
        int mr = TK.MR, nr = TK.NR;
        float* qPack = buffer;
        float* scores = qPack + d * bq;            // Sᵀ block [bk][bq]
        float* output = scores + bk * bq;          // O [bq][dPad]
        float* rowMax = output + bq * dPad;        // running max per query
        float* rowSum = rowMax + bq;               // running denominator per query
        float* safeMax = rowSum + bq;              // max with −∞ replaced by 0, so exp(−∞ − max) = 0, never NaN
        float* alpha = safeMax + bq;               // rescale of what was accumulated so far
        var maxSpan = new Span<float>(rowMax, bq);
        var sumSpan = new Span<float>(rowSum, bq);
        var alphaSpan = new Span<float>(alpha, bq);

        // Qᵀ as the B operand [d, queries]; padded query columns are zero and never written out.
        int packed = (rows + nr - 1) / nr * nr * d;
        new StridedMatrix(q.At(bi, hi, i0), q.S3, q.S2).PackB(0, d, 0, rows, nr, qPack);
        new Span<float>(qPack + packed, bq * d - packed).Clear();
        // Scaling the queries once scales every score (one rounding of q·scale instead of one per score).
        TensorPrimitives.Multiply(new ReadOnlySpan<float>(qPack, packed), scale, new Span<float>(qPack, packed));
        new Span<float>(output, bq * dPad).Clear();
        maxSpan.Fill(float.NegativeInfinity);
        sumSpan.Clear();

        for (int j0 = 0; j0 < nk; j0 += bk)
        {
            int keys = Math.Min(bk, nk - j0);
            int keyPanels = (keys + mr - 1) / mr;
            for (int ip = 0; ip < keyPanels; ip++)
                for (int jp = 0; jp < bq / nr; jp++)
                    TK.Run(d, kPack + (long)(j0 + ip * mr) * d, mr, qPack + jp * d * nr, scores + ip * mr * bq + jp * nr, bq, false);

            if (bias is { } bs)
            {
                for (int i = 0; i < rows; i++)
                {
                    float* br = bs.At(bi, hi, i0 + i) + j0 * bs.S3;
                    for (int kk = 0; kk < keys; kk++) scores[kk * bq + i] += br[kk * bs.S3];
                }
            }

            // Online softmax, vertically across the query columns.
            BlockMax(scores, keys, bq, alpha);
            for (int i = 0; i < bq; i++)
            {
                float m = Math.Max(rowMax[i], alpha[i]);
                float safe = float.IsNegativeInfinity(m) ? 0f : m;
                alpha[i] = rowMax[i] - safe;
                rowMax[i] = m;
                safeMax[i] = safe;
            }
            TensorPrimitives.Exp(alphaSpan, alphaSpan);
            TensorPrimitives.Multiply(sumSpan, alphaSpan, sumSpan);
            ExpAndSum(scores, keys, bq, safeMax, rowSum);
            for (int i = 0; i < bq; i++)
            {
                var o = new Span<float>(output + i * dPad, dPad);
                TensorPrimitives.Multiply(o, alpha[i], o);
            }

            // O += P·V with P read in place: its A panel for queries ip·MR.. is column block ip of Sᵀ (stride bq).
            for (int ip = 0; ip < bq / mr; ip++)
                for (int jp = 0; jp < dPad / nr; jp++)
                    TK.Run(keys, scores + ip * mr, bq, vPack + (long)jp * nk * nr + (long)j0 * nr, output + ip * mr * dPad + jp * nr, dPad, true);
        }

        for (int i = 0; i < rows; i++)
        {
            // A fully masked row has sum 0 and gives NaN, as softmax over all −∞ does.
            float inv = 1f / rowSum[i];
            float* dst = y.At(bi, hi, i0 + i);
            float* src = output + i * dPad;
            if (y.S3 == 1) TensorPrimitives.Multiply(new ReadOnlySpan<float>(src, d), inv, new Span<float>(dst, d));
            else for (int c = 0; c < d; c++) dst[c * y.S3] = src[c] * inv;
        }
    }

    // The two softmax passes below run over short rows (one per key, bq wide), where a library call per row would
    // cost as much as the arithmetic: plain vector loops instead (bq is a multiple of 8).

    /// <summary>result[c] = max over the first rows of a [rows][width] block, per column.</summary>
    private static void BlockMax(float* block, int rows, int width, float* result)
    {
        new ReadOnlySpan<float>(block, width).CopyTo(new Span<float>(result, width));
        for (int kk = 1; kk < rows; kk++)
        {
            float* row = block + kk * width;
            int c = 0;
            if (Vector256.IsHardwareAccelerated)
                for (; c <= width - 8; c += 8)
                    Vector256.Max(Vector256.Load(result + c), Vector256.Load(row + c)).Store(result + c);
            for (; c < width; c++) result[c] = Math.Max(result[c], row[c]);
        }
    }

    /// <summary>block[kk][c] = exp(block[kk][c] − max[c]) for the first rows; sum[c] += the column's new values.</summary>
    private static void ExpAndSum(float* block, int rows, int width, float* max, float* sum)
    {
        for (int kk = 0; kk < rows; kk++)
        {
            float* row = block + kk * width;
            int c = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                for (; c <= width - 8; c += 8)
                {
                    var e = Vector256.Exp(Vector256.Load(row + c) - Vector256.Load(max + c));
                    e.Store(row + c);
                    (Vector256.Load(sum + c) + e).Store(sum + c);
                }
            }
            for (; c < width; c++)
            {
                row[c] = MathF.Exp(row[c] - max[c]);
                sum[c] += row[c];
            }
        }
    }

    private static int Lcm(int a, int b)
    {
        int x = a, y = b;
        while (y != 0) (x, y) = (y, x % y);
        return a / x * b;
    }
}

/// <summary>64-byte aligned native scratch memory, freed on Dispose.</summary>
internal readonly unsafe struct NativeBuffer : IDisposable
{
    public NativeBuffer(long floats) =>
        Pointer = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)(Math.Max(floats, 1) * sizeof(float)), 64);

    public float* Pointer { get; }

    public void Dispose() => System.Runtime.InteropServices.NativeMemory.AlignedFree(Pointer);
}
