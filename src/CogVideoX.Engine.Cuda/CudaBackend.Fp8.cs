namespace CogVideoX.Engine.Cuda;

/// <summary>
/// FP8 linears (<c>--linear fp8</c>, opt-in): each row of x quantized to E4M3 with its own scale (kernel module
/// <c>fp8</c>, compiled on first use), then one cuBLASLt FP8 GEMM (E4M3 × E4M3, the tensor cores' accumulation) that applies the
/// token and channel scales ("outer vector" scaling, cuBLASLt 12.9+ on Hopper), the bias and the tanh GELU in its
/// epilogue and stores y in F16/BF16 directly — the CPU reference's order of operations, so only the accumulation
/// order differs. Where cuBLASLt cannot (an older library, an F32 output, another activation) the GEMM writes float32
/// and an epilogue kernel applies scales, bias and activation: the same numbers, one more pass over an [M, N] float
/// matrix (as long as the F16 GEMM itself at CogVideoX's sizes, so it forfeits most of FP8's speed).
/// COGVIDEOX_FP8_SCALES=separate forces that path, for A/B timings.
/// cuBLASLt's FP8 rule: A transposed and B not ("TN"), leading dims multiples of 16 bytes; row-major x [M, K] and
/// weight [N, K] are exactly that (cuBLASLt's A = weightᵀ read transposed, B = xᵀ), with K a multiple of 16.
/// </summary>
public sealed unsafe partial class CudaBackend
{
    private readonly Dictionary<(int M, int N, int K), GemmPlan> _fp8Plans = new();
    private readonly Dictionary<(int M, int N, int K, DType Y, int Epilogue), GemmPlan> _fp8ScaledPlans = new();

    /// <summary>Why the scaled FP8 GEMM is not used at all (COGVIDEOX_FP8_SCALES=separate: the two-pass path, for A/B timings).</summary>
    private readonly string? _fp8ScaledUnavailable =
        Environment.GetEnvironmentVariable("COGVIDEOX_FP8_SCALES") is "separate" ? "COGVIDEOX_FP8_SCALES=separate" : null;

    /// <summary>
    /// The scaled GEMMs run with FAST_ACCUM=1: the tensor cores' own accumulator throughout the K loop, without
    /// cuBLASLt's periodic promotions to float32 (torchao's default for the forward pass). Measured on an H100 at the
    /// 2b step: the FP8 GEMMs 90.2 -> 69.4 ms, the step's relative error against the exact step 3.550e-2 -> 3.548e-2
    /// (the activations' and weights' E4M3 rounding dominates), and the op catalogue's FP8 cases pass with it.
    /// COGVIDEOX_FP8_FAST_ACCUM=0 turns it off, for A/B timings.
    /// </summary>
    private readonly bool _fp8FastAccum = Environment.GetEnvironmentVariable("COGVIDEOX_FP8_FAST_ACCUM") is not "0";

    /// <summary>COGVIDEOX_FP8_TUNE=1 (or GemmAutotune): time the heuristics' best few scaled-GEMM algorithms once per shape.</summary>
    private bool Fp8Tune => Options.GemmAutotune || Environment.GetEnvironmentVariable("COGVIDEOX_FP8_TUNE") is "1";

    /// <summary>Shapes, output types and epilogues for which cuBLASLt refused the scaled FP8 GEMM (asked once each).</summary>
    private readonly HashSet<(int M, int N, int K, DType Y, int Epilogue)> _fp8ScaledRefused = new();

    /// <summary>Shapes for which cuBLASLt has no unit-scale FP8 GEMM: they run widened to float32 (same products).</summary>
    private readonly HashSet<(int M, int N, int K)> _fp8Widened = new();

    /// <summary>The FP8 notes said so far (each once per backend).</summary>
    private readonly HashSet<string> _fp8Noted = new();

    string? IFp8LinearKernel.Fp8Unavailable =>
        Info.Major * 10 + Info.Minor < 89
            ? $"FP8 GEMMs need an sm_89 or newer GPU (Ada, Hopper, Blackwell); {Info.Name} is sm_{Info.Major}{Info.Minor}: use --linear exact"
            : null;

    void IFp8LinearKernel.QuantizeWeight(Tensor weight, Tensor codes, Tensor scales)
    {
        using var profiled = Profile("fp8_quantize", weight);
        QuantizeRows(weight, codes, scales);
    }

