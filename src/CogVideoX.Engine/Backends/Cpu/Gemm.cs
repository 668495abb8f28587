using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace CogVideoX.Engine;

/// <summary>Which micro-kernel the GEMM runs; Auto picks the widest the hardware accelerates.</summary>
internal enum GemmKernelKind : byte
{
    Auto,
    Vector512,
    Vector256,
    Vector128,
}

/// <summary>What is applied to C after the last reduction block: bias per column (linear), per row (convolution), activation.</summary>
internal readonly unsafe struct GemmEpilogue(float* columnBias, float* rowBias, Activation activation)
{
    public float* ColumnBias { get; } = columnBias;

    public float* RowBias { get; } = rowBias;

    public Activation Activation { get; } = activation;

    public bool IsEmpty => ColumnBias == null && RowBias == null && Activation == Activation.None;
}

/// <summary>
/// Float32 GEMM, C[m, n] = A[m, k] · B[k, n], in the BLIS structure: B is packed once per (KC × NC) block into
/// NR-wide panels shared by all threads; each task packs an MC × KC block of A into MR-tall panels and runs the
/// micro-kernel over the tiles, so the working set stays in L1 (a B panel) and L2 (the A block). Operands are
/// read through <see cref="IGemmOperandA"/>/<see cref="IGemmOperandB"/> packers, which lets convolution pack
/// im2col columns straight from its input and matmul read transposed or strided views without copies.
/// </summary>
internal static unsafe class Gemm
{
    /// <summary>Reduction block: a B panel of KC × NR floats stays in L1, an A block of MC × KC in L2.</summary>
    private const int KC = 256;

    /// <summary>Rows of A per task (rounded to the kernel's MR).</summary>
    private const int MCTarget = 128;

    /// <summary>Columns of B packed at once: KC × NC floats (4 MiB) shared through L3.</summary>
    private const int NCTarget = 4096;

    [ThreadStatic] private static GemmKernelKind t_kernel;

    /// <summary>The widest kernel this machine runs natively.</summary>
    public static GemmKernelKind Best { get; } =
        Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? GemmKernelKind.Vector512
        : Vector256.IsHardwareAccelerated && Fma.IsSupported ? GemmKernelKind.Vector256
        : GemmKernelKind.Vector128;

    /// <summary>The kernel GEMMs started on this thread use (tests pin each kind in turn).</summary>
    public static GemmKernelKind Current
    {
        get => t_kernel == GemmKernelKind.Auto ? Best : t_kernel;
        set => t_kernel = value;
    }

    public static string Describe(GemmKernelKind kind) => kind switch
    {
        GemmKernelKind.Vector512 => $"Vector512 {Kernel512.MR}x{Kernel512.NR}",
        GemmKernelKind.Vector256 => $"Vector256 {Kernel256.MR}x{Kernel256.NR}",
        GemmKernelKind.Vector128 => $"Vector128 {Kernel128.MR}x{Kernel128.NR}",
        _ => Describe(Best),
    };

    /// <summary>C[m, n] = A[m, k] · B[n, k]ᵀ (+ bias[n]); all row-major and contiguous (a linear layer).</summary>
    public static void MultiplyTransposed(float* a, float* b, float* c, int m, int n, int k, float* bias)
    {
        Multiply(new StridedMatrix(a, k, 1), new StridedMatrix(b, 1, k), c, n, m, n, k, new GemmEpilogue(bias, null, Activation.None));
    }

    /// <summary>Up to this many rows a linear layer streams its weight directly instead of packing it.</summary>
    public const int FewRows = 4;

    /// <summary>
    /// y[i, j] = epilogue(Σ_p x[i, p] · w[j, p]) for m ≤ <see cref="FewRows"/> rows with contiguous x rows and weight
    /// rows (a linear layer on one or two tokens, e.g. the timestep embedding). Packing the weight would cost as much as
    /// the product itself here; instead every weight row is read once and dotted with all rows of x, which stay in L1.
    /// </summary>
    public static void MultiplyFewRows(float* x, long xRowStride, float* w, long wRowStride, float* y, long ldy,
        int m, int n, int k, GemmEpilogue epilogue)
    {
        CpuBackend.ParallelRange(n, Math.Max(1, 16384 / Math.Max(k, 1)), (j0, j1) =>
        {
            for (long j = j0; j < j1; j++)
            {
                float* wr = w + j * wRowStride;
                int i = 0;
                for (; i + 2 <= m; i += 2)
                {
                    var (d0, d1) = Dot2(x + i * xRowStride, x + (i + 1) * xRowStride, wr, k);
                    y[i * ldy + j] = d0;
                    y[(i + 1) * ldy + j] = d1;
                }
                if (i < m) y[i * ldy + j] = TensorPrimitives.Dot(new ReadOnlySpan<float>(x + i * xRowStride, k), new ReadOnlySpan<float>(wr, k));
            }
            ApplyEpilogue(epilogue, y, ldy, 0, m, (int)j0, (int)j1);
        });
    }

