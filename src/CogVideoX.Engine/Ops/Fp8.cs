namespace CogVideoX.Engine;

/// <summary>
/// FP8 E4M3 ("fn": 4 exponent bits with bias 7, 3 mantissa bits, no infinities, S.1111.111 NaN), converted as
/// CUDA's <c>__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3)</c> and PyTorch's <c>float8_e4m3fn</c> cast after a
/// clamp do it: round to nearest, ties to even; finite values beyond ±448 and ±∞ saturate to ±448; values below the
/// smallest normal (2⁻⁶) become subnormals in steps of 2⁻⁹ (the smallest, 2⁻⁹ ≈ 0.00195); NaN stays NaN (0x7F).
/// Bit-exact (PTX's <c>cvt.rn.satfinite.e4m3x2.f32</c>): the CPU references of <see cref="IFp8LinearKernel"/> and
/// <see cref="ISage8AttentionKernel"/> and the GPU kernels give the same codes.
/// </summary>
public static class E4M3
{
    /// <summary>The largest finite value (S.1111.110 = 1.75 × 2⁸).</summary>
    public const float Max = 448f;

    /// <summary>The smallest positive (subnormal) value, 2⁻⁹.</summary>
    public const float MinSubnormal = 1f / 512;

    /// <summary>The smallest positive normal value, 2⁻⁶.</summary>
    public const float MinNormal = 1f / 64;

    /// <summary>The code of a NaN (0x7F; 0xFF with the sign).</summary>
    public const byte NaN = 0x7F;

    /// <summary>The nearest E4M3 code (ties to even), saturating at ±448.</summary>
    public static byte FromFloat(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        byte sign = (byte)((bits >> 24) & 0x80);
        if (float.IsNaN(value)) return (byte)(sign | NaN);
        float a = MathF.Abs(value);
        if (a > Max) return (byte)(sign | 0x7E); // saturate (∞ included)
        if (a < MinNormal)
        {
            // Subnormals (and zero): a multiple of 2⁻⁹, the count rounded half to even; a·512 is exact in double.
            // A count of 8 is the smallest normal, whose code is 8 as well (exponent field 1, mantissa 0).
            return (byte)(sign | (int)Math.Round(a * 512.0, MidpointRounding.ToEven));
        }
        uint abits = bits & 0x7FFF_FFFF;
        int exponent = (int)(abits >> 23) - 127; // −6 … 8
        uint mantissa = abits & 0x7F_FFFF;
        uint kept = mantissa >> 20, rest = mantissa & 0xF_FFFF;
        const uint half = 0x8_0000;
        if (rest > half || (rest == half && (kept & 1) != 0)) kept++;
        if (kept == 8)
        {
            kept = 0;
            exponent++;
        }
        int code = ((exponent + 7) << 3) | (int)kept;
        return (byte)(sign | Math.Min(code, 0x7E)); // a ≤ 448 never rounds past 448; kept for safety
    }

    /// <summary>The value of a code (exact in float).</summary>
    public static float ToFloat(byte code)
    {
        int e = (code >> 3) & 0xF, m = code & 7;
        float magnitude = (code & 0x7F) == NaN ? float.NaN
            : e == 0 ? m * MinSubnormal
            : (1f + m / 8f) * MathF.ScaleB(1f, e - 7);
        return (code & 0x80) != 0 ? -magnitude : magnitude;
    }

    /// <summary><paramref name="value"/> rounded to the nearest E4M3 value, as a float.</summary>
    public static float Round(float value) => s_table[FromFloat(value)];

    /// <summary>Every code's value, indexed by code.</summary>
    public static IReadOnlyList<float> Table => s_table;

    private static readonly float[] s_table = Enumerable.Range(0, 256).Select(c => ToFloat((byte)c)).ToArray();

    /// <summary>
    /// The scale of one row (a weight's output channel or an activation's token) whose largest magnitude is
    /// <paramref name="amax"/>: amax / 448, so the row's codes use the whole range; 1 for an all-zero row (or one
    /// that is not finite, which then stays NaN or saturates).
    /// </summary>
    public static float RowScale(float amax) => amax > 0 && float.IsFinite(amax) ? amax / Max : 1f;

    /// <summary>The code of <paramref name="value"/> in a row of scale <paramref name="scale"/>: E4M3(value / scale), one IEEE division.</summary>
    public static byte Quantize(float value, float scale) => FromFloat(value / scale);
}

