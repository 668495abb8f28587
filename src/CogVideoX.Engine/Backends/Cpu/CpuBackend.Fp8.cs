namespace CogVideoX.Engine;

/// <summary>
/// FP8 linears emulated on the CPU, bit-exact in the E4M3 codes (<see cref="E4M3"/>): the reference the GPU kernels are
/// checked against, and how fidelity is measured without a GPU. The codes are decoded to float32 (exact) and multiplied
/// by the CPU GEMM, so the products are exact and only the float32 accumulation order differs from a GPU's.
/// </summary>
public sealed unsafe partial class CpuBackend
{
    string? IFp8LinearKernel.Fp8Unavailable => null;

    void IFp8LinearKernel.QuantizeWeight(Tensor weight, Tensor codes, Tensor scales)
    {
        int n = weight.Dim(0), k = weight.Dim(1);
        using var w = F32(weight);
        QuantizeRows(Floats(w), n, k, Bytes(codes), Floats(scales));
    }

    void IFp8LinearKernel.LinearFp8(Tensor x, Tensor codes, Tensor scales, Tensor? bias, Activation activation, Tensor y)
    {
        int m = x.Dim(0), k = x.Dim(1);
        using var xf = F32(x);
        var xCodes = new byte[(long)m * k];
        var xScales = new float[m];
        QuantizeRows(Floats(xf), m, k, xCodes, xScales);
        Fp8Product(xCodes, xScales, m, codes, scales, bias, activation, y);
    }

    void IFp8LinearKernel.LinearFp8Quantized(Tensor xCodes, Tensor xScales, Tensor codes, Tensor scales, Tensor? bias, Activation activation, Tensor y) =>
        Fp8Product(Bytes(xCodes), Floats(xScales), xCodes.Dim(0), codes, scales, bias, activation, y);

    /// <summary>This backend's norm into x's dtype, then its quantization: the decomposition (the reference) itself.</summary>
    public void ModulatedLayerNormFp8(Tensor x, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Tensor codes, Tensor scales) =>
        Decompositions.ModulatedLayerNormFp8(x, gamma, beta, scale, shift, eps, codes, scales);

    /// <summary>y = act(Σ_k E4M3(xCodes) · E4M3(codes) · xScale[m] · wScale[n] + bias[n]): the decoded codes through the float32 GEMM.</summary>
    private void Fp8Product(ReadOnlySpan<byte> xCodes, ReadOnlySpan<float> xScales, int m, Tensor codes, Tensor scales, Tensor? bias, Activation activation, Tensor y)
    {
        int n = codes.Dim(0), k = codes.Dim(1);
        using var scope = new TensorScope();
        var xq = Decode(xCodes, m, k);
        var wq = Decode(Bytes(codes), n, k);
        var rowScales = xScales[..m].ToArray();
        // acc = xq · wqᵀ in float32 (the plain linear kernel, no bias).
        var acc = Tensor.Empty(Instance, DType.F32, m, n);
        ((ILinearKernel)this).Linear(xq, wq, null, Activation.None, acc);
        var a = (IntPtr)Ptr<float>(acc);
        var ws = scales.ToFloatArray();
        float[]? b = bias?.ToFloatArray();
        Parallel.For(0, m, row =>
        {
            var line = new Span<float>((float*)a + (long)row * n, n);
            float xs = rowScales[row];
            for (int j = 0; j < n; j++)
            {
                float v = line[j] * xs * ws[j];
                if (b is not null) v += b[j];
                line[j] = v;
            }
        });
        var activated = acc.Apply(activation);
        Copy(activated, y);
    }

    /// <summary>
    /// Each row of values [rows, cols] quantized with its own scale (amax / 448), rows in parallel (each row's codes
    /// depend on that row alone, so the result is the same however the rows are split). Weights quantized at load for
    /// host images (the streamed memory modes under --linear fp8) come through here: 5b's are ≈ 4.8 G values.
    /// </summary>
    internal static void QuantizeRows(ReadOnlySpan<float> values, int rows, int cols, Span<byte> codes, Span<float> scales)
    {
        if (values.Length < (long)rows * cols || codes.Length < (long)rows * cols || scales.Length < rows)
            throw new ArgumentException($"fp8 quantize: {rows} × {cols} values need as many codes and {rows} scales");
        fixed (float* v = values)
        fixed (byte* c = codes)
        fixed (float* s = scales)
        {
            var (vp, cp, sp) = ((IntPtr)v, (IntPtr)c, (IntPtr)s);
            ParallelRange(rows, Math.Max(1, 65536 / Math.Max(cols, 1)), (r0, r1) =>
            {
                for (long r = r0; r < r1; r++)
                {
                    var row = new ReadOnlySpan<float>((float*)vp + r * cols, cols);
                    ((float*)sp)[r] = QuantizeRow(row, new Span<byte>((byte*)cp + r * cols, cols));
                }
            });
        }
    }

    /// <summary>One row's codes (written to <paramref name="target"/>); returns its scale.</summary>
    private static float QuantizeRow(ReadOnlySpan<float> row, Span<byte> target)
    {
        float amax = 0;
        foreach (var v in row)
        {
            float a = MathF.Abs(v);
            if (a > amax || float.IsNaN(a)) amax = a;
        }
        float scale = E4M3.RowScale(amax);
        for (int i = 0; i < row.Length; i++) target[i] = E4M3.Quantize(row[i], scale);
        return scale;
    }

    private static Tensor Decode(ReadOnlySpan<byte> codes, int rows, int cols)
    {
        var t = Tensor.Empty(Instance, DType.F32, rows, cols);
        var dst = Floats(t);
        var table = E4M3.Table;
        for (int i = 0; i < dst.Length; i++) dst[i] = table[codes[i]];
        return t;
    }
}