    /// <summary>
    /// Profiled in pieces that follow each other (never nested, so the totals stay right): "fp8_quantize_x" (the
    /// activations' quantization), "linear_fp8" (the GEMM, its detail naming the path: scaled, scaled-default,
    /// two-pass or widened) and "fp8_epilogue" (the two-pass epilogue or the bias/activation kernel).
    /// </summary>
    void IFp8LinearKernel.LinearFp8(Tensor x, Tensor codes, Tensor scales, Tensor? bias, Activation activation, Tensor y)
    {
        int m = x.Dim(0), k = x.Dim(1);
        CheckFp8Features(k);
        using var xCodes = Tensor.Empty(this, DType.F8E4M3, m, k);
        using var xScales = Tensor.Empty(this, DType.F32, m);
        using (Profile("fp8_quantize_x", xCodes)) QuantizeRows(x, xCodes, xScales);
        Fp8Product(xCodes, xScales, codes, scales, bias, activation, y);
    }

    /// <summary>The GEMM and epilogue of LinearFp8 on codes a producer wrote (modulated_layer_norm_fp8): no quantize pass.</summary>
    void IFp8LinearKernel.LinearFp8Quantized(Tensor xCodes, Tensor xScales, Tensor codes, Tensor scales, Tensor? bias, Activation activation, Tensor y)
    {
        CheckFp8Features(xCodes.Dim(1));
        Fp8Product(xCodes, xScales, codes, scales, bias, activation, y);
    }

    private static void CheckFp8Features(int k)
    {
        if (k % 16 != 0)
            throw new CogVideoXException($"fp8 linear: cuBLASLt's FP8 GEMM needs the input features to be a multiple of 16, got {k}; use --linear exact for this model");
    }

    /// <summary>y = act(xScales[m] · wScales[n] · (xCodes · codesᵀ)[m, n] + bias[n]): the scaled GEMM, else the two-pass or widened path.</summary>
    private void Fp8Product(Tensor xCodes, Tensor xScales, Tensor codes, Tensor scales, Tensor? bias, Activation activation, Tensor y)
    {
        int m = xCodes.Dim(0), k = xCodes.Dim(1), n = codes.Dim(0);
        if (TryScaledFp8Gemm(xCodes, xScales, codes, scales, bias, activation, y)) return;
        using var acc = Tensor.Empty(this, DType.F32, m, n);
        bool widened = _fp8Widened.Contains((m, n, k)) || !TryFp8Gemm(xCodes, codes, acc, y, activation);
        if (widened)
        {
            using (Profile("linear_fp8", y, $"{activation} widened")) WidenedFp8Gemm(xCodes, codes, acc);
        }
        using var profiled = Profile("fp8_epilogue", y, activation);
        using var bc = bias is null ? null : BiasIn(bias, y.DType);
        using var yc = y.IsContiguous ? y.Alias() : Tensor.Empty(this, y.DType, y.ShapeArray());
        var args = new Fp8EpilogueArgs
        {
            Acc = Ptr(acc),
            XScales = Ptr(xScales),
            WScales = Ptr(scales),
            Bias = bc is null ? 0 : Ptr(bc),
            Y = Ptr(yc),
            Rows = m,
            Cols = n,
            Act = (int)activation,
        };
        Launch(Function("fp8", $"fp8_epilogue_{Suffix(y.DType)}"), Blocks((long)m * n), 1, 256, ref args);
        if (!ReferenceEquals(yc, y) && !y.IsContiguous) Copy(yc, y);
    }

    /// <summary>codes [R, C] and scales [R] of a float matrix x [R, C] (unit column stride, or a contiguous copy is made).</summary>
    private void QuantizeRows(Tensor x, Tensor codes, Tensor scales)
    {
        using var xc = x.Layout.Stride(1) == 1 && x.Layout.Stride(0) >= x.Dim(1) ? x.Alias() : x.Clone();
        var args = new Fp8QuantizeArgs
        {
            X = Ptr(xc),
            Codes = Ptr(codes),
            Scales = Ptr(scales),
            Rows = xc.Dim(0),
            Cols = xc.Dim(1),
            XStride = xc.Layout.Stride(0),
        };
        // Eight elements per access where rows allow it (every projection input of the models does), each row held in
        // registers where its width allows (every CogVideoX width does).
        bool vector8 = args.Cols % 8 == 0 && args.XStride % 8 == 0 && Ptr(xc) % 16 == 0;
        if (vector8 && TryQuantizeRowsInRegisters(xc, codes, scales)) return;
        string kernel = vector8 ? "fp8_quantize_rows8" : "fp8_quantize_rows";
        Launch(Function("fp8", $"{kernel}_{Suffix(xc.DType)}"), (uint)Math.Min(xc.Dim(0), 65535 * 16), 1, 256, ref args);
    }