/// <summary>
/// A linear layer's weight [N, K] quantized to FP8 E4M3 with one float32 scale per output channel (row):
/// weight[n, k] ≈ E4M3(codes[n, k]) · scales[n]. Made once (at load) by <see cref="Ops.QuantizeFp8"/> and used by
/// <see cref="Ops.LinearFp8"/>; it owns its tensors.
/// </summary>
public sealed class Fp8Weight : IDisposable
{
    public Fp8Weight(Tensor codes, Tensor scales)
    {
        ArgumentNullException.ThrowIfNull(codes);
        ArgumentNullException.ThrowIfNull(scales);
        if (codes.DType != DType.F8E4M3 || codes.Rank != 2)
            throw new ArgumentException($"fp8 weight: codes must be F8_E4M3 [N, K], got {codes.DType.Name()} {codes.ShapeString}");
        if (scales.DType != DType.F32 || scales.Rank != 1 || scales.Dim(0) != codes.Dim(0))
            throw new ArgumentException($"fp8 weight: scales must be F32 [{codes.Dim(0)}], got {scales.DType.Name()} {scales.ShapeString}");
        Codes = codes;
        Scales = scales;
    }

    /// <summary>[N, K] E4M3 codes, contiguous.</summary>
    public Tensor Codes { get; }

    /// <summary>[N] float32: each output channel's scale (amax / 448).</summary>
    public Tensor Scales { get; }

    public int OutFeatures => Codes.Dim(0);

    public int InFeatures => Codes.Dim(1);

    /// <summary>Bytes held: one per weight and four per output channel.</summary>
    public long Bytes => Codes.ElementCount + 4L * Scales.ElementCount;

    /// <summary>Bytes an [N, K] weight takes quantized (for memory estimates).</summary>
    public static long BytesFor(long outFeatures, long inFeatures) => outFeatures * inFeatures + 4 * outFeatures;

    public void Dispose()
    {
        Codes.Dispose();
        Scales.Dispose();
    }
}

/// <summary>
/// An activation [..., K] quantized to FP8 E4M3 per row (token), as <see cref="Ops.LinearFp8(Tensor, Fp8Weight, Tensor?, Activation)"/>
/// quantizes its input: codes [..., K] and one float32 scale per row [...], value ≈ E4M3(code) · scale. Written by a
/// producer that quantizes as it computes (<see cref="Ops.ModulatedLayerNormFp8Into"/>) so the linear reads one byte per
/// element instead of the half-type tensor twice. <see cref="DType"/> is the type of the values it stands for (the
/// linear's output type). Owns its tensors; both contiguous.
/// </summary>
public sealed class Fp8Activation : IDisposable
{
    public Fp8Activation(Tensor codes, Tensor scales, DType dtype)
    {
        ArgumentNullException.ThrowIfNull(codes);
        ArgumentNullException.ThrowIfNull(scales);
        if (codes.DType != DType.F8E4M3 || codes.Rank < 1 || !codes.IsContiguous)
            throw new ArgumentException($"fp8 activation: codes must be a contiguous F8_E4M3 [..., K], got {codes}{(codes.IsContiguous ? "" : " (strided)")}");
        if (scales.DType != DType.F32 || !scales.Shape.SequenceEqual(codes.Shape[..^1]) || !scales.IsContiguous)
            throw new ArgumentException($"fp8 activation: scales must be a contiguous F32 {Layout.Format(codes.Shape[..^1])} (one per row of codes {codes.ShapeString}), got {scales}");
        if (!ReferenceEquals(codes.Backend, scales.Backend))
            throw new ArgumentException($"fp8 activation: codes and scales live on different backends ({codes.Device} and {scales.Device})");
        if (dtype is not (DType.F32 or DType.F16 or DType.BF16))
            throw new ArgumentException($"fp8 activation: stands for F32, F16 or BF16 values, not {dtype.Name()}");
        Codes = codes;
        Scales = scales;
        DType = dtype;
    }

    /// <summary>Uninitialised codes [shape] and scales [shape without its last dim] on a backend.</summary>
    public static Fp8Activation Empty(IBackend backend, DType dtype, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (shape.Length < 1) throw new ArgumentException("fp8 activation: the shape needs at least one dim (the features)");
        var codes = Tensor.Empty(backend, DType.F8E4M3, shape);
        try
        {
            return new Fp8Activation(codes, Tensor.Empty(backend, DType.F32, shape[..^1]), dtype);
        }
        catch
        {
            codes.Dispose();
            throw;
        }
    }

