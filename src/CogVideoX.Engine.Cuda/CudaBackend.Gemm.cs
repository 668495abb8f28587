namespace CogVideoX.Engine.Cuda;

public sealed unsafe partial class CudaBackend
{
    private const int MaxCachedPlans = 1024;

    private readonly Dictionary<GemmKey, GemmPlan> _plans = new();

    /// <summary>A row-major view of a matrix (or a batch of them) in device memory: element (r, c) at r·RowStride + c·ColStride.</summary>
    private readonly record struct Matrix(ulong Pointer, int Rows, int Cols, long RowStride, long ColStride, long BatchStride);

    public void Linear(Tensor x, Tensor weight, Tensor? bias, Activation activation, Tensor y)
    {
        using var profiled = Profile("linear", y, activation);
        if (y.ElementCount == 0) return;
        using var xs = Gemmable(x);
        using var ws = Gemmable(weight);
        using var bc = bias is null ? null : BiasIn(bias, x.DType);
        // cuBLASLt fuses the bias, ReLU and its tanh-approximated GELU. Exact GELU and SiLU run after the GEMM, and so
        // does GELU for F32, whose results are checked against the CPU at float32 tolerance.
        bool fuseGelu = x.DType != DType.F32;
        var fused = activation switch
        {
            Activation.GeluTanh when fuseGelu => bc is null ? CublasLt.EpilogueGelu : CublasLt.EpilogueGeluBias,
            Activation.Relu => bc is null ? CublasLt.EpilogueRelu : CublasLt.EpilogueReluBias,
            _ => bc is null ? CublasLt.EpilogueDefault : CublasLt.EpilogueBias,
        };
        UnaryOp? separate = activation switch
        {
            Activation.Gelu => UnaryOp.Gelu,
            Activation.Silu => UnaryOp.Silu,
            Activation.GeluTanh when !fuseGelu => UnaryOp.GeluTanh,
            _ => null,
        };
        WithGemmOutput(y, x.DType, output =>
        {
            int m = xs.Dim(0), k = xs.Dim(1), n = ws.Dim(0);
            var a = MatrixOf(xs, 0);
            // weight [N, K] read as its transpose [K, N].
            var b = new Matrix(Ptr(ws), k, n, ws.Layout.Stride(1), ws.Layout.Stride(0), 0);
            var c = new Matrix(Ptr(output), m, n, n, 1, 0);
            Gemm(x.DType, a, b, c, 1, fused, bc is null ? 0 : Ptr(bc));
            if (separate is { } op) Map((int)op, 0f, 0f, output, output);
        });
    }

    public void MatMul(Tensor a, Tensor b, Tensor y)
    {
        using var profiled = Profile("matmul", y);
        if (y.ElementCount == 0) return;
        int rank = y.Rank;
        using var ag = Gemmable(a);
        using var bg = Gemmable(b);
        WithGemmOutput(y, a.DType, output =>
        {
            int m = output.Dim(-2), n = output.Dim(-1), k = ag.Dim(-1);
            // Batch dims of the three operands, collapsed together; the innermost is cuBLASLt's strided batch.
            var batchShape = output.Shape[..(rank - 2)];
            var map = IndexMap3.Create(batchShape, ag.Layout.Strides[..(rank - 2)], bg.Layout.Strides[..(rank - 2)], output.Layout.Strides[..(rank - 2)]);
            int inner = (int)map.Shape[map.Rank - 1];
            long sa = map.Strides[map.Rank - 1], sb = map.Strides[IndexMap3.MaxDims + map.Rank - 1], sy = map.Strides[2 * IndexMap3.MaxDims + map.Rank - 1];
            long outer = map.Count / inner;
            int esA = ag.DType.SizeOf(), esY = output.DType.SizeOf();
            for (long o = 0; o < outer; o++)
            {
                // Offsets of outer batch index o (all collapsed dims but the innermost).
                long rem = o, oa = 0, ob = 0, oy = 0;
                for (int d = map.Rank - 2; d >= 0; d--)
                {
                    long i = rem % map.Shape[d];
                    rem /= map.Shape[d];
                    oa += i * map.Strides[d];
                    ob += i * map.Strides[IndexMap3.MaxDims + d];
                    oy += i * map.Strides[2 * IndexMap3.MaxDims + d];
                }
                var am = new Matrix(Ptr(ag) + (ulong)(oa * esA), m, k, ag.Layout.Stride(-2), ag.Layout.Stride(-1), inner > 1 ? sa : 0);
                var bm = new Matrix(Ptr(bg) + (ulong)(ob * esA), k, n, bg.Layout.Stride(-2), bg.Layout.Stride(-1), inner > 1 ? sb : 0);
                var ym = new Matrix(Ptr(output) + (ulong)(oy * esY), m, n, n, 1, inner > 1 ? sy : 0);
                Gemm(ag.DType, am, bm, ym, inner, CublasLt.EpilogueDefault, 0);
            }
        });
    }