    /// <summary>
    /// The codes and scales of rows that one read from memory holds in registers (fp8_quantize_lanes up to 4,096
    /// columns, ln_rows' lane rule; fp8_quantize_block up to 32,768, one block a row); false (nothing run) for wider
    /// rows, which take fp8_quantize_rows8. x's rows 16-byte aligned with a row stride and width that are multiples of 8.
    /// </summary>
    private bool TryQuantizeRowsInRegisters(Tensor x, Tensor codes, Tensor scales)
    {
        long rows = x.Dim(0);
        int cols = x.Dim(1), vectors = cols / 8;
        if (rows > int.MaxValue || Ptr(codes) % 8 != 0) return false;
        var args = new Fp8RowsArgs { X = Ptr(x), Codes = Ptr(codes), Scales = Ptr(scales), Rows = rows, XStride = x.Layout.Stride(0), Cols = cols };
        static int Vpl(int perThread) => perThread switch { <= 1 => 1, <= 2 => 2, <= 4 => 4, <= 8 => 8, <= 12 => 12, <= 16 => 16, _ => 0 };
        if (vectors <= 32 * 16)
        {
            int lanes = 1;
            while (lanes < 32 && lanes * 4 < vectors) lanes <<= 1;
            args.Lanes = lanes;
            long rowsPerBlock = 8L * (32 / lanes);
            Launch(Function("fp8", $"fp8_quantize_lanes_{Suffix(x.DType)}_v{Vpl((vectors + lanes - 1) / lanes)}"),
                (uint)((rows + rowsPerBlock - 1) / rowsPerBlock), 1, 256, ref args);
            return true;
        }
        // 128 threads a row while each holds at most 8 vectors (2b's 7,680 columns: 7.5), else 256 (5b's 12,288: 6).
        int threads = (vectors + 127) / 128 <= 8 ? 128 : 256;
        int vpl = Vpl((vectors + threads - 1) / threads);  // 8 or more: rows this wide hold over 4 vectors a thread
        if (vpl == 0) return false;
        Launch(Function("fp8", $"fp8_quantize_block_{Suffix(x.DType)}_v{vpl}"), (uint)rows, 1, (uint)threads, ref args);
        return true;
    }

    /// <summary>
    /// acc [M, N] (float32) = xCodes [M, K] · wCodes [N, K]ᵀ, E4M3 operands, unit scales; false (nothing run) when
    /// cuBLASLt has no FP8 GEMM for this shape (narrow outputs), remembered so that it is not asked again.
    /// </summary>
    private bool TryFp8Gemm(Tensor xCodes, Tensor wCodes, Tensor acc, Tensor y, Activation activation)
    {
        MakeCurrent();
        int m = xCodes.Dim(0), k = xCodes.Dim(1), n = wCodes.Dim(0);
        if (!_fp8Plans.TryGetValue((m, n, k), out var plan))
        {
            try
            {
                plan = Fp8GemmPlan(_cublas, m, n, k, DType.F32, CublasLt.EpilogueDefault, scaled: false, (ulong)WorkspaceBytes);
            }
            catch (CudaException e) when (e.Library == "cuBLASLt" && e.Status == 15)
            {
                _fp8Widened.Add((m, n, k));
                NoteFp8($"fp8 linear: cuBLASLt has no FP8 GEMM for m={m} n={n} k={k} ({e.StatusName}); this shape runs widened to float32 (same products, float32 accumulation; slower)");
                return false;
            }
            _fp8Plans[(m, n, k)] = plan;
        }
        using var profiled = Profile("linear_fp8", y, $"{activation} two-pass");
        float alpha = 1f, beta = 0f;
        var algo = plan.Algo;
        // cuBLASLt (column-major): D [N x M] = op(A) · B with A = wCodes as K x N (ld K) transposed, B = xCodes as K x M (ld K).
        CublasLt.Check(CublasLt.cublasLtMatmul(_cublas, plan.Desc, &alpha, Ptr(wCodes), plan.A, Ptr(xCodes), plan.B, &beta,
            Ptr(acc), plan.C, Ptr(acc), plan.C, &algo, _workspace.Pointer, (nuint)WorkspaceBytes, _stream), "cublasLtMatmul", $"fp8 m={m} n={n} k={k}");
        return true;
    }