    /// <summary>Two dot products sharing one read of w; two accumulators each hide the FMA latency.</summary>
    private static (float, float) Dot2(float* a, float* b, float* w, int k)
    {
        int p = 0;
        float sa = 0, sb = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> a0 = default, a1 = default, b0 = default, b1 = default;
            for (; p <= k - 16; p += 16)
            {
                var w0 = Vector256.Load(w + p);
                var w1 = Vector256.Load(w + p + 8);
                a0 = VectorFma.MulAdd(Vector256.Load(a + p), w0, a0);
                a1 = VectorFma.MulAdd(Vector256.Load(a + p + 8), w1, a1);
                b0 = VectorFma.MulAdd(Vector256.Load(b + p), w0, b0);
                b1 = VectorFma.MulAdd(Vector256.Load(b + p + 8), w1, b1);
            }
            sa = Vector256.Sum(a0 + a1);
            sb = Vector256.Sum(b0 + b1);
        }
        for (; p < k; p++)
        {
            sa += a[p] * w[p];
            sb += b[p] * w[p];
        }
        return (sa, sb);
    }

    /// <summary>C (row stride ldc) = epilogue(A · B) with any packable operands; parallel over blocks unless told not to.</summary>
    public static void Multiply<TA, TB>(TA a, TB b, float* c, long ldc, int m, int n, int k, GemmEpilogue epilogue,
        bool parallel = true, GemmKernelKind kind = GemmKernelKind.Auto)
        where TA : struct, IGemmOperandA
        where TB : struct, IGemmOperandB
    {
        if (m <= 0 || n <= 0) return;
        switch (kind == GemmKernelKind.Auto ? Current : kind)
        {
            case GemmKernelKind.Vector512: Run<Kernel512, TA, TB>(a, b, c, ldc, m, n, k, epilogue, parallel); break;
            case GemmKernelKind.Vector256: Run<Kernel256, TA, TB>(a, b, c, ldc, m, n, k, epilogue, parallel); break;
            default: Run<Kernel128, TA, TB>(a, b, c, ldc, m, n, k, epilogue, parallel); break;
        }
    }

    private static void Run<TK, TA, TB>(TA a, TB b, float* c, long ldc, int m, int n, int k, GemmEpilogue epilogue, bool parallel)
        where TK : IMicroKernel
        where TA : struct, IGemmOperandA
        where TB : struct, IGemmOperandB
    {
        int mr = TK.MR, nr = TK.NR;
        if (k == 0)
        {
            for (int i = 0; i < m; i++) new Span<float>(c + i * ldc, n).Clear();
            ApplyEpilogue(epilogue, c, ldc, 0, m, 0, n);
            return;
        }
        int mc = (MCTarget + mr - 1) / mr * mr;
        int ncBlock = Math.Min((NCTarget + nr - 1) / nr * nr, (n + nr - 1) / nr * nr);
        // Equal reduction blocks, so k = KC + 1 does not leave a one-deep block behind.
        int kBlocks = (k + KC - 1) / KC;
        int kcMax = (k + kBlocks - 1) / kBlocks;
        int mBlocks = (m + mc - 1) / mc;
        int threads = parallel ? CpuBackend.Threads : 1;
        float* bPack = (float*)NativeMemory.AlignedAlloc((nuint)((long)kcMax * ncBlock * sizeof(float)), 64);
        try
        {
            for (int jc = 0; jc < n; jc += ncBlock)
            {
                int nc = Math.Min(ncBlock, n - jc);
                int nPanels = (nc + nr - 1) / nr;
                // Few row blocks (a skinny A) are split along N too so every thread has work; each split repacks its
                // A block, which costs mc·kc against mc·kc·(columns of the split)·2 flops.
                int splits = Math.Clamp((2 * threads + mBlocks - 1) / mBlocks, 1, Math.Max(1, nPanels / 2));
                if (threads == 1) splits = 1;
                int panelsPerSplit = (nPanels + splits - 1) / splits;
                for (int kb = 0; kb < kBlocks; kb++)
                {
                    int pc = kb * kcMax;
                    int kc = Math.Min(kcMax, k - pc);
                    bool accumulate = kb > 0;
                    bool last = kb == kBlocks - 1;
                    int jcLocal = jc;
                    void PackPanels(long s, long e)
                    {
                        int j = jcLocal + (int)s * nr;
                        b.PackB(pc, kc, j, Math.Min((int)(e - s) * nr, n - j), nr, bPack + s * kc * nr);
                    }
                    if (threads == 1) PackPanels(0, nPanels);
                    else CpuBackend.ParallelRange(nPanels, 8, PackPanels);
                    ForEachTask(mBlocks * splits, threads, mc * kc, (task, aPack) =>
                    {
                        int ic = task / splits * mc;
                        int rows = Math.Min(mc, m - ic);
                        int p0 = task % splits * panelsPerSplit;
                        int p1 = Math.Min(nPanels, p0 + panelsPerSplit);
                        if (p0 >= p1) return;
                        int mPanels = (rows + mr - 1) / mr;
                        for (int ip = 0; ip < mPanels; ip++)
                            a.PackA(ic + ip * mr, Math.Min(mr, rows - ip * mr), pc, kc, mr, aPack + ip * kc * mr);
                        float* tile = stackalloc float[mr * nr];
                        for (int jp = p0; jp < p1; jp++)
                        {
                            int j = jcLocal + jp * nr;
                            int cols = Math.Min(nr, n - j);
                            float* bp = bPack + (long)jp * kc * nr;
                            for (int ip = 0; ip < mPanels; ip++)
                            {
                                int i = ic + ip * mr;
                                int tileRows = Math.Min(mr, m - i);
                                float* cp = c + i * ldc + j;
                                if (tileRows == mr && cols == nr)
                                {
                                    TK.Run(kc, aPack + ip * kc * mr, mr, bp, cp, ldc, accumulate);
                                }
                                else
                                {
                                    // Edge tile: compute the whole padded tile aside, keep the valid part.
                                    TK.Run(kc, aPack + ip * kc * mr, mr, bp, tile, nr, false);
                                    StoreTile(tile, nr, cp, ldc, tileRows, cols, accumulate);
                                }
                            }
                        }
                        // The task's C block is still in cache: add bias and activation now instead of another pass.
                        if (last && !epilogue.IsEmpty)
                            ApplyEpilogue(epilogue, c, ldc, ic, ic + rows, jcLocal + p0 * nr, Math.Min(n, jcLocal + p1 * nr));
                    });
                }
            }
        }
        finally
        {
            NativeMemory.AlignedFree(bPack);
        }
    }

    private static void StoreTile(float* tile, int nr, float* c, long ldc, int rows, int cols, bool accumulate)
    {
        for (int r = 0; r < rows; r++)
        {
            var src = new ReadOnlySpan<float>(tile + r * nr, cols);
            var dst = new Span<float>(c + r * ldc, cols);
            if (accumulate) TensorPrimitives.Add(src, dst, dst);
            else src.CopyTo(dst);
        }
    }

    /// <summary>Bias and activation over rows [i0, i1) × columns [j0, j1) of C.</summary>
    internal static void ApplyEpilogue(in GemmEpilogue e, float* c, long ldc, int i0, int i1, int j0, int j1)
    {
        if (e.IsEmpty) return;
        int cols = j1 - j0;
        for (int i = i0; i < i1; i++)
        {
            var row = new Span<float>(c + i * ldc + j0, cols);
            if (e.ColumnBias != null) TensorPrimitives.Add(row, new ReadOnlySpan<float>(e.ColumnBias + j0, cols), row);
            if (e.RowBias != null) TensorPrimitives.Add(row, e.RowBias[i], row);
            if (e.Activation != Activation.None) CpuBackend.ApplyActivationSpan(e.Activation, row);
        }
    }

    internal unsafe delegate void TaskBody(int task, float* scratch);

    /// <summary>Runs body for tasks [0, count), each worker with its own scratch of scratchFloats (64-byte aligned).</summary>
    internal static void ForEachTask(int count, int threads, int scratchFloats, TaskBody body)
    {
        nuint bytes = (nuint)((long)scratchFloats * sizeof(float));
        if (threads == 1 || count == 1)
        {
            float* scratch = (float*)NativeMemory.AlignedAlloc(bytes, 64);
            try
            {
                for (int t = 0; t < count; t++) body(t, scratch);
            }
            finally
            {
                NativeMemory.AlignedFree(scratch);
            }
            return;
        }
        Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = threads },
            () => (IntPtr)NativeMemory.AlignedAlloc(bytes, 64),
            (t, _, scratch) =>
            {
                body(t, (float*)scratch);
                return scratch;
            },
            scratch => NativeMemory.AlignedFree((void*)scratch));
    }
}