    public void Conv3d(Tensor x, Tensor weight, Tensor? bias, Conv3dParams p, Tensor y)
    {
        using var profiled = Profile("conv3d", y, weight.ShapeString);
        if (y.ElementCount == 0) return;
        using var xc = Contiguous(x);
        using var wc = Contiguous(weight);
        int nb = xc.Dim(0), cin = xc.Dim(1), ti = xc.Dim(2), hi = xc.Dim(3), wi = xc.Dim(4);
        int cout = wc.Dim(0), kt = wc.Dim(2), kh = wc.Dim(3), kw = wc.Dim(4);
        int to = y.Dim(2), ho = y.Dim(3), wo = y.Dim(4);
        long spatial = (long)to * ho * wo;
        long kdim = (long)cin * kt * kh * kw;
        if (spatial > int.MaxValue || kdim > int.MaxValue) throw new NotSupportedException("conv3d: output or kernel too large for one GEMM");
        int es = xc.DType.SizeOf();
        WithGemmOutput(y, x.DType, output =>
        {
            var w = new Matrix(Ptr(wc), cout, (int)kdim, kdim, 1, 0);
            bool pointwise = kt == 1 && kh == 1 && kw == 1 && p is { StrideT: 1, StrideH: 1, StrideW: 1, PadT: 0, PadH: 0, PadW: 0 };
            if (pointwise)
            {
                // A 1x1x1 convolution is one batched GEMM: y[n] (Cout x S) = w (Cout x Cin) . x[n] (Cin x S).
                var xm = new Matrix(Ptr(xc), cin, (int)spatial, spatial, 1, (long)cin * spatial);
                var ym = new Matrix(Ptr(output), cout, (int)spatial, spatial, 1, (long)cout * spatial);
                Gemm(xc.DType, w with { BatchStride = 0 }, xm, ym, nb, CublasLt.EpilogueDefault, 0);
            }
            else if (!TryCudnnConvolution(xc, wc, p, output))
            {
                _ownConvolutionCalls++;
                // im2col over chunks of output positions, bounded by the scratch limit, each chunk one GEMM into y.
                long perPosition = kdim * es;
                long chunk = Math.Clamp(Options.ScratchLimitBytes / perPosition, 1, spatial);
                if (chunk >= 64 && chunk < spatial) chunk = chunk / 64 * 64;  // keeps chunk starts aligned for cuBLASLt
                using var col = Tensor.Empty(this, xc.DType, (int)(kdim * chunk));
                var im2col = Function("misc", $"im2col_{Suffix(xc.DType)}");
                long inputPerBatch = (long)cin * ti * hi * wi;
                for (int n = 0; n < nb; n++)
                {
                    for (long p0 = 0; p0 < spatial; p0 += chunk)
                    {
                        long count = Math.Min(chunk, spatial - p0);
                        var args = new Im2ColArgs
                        {
                            X = Ptr(xc) + (ulong)(n * inputPerBatch * es),
                            Col = Ptr(col),
                            P0 = p0,
                            CountP = count,
                            Count = kdim * count,
                            Ti = ti,
                            Hi = hi,
                            Wi = wi,
                            Kt = kt,
                            Kh = kh,
                            Kw = kw,
                            St = p.StrideT,
                            Sh = p.StrideH,
                            Sw = p.StrideW,
                            Pt = p.PadT,
                            Ph = p.PadH,
                            Pw = p.PadW,
                            Ho = ho,
                            Wo = wo,
                        };
                        Launch(im2col, Blocks(args.Count), 1, 256, ref args);
                        var cm = new Matrix(Ptr(col), (int)kdim, (int)count, count, 1, 0);
                        var ym = new Matrix(Ptr(output) + (ulong)(((long)n * cout * spatial + p0) * es), cout, (int)count, spatial, 1, 0);
                        Gemm(xc.DType, w, cm, ym, 1, CublasLt.EpilogueDefault, 0);
                    }
                }
            }
            if (bias is not null) AddChannelBias(output, bias);
        });
    }