    /// <summary>
    /// acc = xCodes · wCodesᵀ for a shape cuBLASLt's FP8 GEMM refuses: the codes decoded to float32 (exact) and one
    /// float32 GEMM kept off TF32, so the products are exact and accumulate in float32 as the FP8 tensor cores' do.
    /// </summary>
    private void WidenedFp8Gemm(Tensor xCodes, Tensor wCodes, Tensor acc)
    {
        int m = xCodes.Dim(0), k = xCodes.Dim(1), n = wCodes.Dim(0);
        using var xw = Tensor.Empty(this, DType.F32, m, k);
        using var ww = Tensor.Empty(this, DType.F32, n, k);
        DecodeFp8(xCodes, xw);
        DecodeFp8(wCodes, ww);
        // weight [N, K] read as its transpose [K, N], as Linear does.
        Gemm(DType.F32, MatrixOf(xw, 0), new Matrix(Ptr(ww), k, n, 1, k, 0), new Matrix(Ptr(acc), m, n, n, 1, 0), 1,
            CublasLt.EpilogueDefault, 0, exactF32: true);
    }

    /// <summary>out (float32, contiguous) = the values of codes (E4M3, contiguous, same element count).</summary>
    private void DecodeFp8(Tensor codes, Tensor output)
    {
        var args = new Fp8DecodeArgs { Codes = Ptr(codes), Out = Ptr(output), Count = codes.ElementCount };
        Launch(Function("fp8", "fp8_decode_f32"), Blocks(args.Count), 1, 256, ref args);
    }

    /// <summary>
    /// y = act(xScales[r] · wScales[c] · (xCodes · wCodesᵀ)[r, c] + bias[c]) with y in F16/BF16: one cuBLASLt call with
    /// the scales (and, where cuBLASLt takes them, the bias and activation) in its epilogue, the forms tried in the
    /// order of <see cref="Fp8ScaledForms"/>, each refusal noted with its status and remembered per shape; false
    /// (y untouched) when every form is refused, so the caller takes the two-pass path.
    /// </summary>
    private bool TryScaledFp8Gemm(Tensor xCodes, Tensor xScales, Tensor wCodes, Tensor wScales, Tensor? bias, Activation activation, Tensor y)
    {
        if (_fp8ScaledUnavailable is not null || y.DType is not (DType.F16 or DType.BF16)) return false;
        int m = xCodes.Dim(0), k = xCodes.Dim(1), n = wCodes.Dim(0);
        // D's leading dimension must be a multiple of 16 bytes; a narrow output (never in the model) takes the other path.
        if (n % 8 != 0) return false;
        MakeCurrent();
        using var bc = bias is null ? null : BiasIn(bias, y.DType);
        var epilogues = Fp8ScaledForms.Epilogues(bias is not null, activation);
        for (int i = 0; i < epilogues.Count; i++)
        {
            int ep = epilogues[i];
            var key = (m, n, k, y.DType, ep);
            if (_fp8ScaledRefused.Contains(key)) continue;
            ulong biasPointer = bc is not null && ep != CublasLt.EpilogueDefault ? Ptr(bc) : 0;
            bool tune = false;
            if (!_fp8ScaledPlans.TryGetValue(key, out var plan))
            {
                try
                {
                    plan = Fp8GemmPlan(_cublas, m, n, k, y.DType, ep, scaled: true, (ulong)WorkspaceBytes, Ptr(wScales), Ptr(xScales), biasPointer,
                        _fp8FastAccum, Fp8Tune ? 8 : 1);
                }
                catch (CudaException e) when (e.Library == "cuBLASLt" && e.Status is 7 or 15)
                {
                    // Answered before anything runs, so y is untouched.
                    _fp8ScaledRefused.Add(key);
                    // Asked again with FAST_ACCUM=1 only where the refused form did not have it already.
                    string? fast = _fp8FastAccum ? null : ProbeFastAccum(m, n, k, y.DType, ep, Ptr(wScales), Ptr(xScales), biasPointer);
                    NoteFp8(Fp8ScaledForms.Note(y.DType, ep, m, n, k, e.Message, fast, nextIsDefault: i + 1 < epilogues.Count));
                    continue;
                }
                _fp8ScaledPlans[key] = plan;
                NoteFp8(Fp8ScaledForms.Note(y.DType, ep, m, n, k, null, null, false) + (_fp8FastAccum ? ", FAST_ACCUM=1" : ", FAST_ACCUM=0"));
                tune = plan.Candidates.Length > 1;
            }
            bool kernel = Fp8ScaledForms.NeedsBiasActKernel(ep, bias is not null, activation);
            using var yc = y.IsContiguous ? y.Alias() : Tensor.Empty(this, y.DType, y.ShapeArray());
            if (tune) TuneAlgorithms(plan, $"fp8 scaled m={m} n={n} k={k} epilogue {Fp8ScaledForms.Name(ep)}",
                algo => RunScaledFp8(plan, algo, wCodes, wScales, xCodes, xScales, biasPointer, yc));
            using (Profile("linear_fp8", y, $"{activation} {(ep == CublasLt.EpilogueDefault ? "scaled-default" : "scaled")}"))
            {
                CublasLt.Check(RunScaledFp8(plan, plan.Algo, wCodes, wScales, xCodes, xScales, biasPointer, yc), "cublasLtMatmul",
                    $"fp8 scaled m={m} n={n} k={k} epilogue {Fp8ScaledForms.Name(ep)}");
            }
            if (kernel)
            {
                using var profiled = Profile("fp8_epilogue", y, $"{activation} bias-act");
                var args = new Fp8BiasActArgs
                {
                    Y = Ptr(yc),
                    Bias = bc is null ? 0 : Ptr(bc),
                    Rows = m,
                    Cols = n,
                    Act = (int)activation,
                };
                Launch(Function("fp8", $"fp8_bias_act_{Suffix(y.DType)}"), (uint)Math.Min(m, 65535 * 16), 1, 256, ref args);
            }
            if (!ReferenceEquals(yc, y) && !y.IsContiguous) Copy(yc, y);
            return true;
        }
        return false;
    }