    /// <summary>[..., K] E4M3 codes, contiguous.</summary>
    public Tensor Codes { get; }

    /// <summary>[...] float32: each row's scale (<see cref="E4M3.RowScale"/> of its largest magnitude).</summary>
    public Tensor Scales { get; }

    /// <summary>The dtype of the values the codes stand for (the output dtype of a linear on them).</summary>
    public DType DType { get; }

    public IBackend Backend => Codes.Backend;

    public void Dispose()
    {
        Codes.Dispose();
        Scales.Dispose();
    }
}

public static partial class Ops
{
    /// <summary>
    /// Why <paramref name="backend"/> cannot run FP8 linears (what it lacks and what to do), or null when it can
    /// (<see cref="IFp8LinearKernel"/> present and available on its device).
    /// </summary>
    public static string? Fp8Unavailable(IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (backend is not IFp8LinearKernel kernel)
            return $"the {backend.Name} backend has no FP8 linear kernel; use --linear exact";
        return kernel.Fp8Unavailable;
    }

    /// <summary>
    /// Quantizes a linear weight [N, K] (F32/F16/BF16) to FP8 E4M3 with one scale per output channel
    /// (<see cref="E4M3.RowScale"/> of the row's largest magnitude), on the weight's backend.
    /// </summary>
    public static Fp8Weight QuantizeFp8(this Tensor weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        Float(weight, "fp8 quantize");
        Rank(weight, 2, "fp8 quantize", "weight");
        var kernel = Fp8Kernel(weight.Backend);
        var codes = Tensor.Empty(weight.Backend, DType.F8E4M3, weight.Dim(0), weight.Dim(1));
        var scales = Tensor.Empty(weight.Backend, DType.F32, weight.Dim(0));
        try
        {
            if (codes.ElementCount > 0) kernel.QuantizeWeight(weight, codes, scales);
            return new Fp8Weight(codes, scales);
        }
        catch
        {
            codes.Dispose();
            scales.Dispose();
            throw;
        }
    }