    /// <summary>GEMM outputs must be contiguous and of the input dtype; otherwise a temporary takes the result.</summary>
    private void WithGemmOutput(Tensor y, DType input, Action<Tensor> body)
    {
        if (y.IsContiguous && y.DType == input)
        {
            body(y);
            return;
        }
        using var tmp = Tensor.Empty(this, input, y.ShapeArray());
        body(tmp);
        Copy(tmp, y);
    }

    /// <summary>
    /// The tensor itself when its last two dims form a matrix cuBLASLt can read (unit stride along one of them),
    /// otherwise a contiguous copy.
    /// </summary>
    private Tensor Gemmable(Tensor t)
    {
        int r = t.Rank;
        long rs = t.Layout.Stride(r - 2), cs = t.Layout.Stride(r - 1);
        int rows = t.Dim(r - 2), cols = t.Dim(r - 1);
        if (Normalise(rows, cols, ref rs, ref cs) != MatrixOrder.None) return t.Alias();
        return t.Clone();
    }

    private Tensor BiasIn(Tensor bias, DType dtype)
    {
        if (bias.DType == dtype && bias.IsContiguous) return bias.Alias();
        var b = Tensor.Empty(this, dtype, bias.ShapeArray());
        Copy(bias, b);
        return b;
    }

    private Matrix MatrixOf(Tensor t2, long batchStride) =>
        new(Ptr(t2), t2.Dim(0), t2.Dim(1), t2.Layout.Stride(0), t2.Layout.Stride(1), batchStride);

    private enum MatrixOrder { None, RowMajor, ColMajor }

    /// <summary>
    /// Classifies a matrix's strides as row-major (unit column stride, leading dim = row stride) or column-major; the
    /// strides of size-1 dims, which never matter, are set so that cuBLASLt's "leading dim ≥ rows" rule holds.
    /// </summary>
    private static MatrixOrder Normalise(int rows, int cols, ref long rs, ref long cs)
    {
        if (cols == 1 && rows == 1) { rs = 1; cs = 1; return MatrixOrder.RowMajor; }
        if (cols == 1) { cs = 1; if (rs >= 1) return MatrixOrder.RowMajor; }
        if (rows == 1) { rs = 1; if (cs >= 1) return MatrixOrder.ColMajor; }
        if (cs == 1 && rs >= cols) return MatrixOrder.RowMajor;
        if (rs == 1 && cs >= rows) return MatrixOrder.ColMajor;
        return MatrixOrder.None;
    }