    /// <summary>One scaled FP8 GEMM with the given algorithm into y (contiguous); cuBLASLt's status.</summary>
    private int RunScaledFp8(GemmPlan plan, CublasLt.MatmulAlgo algo, Tensor wCodes, Tensor wScales, Tensor xCodes, Tensor xScales, ulong biasPointer, Tensor y)
    {
        // A = the weight codes (rows of op(A) = output channels), B = the token codes (columns = tokens).
        CublasLt.Set(plan.Desc, CublasLt.DescAScalePointer, Ptr(wScales));
        CublasLt.Set(plan.Desc, CublasLt.DescBScalePointer, Ptr(xScales));
        if (biasPointer != 0) CublasLt.Set(plan.Desc, CublasLt.DescBiasPointer, biasPointer);
        float alpha = 1f, beta = 0f;
        return CublasLt.cublasLtMatmul(_cublas, plan.Desc, &alpha, Ptr(wCodes), plan.A, Ptr(xCodes), plan.B, &beta,
            Ptr(y), plan.C, Ptr(y), plan.C, &algo, _workspace.Pointer, (nuint)WorkspaceBytes, _stream);
    }

    /// <summary>
    /// cuBLASLt's answer to a refused scaled form asked again with FAST_ACCUM=1 ("accepted" or the status), for the
    /// note only: the plan is dropped, never run (fast accumulation skips the float32 promotions).
    /// </summary>
    private string ProbeFastAccum(int m, int n, int k, DType y, int epilogue, ulong aScale, ulong bScale, ulong bias)
    {
        try
        {
            Fp8GemmPlan(_cublas, m, n, k, y, epilogue, scaled: true, (ulong)WorkspaceBytes, aScale, bScale, bias, fastAccum: true).Dispose();
            return "accepted";
        }
        catch (CudaException e) when (e.Library == "cuBLASLt")
        {
            return $"refused too, {e.Call}: {e.StatusName} ({e.Status})";
        }
    }

    private void NoteFp8(string note)
    {
        if (_fp8Noted.Add(note)) Note(note);
    }

    private void DisposeFp8Plans()
    {
        foreach (var plan in _fp8Plans.Values) plan.Dispose();
        _fp8Plans.Clear();
        foreach (var plan in _fp8ScaledPlans.Values) plan.Dispose();
        _fp8ScaledPlans.Clear();
    }