    /// <summary>
    /// act(x · weightᵀ + bias) with FP8 operands: each row (token) of x quantized to E4M3 with its own scale
    /// (amax / 448), the products of codes accumulated in float32, then
    /// y = act(acc · xScale[m] · wScale[n] + bias[n]) (left to right, float32), stored in x's dtype.
    /// x [..., K] in F32/F16/BF16, bias [N] in x's dtype or null → [..., N].
    /// </summary>
    public static Tensor LinearFp8(this Tensor x, Fp8Weight weight, Tensor? bias = null, Activation activation = Activation.None)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        SameBackend(x, weight.Codes, "fp8 linear");
        Float(x, "fp8 linear");
        RankAtLeast(x, 1, "fp8 linear", "input");
        int k = x.Dim(-1), n = weight.OutFeatures;
        if (weight.InFeatures != k)
            throw new ArgumentException($"fp8 linear: input {x.ShapeString} has {k} features but weight [{n}, {weight.InFeatures}] expects {weight.InFeatures}");
        CheckLinearBias(x, bias, n, "fp8 linear");
        var kernel = Fp8Kernel(x.Backend);
        return OverRows(x, k, n, "fp8 linear", (x2, y) => kernel.LinearFp8(x2, weight.Codes, weight.Scales, bias, activation, y));
    }

    /// <summary>
    /// <see cref="LinearFp8(Tensor, Fp8Weight, Tensor?, Activation)"/> on an activation already quantized (by the op
    /// that produced it): the same GEMM and epilogue, the same result as quantizing its values here. Returns
    /// [..., N] in <see cref="Fp8Activation.DType"/>; bias [N] in that dtype or null.
    /// </summary>
    public static Tensor LinearFp8(this Fp8Activation x, Fp8Weight weight, Tensor? bias = null, Activation activation = Activation.None)
    {
        const string op = "fp8 linear";
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        SameBackend(x.Codes, weight.Codes, op);
        int k = x.Codes.Dim(-1), n = weight.OutFeatures;
        if (weight.InFeatures != k)
            throw new ArgumentException($"{op}: quantized input {x.Codes.ShapeString} has {k} features but weight [{n}, {weight.InFeatures}] expects {weight.InFeatures}");
        if (bias is not null)
        {
            SameBackend(x.Codes, bias, op);
            if (bias.DType != x.DType)
                throw new ArgumentException($"{op}: bias is {bias.DType.Name()} but the quantized input stands for {x.DType.Name()} values; give a bias of that dtype");
            if (bias.Rank != 1 || bias.Dim(0) != n)
                throw new ArgumentException($"{op}: bias {bias.ShapeString} does not match {n} outputs");
        }
        var kernel = Fp8Kernel(x.Backend);
        var outShape = x.Codes.ShapeArray();
        outShape[^1] = n;
        int m = (int)x.Scales.ElementCount;
        using var codes = x.Codes.Reshape(m, k);
        using var scales = x.Scales.Reshape(m);
        var y = Tensor.Empty(x.Backend, x.DType, m, n);
        if (y.ElementCount > 0)
        {
            if (k == 0) throw new ArgumentException($"{op}: input has zero features");
            kernel.LinearFp8Quantized(codes, scales, weight.Codes, weight.Scales, bias, activation, y);
        }
        using (y) return y.Reshape(outShape);
    }

    /// <summary>
    /// A DiT block's adaptive LayerNorm (<see cref="ModulatedLayerNorm"/>) written straight as the FP8 input of the
    /// linear that reads it: each row of the norm's output rounded to x's dtype (as the norm alone stores it), then
    /// quantized as <see cref="LinearFp8(Tensor, Fp8Weight, Tensor?, Activation)"/> quantizes its input. codes [..., D]
    /// (F8_E4M3, unit stride along D) and scales [...] (F32) take x's shape and may be views (one part of the tokens
    /// each call); the result is the norm then the quantization bit for bit, with neither the norm's half-type output
    /// written nor read back.
    /// </summary>
    public static void ModulatedLayerNormFp8Into(this Tensor x, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Tensor codes, Tensor scales)
    {
        const string op = "modulated_layer_norm_fp8";
        ArgumentNullException.ThrowIfNull(codes);
        ArgumentNullException.ThrowIfNull(scales);
        Float(x, op);
        RankAtLeast(x, 1, op, "input");
        CheckAffine(x, gamma, x.Dim(-1), op, "gamma");
        CheckAffine(x, beta, x.Dim(-1), op, "beta");
        using var s = CompanionOperand(scale, x, op, "scale");
        using var t = CompanionOperand(shift, x, op, "shift");
        SameBackend(x, codes, op);
        SameBackend(x, scales, op);
        if (codes.DType != DType.F8E4M3 || !codes.Shape.SequenceEqual(x.Shape))
            throw new ArgumentException($"{op}: codes {codes} must be F8_E4M3 {x.ShapeString} (x's shape)");
        if (codes.Layout.Stride(-1) != 1 && codes.Dim(-1) > 1)
            throw new ArgumentException($"{op}: codes must have a unit stride along their last dim (whole rows), got strides [{string.Join(", ", codes.Layout.Strides.ToArray())}]");
        if (scales.DType != DType.F32 || !scales.Shape.SequenceEqual(x.Shape[..^1]))
            throw new ArgumentException($"{op}: scales {scales} must be F32 {Layout.Format(x.Shape[..^1])} (one per row of x {x.ShapeString})");
        // FP8 codes need a backend that can run FP8 linears (the decomposition quantizes through it too).
        _ = Fp8Kernel(x.Backend);
        if (x.ElementCount == 0) return;
        if (Kernel<IModulatedLayerNormFp8Kernel>(x) is { } kernel) kernel.ModulatedLayerNormFp8(x, gamma, beta, s, t, eps, codes, scales);
        else Decompositions.ModulatedLayerNormFp8(x, gamma, beta, s, t, eps, codes, scales);
    }

    /// <summary><see cref="ModulatedLayerNormFp8Into"/> into a new activation of x's shape.</summary>
    public static Fp8Activation ModulatedLayerNormFp8(this Tensor x, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps)
    {
        Float(x, "modulated_layer_norm_fp8");
        RankAtLeast(x, 1, "modulated_layer_norm_fp8", "input");
        var result = Fp8Activation.Empty(x.Backend, x.DType, x.ShapeArray());
        try
        {
            x.ModulatedLayerNormFp8Into(gamma, beta, scale, shift, eps, result.Codes, result.Scales);
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    private static IFp8LinearKernel Fp8Kernel(IBackend backend) =>
        Fp8Unavailable(backend) is { } why ? throw new CogVideoXException($"fp8 linears: {why}") : (IFp8LinearKernel)backend;
}