    /// <summary>
    /// c = a · b (row-major views, batch of <paramref name="batch"/>) through cuBLASLt with float32 accumulation. cuBLASLt
    /// is column-major, so it computes cᵀ = bᵀ · aᵀ: a row-major matrix is its transpose in column-major order, for free.
    /// The epilogue's bias has one value per column of c. <paramref name="exactF32"/> keeps an F32 product off TF32
    /// whatever the options say (the FP8 linear's widened GEMM, whose products must be exact).
    /// </summary>
    private void Gemm(DType dtype, Matrix a, Matrix b, Matrix c, int batch, int epilogue, ulong bias, bool exactF32 = false)
    {
        MakeCurrent();
        int m = c.Rows, n = c.Cols, k = a.Cols;
        long ars = a.RowStride, acs = a.ColStride, brs = b.RowStride, bcs = b.ColStride;
        var aOrder = Normalise(a.Rows, a.Cols, ref ars, ref acs);
        var bOrder = Normalise(b.Rows, b.Cols, ref brs, ref bcs);
        if (aOrder == MatrixOrder.None || bOrder == MatrixOrder.None || c.ColStride != 1)
            throw new InvalidOperationException("internal: GEMM operand with unsupported strides");
        // cuBLASLt's A' = bᵀ (n x k), B' = aᵀ (k x m), D = cᵀ (n x m, leading dim = c's row stride).
        int opA, opB;
        ulong rowsA, colsA, rowsB, colsB;
        long ldA, ldB;
        if (bOrder == MatrixOrder.RowMajor) { opA = CublasLt.OpN; rowsA = (ulong)n; colsA = (ulong)k; ldA = brs; }
        else { opA = CublasLt.OpT; rowsA = (ulong)k; colsA = (ulong)n; ldA = bcs; }
        if (aOrder == MatrixOrder.RowMajor) { opB = CublasLt.OpN; rowsB = (ulong)k; colsB = (ulong)m; ldB = ars; }
        else { opB = CublasLt.OpT; rowsB = (ulong)m; colsB = (ulong)k; ldB = acs; }
        long ldC = m == 1 ? Math.Max(c.RowStride, n) : c.RowStride;

        int es = dtype.SizeOf();
        int dataType = dtype switch
        {
            DType.F32 => CublasLt.DataF32,
            DType.F16 => CublasLt.DataF16,
            DType.BF16 => CublasLt.DataBF16,
            _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
        };
        int compute = dtype == DType.F32 && Options.AllowTf32 && !exactF32 ? CublasLt.Compute32FFastTf32 : CublasLt.Compute32F;
        var key = new GemmKey(dataType, compute, opA, opB, m, n, k, ldA, ldB, ldC, batch,
            batch > 1 ? b.BatchStride : 0, batch > 1 ? a.BatchStride : 0, batch > 1 ? c.BatchStride : 0, epilogue,
            Alignment(b.Pointer, b.BatchStride * es, batch), Alignment(a.Pointer, a.BatchStride * es, batch), Alignment(c.Pointer, c.BatchStride * es, batch));
        if (!_plans.TryGetValue(key, out var plan))
        {
            if (_plans.Count >= MaxCachedPlans)
            {
                foreach (var old in _plans.Values) old.Dispose();
                _plans.Clear();
            }
            plan = GemmPlan.Create(_cublas, key, rowsA, colsA, rowsB, colsB, (ulong)WorkspaceBytes);
            _plans[key] = plan;
            if (epilogue is CublasLt.EpilogueBias or CublasLt.EpilogueGeluBias or CublasLt.EpilogueReluBias)
                CublasLt.Set(plan.Desc, CublasLt.DescBiasPointer, bias);
            // Large products try the heuristics' few best algorithms on the call's own operands (c is written anyway).
            if (Options.GemmAutotune && plan.Candidates.Length > 1 && 2.0 * m * n * k * batch >= GemmAutotuneFlops
                && c.Pointer != a.Pointer && c.Pointer != b.Pointer)
                Tune(plan, key, a, b, c);
        }
        if (epilogue is CublasLt.EpilogueBias or CublasLt.EpilogueGeluBias or CublasLt.EpilogueReluBias)
            CublasLt.Set(plan.Desc, CublasLt.DescBiasPointer, bias);
        var algo = plan.Algo;
        CublasLt.Check(RunGemm(plan, a, b, c, &algo), "cublasLtMatmul", key.Describe());
    }

    /// <summary>Products of at least this many flops have their cuBLASLt algorithm chosen by timing.</summary>
    private const double GemmAutotuneFlops = 5e10;