    /// <summary>
    /// Column-major D [N, M] = row-major y [M, N] = op(A = weight codes [N, K]) · (B = token codes [M, K]). Two forms:
    /// unit scales into float32 (the two-pass path), or outer-vector scales (A per output channel, B per token) with
    /// the bias/GELU epilogue into <paramref name="y"/>'s half type (the one-call path). The scale and bias pointers,
    /// where given, are set before the heuristic query (cuBLASLt may check them there; the calls set them again), and a
    /// bias epilogue names its bias type (= D's) explicitly. <paramref name="fastAccum"/>: the refusal probe and the
    /// COGVIDEOX_FP8_FAST_ACCUM A/B; <paramref name="candidates"/>: how many heuristic algorithms to keep (1 unless tuned).
    /// </summary>
    private static GemmPlan Fp8GemmPlan(CublasLtHandle handle, int m, int n, int k, DType y, int epilogue, bool scaled, ulong workspace,
        ulong aScale = 0, ulong bScale = 0, ulong bias = 0, bool fastAccum = false, int candidates = 1)
    {
        MatmulDescHandle? desc = null;
        MatrixLayoutHandle? a = null, b = null, c = null;
        int yType = y switch { DType.BF16 => CublasLt.DataBF16, DType.F16 => CublasLt.DataF16, _ => CublasLt.DataF32 };
        string what = $"fp8 E4M3 x E4M3 -> {y.Name()}{(scaled ? " with outer-vector scales" : "")}{(fastAccum ? ", FAST_ACCUM" : "")}, epilogue {Fp8ScaledForms.Name(epilogue)} ({epilogue}), m={m} n={n} k={k} (TN)";
        try
        {
            CublasLt.Check(CublasLt.cublasLtMatmulDescCreate(out desc, CublasLt.Compute32F, CublasLt.DataF32), "cublasLtMatmulDescCreate", what);
            CublasLt.Set(desc, CublasLt.DescTransA, CublasLt.OpT);
            CublasLt.Set(desc, CublasLt.DescTransB, CublasLt.OpN);
            CublasLt.Set(desc, CublasLt.DescEpilogue, epilogue);
            // CUBLASLT_MATMUL_DESC_FAST_ACCUM (int8_t): 0 (its default) promotes the accumulation to float32 periodically.
            if (fastAccum) CublasLt.Set(desc, CublasLt.DescFastAccum, (sbyte)1);
            if (scaled)
            {
                CublasLt.Set(desc, CublasLt.DescAScaleMode, CublasLt.MatrixScaleOuterVec32F);
                CublasLt.Set(desc, CublasLt.DescBScaleMode, CublasLt.MatrixScaleOuterVec32F);
                if (aScale != 0) CublasLt.Set(desc, CublasLt.DescAScalePointer, aScale);
                if (bScale != 0) CublasLt.Set(desc, CublasLt.DescBScalePointer, bScale);
            }
            if (epilogue is CublasLt.EpilogueBias or CublasLt.EpilogueGeluBias or CublasLt.EpilogueReluBias)
            {
                // The bias type defaults to D's for F16/BF16 outputs; named anyway, so a refusal cannot be about it.
                CublasLt.Set(desc, CublasLt.DescBiasDataType, yType);
                if (bias != 0) CublasLt.Set(desc, CublasLt.DescBiasPointer, bias);
            }
            CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(out a, CublasLt.DataF8E4M3, (ulong)k, (ulong)n, k), "cublasLtMatrixLayoutCreate", what);
            CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(out b, CublasLt.DataF8E4M3, (ulong)k, (ulong)m, k), "cublasLtMatrixLayoutCreate", what);
            CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(out c, yType, (ulong)n, (ulong)m, n), "cublasLtMatrixLayoutCreate", what);
            CublasLt.Check(CublasLt.cublasLtMatmulPreferenceCreate(out var preference), "cublasLtMatmulPreferenceCreate");
            using (preference)
            {
                CublasLt.Set(preference, CublasLt.PrefMaxWorkspaceBytes, workspace);
                return new GemmPlan(desc, a, b, c, Heuristics(handle, desc, a, b, c, preference, candidates, what));
            }
        }
        catch
        {
            GemmPlan.ReleaseParts(desc, a, b, c);
            throw;
        }
    }
}
