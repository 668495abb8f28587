namespace CogVideoX.Engine.Cuda;

/// <summary>
/// FP8 linears (<c>--linear fp8</c>, opt-in): each row of x quantized to E4M3 with its own scale (kernel module
/// <c>fp8</c>, compiled on first use), then one cuBLASLt FP8 GEMM (E4M3 × E4M3, float32 accumulation) that applies the
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

    /// <summary>Why the scaled FP8 GEMM is not used at all (a library without outer-vector scales, or COGVIDEOX_FP8_SCALES=separate).</summary>
    private string? _fp8ScaledUnavailable =
        Environment.GetEnvironmentVariable("COGVIDEOX_FP8_SCALES") is "separate" ? "COGVIDEOX_FP8_SCALES=separate" : null;

    /// <summary>Output types and epilogues for which cuBLASLt offered no scaled FP8 GEMM (the others still use it).</summary>
    private readonly HashSet<(DType Y, int Epilogue)> _fp8ScaledRefused = new();

    string? IFp8LinearKernel.Fp8Unavailable =>
        Info.Major * 10 + Info.Minor < 89
            ? $"FP8 GEMMs need an sm_89 or newer GPU (Ada, Hopper, Blackwell); {Info.Name} is sm_{Info.Major}{Info.Minor}: use --linear exact"
            : null;

    void IFp8LinearKernel.QuantizeWeight(Tensor weight, Tensor codes, Tensor scales)
    {
        using var profiled = Profile("fp8_quantize", weight);
        QuantizeRows(weight, codes, scales);
    }

    void IFp8LinearKernel.LinearFp8(Tensor x, Tensor codes, Tensor scales, Tensor? bias, Activation activation, Tensor y)
    {
        using var profiled = Profile("linear_fp8", y, activation);
        int m = x.Dim(0), k = x.Dim(1), n = codes.Dim(0);
        if (k % 16 != 0)
            throw new CogVideoXException($"fp8 linear: cuBLASLt's FP8 GEMM needs the input features to be a multiple of 16, got {k}; use --linear exact for this model");
        using var xCodes = Tensor.Empty(this, DType.F8E4M3, m, k);
        using var xScales = Tensor.Empty(this, DType.F32, m);
        QuantizeRows(x, xCodes, xScales);
        if (TryScaledFp8Gemm(xCodes, xScales, codes, scales, bias, activation, y)) return;
        using var acc = Tensor.Empty(this, DType.F32, m, n);
        Fp8Gemm(xCodes, codes, acc);
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
        Launch(Function("fp8", $"fp8_quantize_rows_{Suffix(xc.DType)}"), (uint)Math.Min(xc.Dim(0), 65535 * 16), 1, 256, ref args);
    }

    /// <summary>acc [M, N] (float32) = xCodes [M, K] · wCodes [N, K]ᵀ, E4M3 operands, unit scales.</summary>
    private void Fp8Gemm(Tensor xCodes, Tensor wCodes, Tensor acc)
    {
        MakeCurrent();
        int m = xCodes.Dim(0), k = xCodes.Dim(1), n = wCodes.Dim(0);
        if (!_fp8Plans.TryGetValue((m, n, k), out var plan))
        {
            plan = Fp8GemmPlan(_cublas, m, n, k, DType.F32, CublasLt.EpilogueDefault, scaled: false, (ulong)WorkspaceBytes);
            _fp8Plans[(m, n, k)] = plan;
        }
        float alpha = 1f, beta = 0f;
        var algo = plan.Algo;
        // cuBLASLt (column-major): D [N x M] = op(A) · B with A = wCodes as K x N (ld K) transposed, B = xCodes as K x M (ld K).
        CublasLt.Check(CublasLt.cublasLtMatmul(_cublas, plan.Desc, &alpha, Ptr(wCodes), plan.A, Ptr(xCodes), plan.B, &beta,
            Ptr(acc), plan.C, Ptr(acc), plan.C, &algo, _workspace.Pointer, (nuint)WorkspaceBytes, _stream), "cublasLtMatmul", $"fp8 m={m} n={n} k={k}");
    }

    /// <summary>
    /// y = act(xScales[r] · wScales[c] · (xCodes · wCodesᵀ)[r, c] + bias[c]) in one cuBLASLt call, with y in F16/BF16;
    /// false (y untouched) when this cuBLASLt has no such GEMM, noted once, so the caller takes the two-pass path.
    /// </summary>
    private bool TryScaledFp8Gemm(Tensor xCodes, Tensor xScales, Tensor wCodes, Tensor wScales, Tensor? bias, Activation activation, Tensor y)
    {
        if (_fp8ScaledUnavailable is not null || y.DType is not (DType.F16 or DType.BF16)) return false;
        int? epilogue = activation switch
        {
            Activation.None => bias is null ? CublasLt.EpilogueDefault : CublasLt.EpilogueBias,
            Activation.GeluTanh => bias is null ? CublasLt.EpilogueGelu : CublasLt.EpilogueGeluBias,
            _ => null,
        };
        if (epilogue is not { } ep || _fp8ScaledRefused.Contains((y.DType, ep))) return false;
        int m = xCodes.Dim(0), k = xCodes.Dim(1), n = wCodes.Dim(0);
        // D's leading dimension must be a multiple of 16 bytes; a narrow output (never in the model) takes the other path
        // rather than teaching this backend that the scaled GEMM is refused.
        if (n % 8 != 0) return false;
        MakeCurrent();
        var key = (m, n, k, y.DType, ep);
        try
        {
            if (!_fp8ScaledPlans.TryGetValue(key, out var plan))
            {
                plan = Fp8GemmPlan(_cublas, m, n, k, y.DType, ep, scaled: true, (ulong)WorkspaceBytes);
                _fp8ScaledPlans[key] = plan;
            }
            using var bc = bias is null ? null : BiasIn(bias, y.DType);
            using var yc = y.IsContiguous ? y.Alias() : Tensor.Empty(this, y.DType, y.ShapeArray());
            // A = the weight codes (rows of op(A) = output channels), B = the token codes (columns = tokens).
            CublasLt.Set(plan.Desc, CublasLt.DescAScalePointer, Ptr(wScales));
            CublasLt.Set(plan.Desc, CublasLt.DescBScalePointer, Ptr(xScales));
            if (bc is not null) CublasLt.Set(plan.Desc, CublasLt.DescBiasPointer, Ptr(bc));
            float alpha = 1f, beta = 0f;
            var algo = plan.Algo;
            CublasLt.Check(CublasLt.cublasLtMatmul(_cublas, plan.Desc, &alpha, Ptr(wCodes), plan.A, Ptr(xCodes), plan.B, &beta,
                Ptr(yc), plan.C, Ptr(yc), plan.C, &algo, _workspace.Pointer, (nuint)WorkspaceBytes, _stream), "cublasLtMatmul",
                $"fp8 scaled m={m} n={n} k={k}");
            if (!ReferenceEquals(yc, y) && !y.IsContiguous) Copy(yc, y);
            return true;
        }
        catch (CudaException e) when (e.Library == "cuBLASLt" && e.Status is 7 or 15)
        {
            // Answered before anything runs, so y is untouched. INVALID_VALUE: a library that predates outer-vector
            // scales (the scale-mode attribute is unknown). NOT_SUPPORTED: no kernel for this output type and epilogue.
            if (e.Status == 7) _fp8ScaledUnavailable = e.Message;
            else _fp8ScaledRefused.Add((y.DType, ep));
            Note($"fp8 linear: cuBLASLt has no FP8 GEMM with per-token and per-channel scales {(e.Status == 7 ? "here" : $"into {y.DType.Name()} with epilogue {ep}")} ({e.Message}); the scales, bias and activation run as a separate pass (slower)");
            return false;
        }
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
    /// the bias/GELU epilogue into <paramref name="y"/>'s half type (the one-call path).
    /// </summary>
    private static GemmPlan Fp8GemmPlan(CublasLtHandle handle, int m, int n, int k, DType y, int epilogue, bool scaled, ulong workspace)
    {
        MatmulDescHandle? desc = null;
        MatrixLayoutHandle? a = null, b = null, c = null;
        int yType = y switch { DType.BF16 => CublasLt.DataBF16, DType.F16 => CublasLt.DataF16, _ => CublasLt.DataF32 };
        string what = $"fp8 E4M3 x E4M3 -> {y.Name()}{(scaled ? " with outer-vector scales" : "")}, epilogue {epilogue}, m={m} n={n} k={k} (TN)";
        try
        {
            CublasLt.Check(CublasLt.cublasLtMatmulDescCreate(out desc, CublasLt.Compute32F, CublasLt.DataF32), "cublasLtMatmulDescCreate", what);
            CublasLt.Set(desc, CublasLt.DescTransA, CublasLt.OpT);
            CublasLt.Set(desc, CublasLt.DescTransB, CublasLt.OpN);
            CublasLt.Set(desc, CublasLt.DescEpilogue, epilogue);
            // CUBLASLT_MATMUL_DESC_FAST_ACCUM stays at its default 0: FP8 accumulation promoted to full float32.
            if (scaled)
            {
                CublasLt.Set(desc, CublasLt.DescAScaleMode, CublasLt.MatrixScaleOuterVec32F);
                CublasLt.Set(desc, CublasLt.DescBScaleMode, CublasLt.MatrixScaleOuterVec32F);
            }
            CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(out a, CublasLt.DataF8E4M3, (ulong)k, (ulong)n, k), "cublasLtMatrixLayoutCreate", what);
            CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(out b, CublasLt.DataF8E4M3, (ulong)k, (ulong)m, k), "cublasLtMatrixLayoutCreate", what);
            CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(out c, yType, (ulong)n, (ulong)m, n), "cublasLtMatrixLayoutCreate", what);
            CublasLt.Check(CublasLt.cublasLtMatmulPreferenceCreate(out var preference), "cublasLtMatmulPreferenceCreate");
            using (preference)
            {
                CublasLt.Set(preference, CublasLt.PrefMaxWorkspaceBytes, workspace);
                return new GemmPlan(desc, a, b, c, Heuristics(handle, desc, a, b, c, preference, 1, what));
            }
        }
        catch
        {
            GemmPlan.ReleaseParts(desc, a, b, c);
            throw;
        }
    }
}