    private int RunGemm(GemmPlan plan, Matrix a, Matrix b, Matrix c, CublasLt.MatmulAlgo* algo)
    {
        float alpha = 1f, beta = 0f;
        return CublasLt.cublasLtMatmul(_cublas, plan.Desc, &alpha, b.Pointer, plan.A, a.Pointer, plan.B, &beta,
            c.Pointer, plan.C, c.Pointer, plan.C, algo, _workspace.Pointer, (nuint)WorkspaceBytes, _stream);
    }

    private void Tune(GemmPlan plan, GemmKey key, Matrix a, Matrix b, Matrix c) =>
        TuneAlgorithms(plan, key.Describe(), algo => RunGemm(plan, a, b, c, &algo));

    /// <summary>Keeps the fastest of the plan's candidate algorithms, timed on the call's own operands (its output is written anyway).</summary>
    private void TuneAlgorithms(GemmPlan plan, string what, Func<CublasLt.MatmulAlgo, int> run)
    {
        double best = double.MaxValue;
        int bestIndex = 0;
        var times = new List<string>();
        for (int i = 0; i < plan.Candidates.Length; i++)
        {
            var algo = plan.Candidates[i];
            int failed = 0;
            double ms = TimeMilliseconds(() =>
            {
                for (int r = 0; r < 4; r++) failed |= run(algo);
            }) / 4;
            times.Add(failed != 0 ? "failed" : $"{ms:0.000}");
            if (failed == 0 && ms < best)
            {
                best = ms;
                bestIndex = i;
            }
        }
        plan.Algo = plan.Candidates[bestIndex];
        Note($"cuBLASLt {what}: algorithm {bestIndex} of {plan.Candidates.Length} by timing (ms: {string.Join(" ", times)})");
    }

    /// <summary>The largest power of two (≤ 256) dividing the address of every matrix in the batch.</summary>
    private static int Alignment(ulong pointer, long batchStrideBytes, int batch)
    {
        ulong bits = pointer | 256;
        if (batch > 1 && batchStrideBytes != 0) bits |= (ulong)batchStrideBytes;
        return (int)(bits & (~bits + 1));
    }

    /// <summary>Everything a cuBLASLt plan depends on (pointers aside).</summary>
    private readonly record struct GemmKey(int DataType, int Compute, int OpA, int OpB, int M, int N, int K, long LdA, long LdB, long LdC,
        int Batch, long StrideA, long StrideB, long StrideC, int Epilogue, int AlignA, int AlignB, int AlignC)
    {
        public string Describe() =>
            $"m={M} n={N} k={K} (row-major c = a·b), type {DataType}, ops {OpA}/{OpB}, ld {LdA}/{LdB}/{LdC}, batch {Batch}, epilogue {Epilogue}, align {AlignA}/{AlignB}/{AlignC}";
    }

    /// <summary>Descriptors and the algorithm cuBLASLt's heuristic chose for one GEMM shape.</summary>
    /// <summary>
    /// cuBLASLt's heuristic algorithms (at most <paramref name="requested"/>, best first) for a described matmul whose
    /// C is also D; throws, naming <paramref name="what"/>, when it has none.
    /// </summary>
    private static CublasLt.MatmulAlgo[] Heuristics(CublasLtHandle handle, MatmulDescHandle desc, MatrixLayoutHandle a, MatrixLayoutHandle b,
        MatrixLayoutHandle c, MatmulPreferenceHandle preference, int requested, string what)
    {
        var results = stackalloc CublasLt.HeuristicResult[requested];
        CublasLt.Check(CublasLt.cublasLtMatmulAlgoGetHeuristic(handle, desc, a, b, c, c, preference, requested, results, out int found),
            "cublasLtMatmulAlgoGetHeuristic", what);
        if (found == 0)
            throw new CudaException("cuBLASLt", "cublasLtMatmulAlgoGetHeuristic", 15, "CUBLAS_STATUS_NOT_SUPPORTED", $"no algorithm for {what}");
        var algorithms = new CublasLt.MatmulAlgo[found];
        for (int i = 0; i < found; i++) algorithms[i] = results[i].Algo;
        return algorithms;
    }

    private sealed class GemmPlan : IDisposable
    {
        /// <summary>Takes the handles (and disposes them with the plan); the FP8 linears build theirs in CudaBackend.Fp8.cs.</summary>
        public GemmPlan(MatmulDescHandle desc, MatrixLayoutHandle a, MatrixLayoutHandle b, MatrixLayoutHandle c, CublasLt.MatmulAlgo[] candidates)
        {
            Desc = desc;
            A = a;
            B = b;
            C = c;
            Candidates = candidates;
            Algo = candidates[0];
        }

        /// <summary>The handles made so far by a builder that failed before they became a plan.</summary>
        public static void ReleaseParts(MatmulDescHandle? desc, MatrixLayoutHandle? a, MatrixLayoutHandle? b, MatrixLayoutHandle? c)
        {
            desc?.Dispose();
            a?.Dispose();
            b?.Dispose();
            c?.Dispose();
        }

        public MatmulDescHandle Desc { get; }

        public MatrixLayoutHandle A { get; }

        public MatrixLayoutHandle B { get; }

        public MatrixLayoutHandle C { get; }

        /// <summary>The algorithm used: the heuristics' first, or the fastest candidate once timed.</summary>
        public CublasLt.MatmulAlgo Algo { get; set; }

        /// <summary>The heuristics' best few algorithms, best first.</summary>
        public CublasLt.MatmulAlgo[] Candidates { get; }

        public static GemmPlan Create(CublasLtHandle handle, GemmKey key, ulong rowsA, ulong colsA, ulong rowsB, ulong colsB, ulong workspace)
        {
            MatmulDescHandle? desc = null;
            MatrixLayoutHandle? a = null, b = null, c = null;
            try
            {
                CublasLt.Check(CublasLt.cublasLtMatmulDescCreate(out desc, key.Compute, CublasLt.DataF32), "cublasLtMatmulDescCreate");
                CublasLt.Set(desc, CublasLt.DescTransA, key.OpA);
                CublasLt.Set(desc, CublasLt.DescTransB, key.OpB);
                CublasLt.Set(desc, CublasLt.DescEpilogue, key.Epilogue);
                CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(out a, key.DataType, rowsA, colsA, key.LdA), "cublasLtMatrixLayoutCreate");
                CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(out b, key.DataType, rowsB, colsB, key.LdB), "cublasLtMatrixLayoutCreate");
                CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(out c, key.DataType, (ulong)key.N, (ulong)key.M, key.LdC), "cublasLtMatrixLayoutCreate");
                if (key.Batch > 1)
                {
                    foreach (var (layout, stride) in new[] { (a, key.StrideA), (b, key.StrideB), (c, key.StrideC) })
                    {
                        CublasLt.Set(layout, CublasLt.LayoutBatchCount, key.Batch);
                        CublasLt.Set(layout, CublasLt.LayoutStridedBatchOffset, stride);
                    }
                }
                CublasLt.Check(CublasLt.cublasLtMatmulPreferenceCreate(out var preference), "cublasLtMatmulPreferenceCreate");
                using (preference)
                {
                    CublasLt.Set(preference, CublasLt.PrefMaxWorkspaceBytes, workspace);
                    CublasLt.Set(preference, CublasLt.PrefMinAlignmentA, (uint)key.AlignA);
                    CublasLt.Set(preference, CublasLt.PrefMinAlignmentB, (uint)key.AlignB);
                    CublasLt.Set(preference, CublasLt.PrefMinAlignmentC, (uint)key.AlignC);
                    CublasLt.Set(preference, CublasLt.PrefMinAlignmentD, (uint)key.AlignC);
                    return new GemmPlan(desc, a, b, c, Heuristics(handle, desc, a, b, c, preference, 8, key.Describe()));
                }
            }
            catch
            {
                ReleaseParts(desc, a, b, c);
                throw;
            }
        }

        public void Dispose()
        {
            Desc.Dispose();
            A.Dispose();
            B.Dispose();
            C.Dispose();
        }
    }
}
