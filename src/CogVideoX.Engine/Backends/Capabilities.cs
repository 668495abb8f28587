namespace CogVideoX.Engine;

/// <summary>
/// An optional kernel a backend may run itself instead of <see cref="Ops"/>' reference decomposition into core ops
/// (<see cref="Decompositions"/>): a backend has it when it implements the interface of the same name. Each one has
/// the core kernels' contract (outputs allocated by the caller, inputs already validated and broadcast) and must
/// agree with its decomposition within the op catalogue's tolerances.
/// </summary>
public enum Capability
{
    /// <summary><see cref="ILinearKernel"/>: a GEMM with the bias and activation in its epilogue.</summary>
    Linear,

    /// <summary><see cref="ISoftmaxKernel"/>.</summary>
    Softmax,

    /// <summary><see cref="ILayerNormKernel"/>.</summary>
    LayerNorm,

    /// <summary><see cref="IRmsNormKernel"/>.</summary>
    RmsNorm,

    /// <summary><see cref="IGroupNormKernel"/>, the activation fused.</summary>
    GroupNorm,

    /// <summary><see cref="IModulatedLayerNormKernel"/>: a DiT block's adaptive LayerNorm in one pass.</summary>
    ModulatedLayerNorm,

    /// <summary><see cref="IGatedResidualKernel"/>: x + h ⊙ gate in one pass.</summary>
    GatedResidual,

    /// <summary><see cref="ISpatialGroupNormKernel"/>: a VAE's spatially modulated group norm in one pass.</summary>
    SpatialGroupNorm,

    /// <summary><see cref="IUpsampleNearestKernel"/>.</summary>
    UpsampleNearest,

    /// <summary><see cref="IAttentionKernel"/>: scaled dot-product attention without the whole score matrix.</summary>
    Attention,

    /// <summary><see cref="IRotaryKernel"/>: interleaved-pair rotary embedding, in place allowed.</summary>
    Rotary,

    /// <summary>
    /// <see cref="ILayerNormRotaryKernel"/>: attention's per-head query/key LayerNorm and the rotary embedding of the
    /// trailing (video) tokens in one pass.
    /// </summary>
    LayerNormRotary,

    /// <summary>
    /// <see cref="ISage8AttentionKernel"/>: 8-bit attention (INT8 Q·Kᵀ, FP8 P·V), an opt-in fast mode whose reference is
    /// <see cref="Sage8Attention"/> (agreement within the half types' tolerance, not bit for bit).
    /// </summary>
    Sage8Attention,

    /// <summary>
    /// <see cref="IFp8LinearKernel"/>: a linear with FP8 E4M3 operands (an opt-in fast mode, <c>--linear fp8</c>). It has
    /// no decomposition into core ops: its reference is the CPU backend's bit-exact E4M3 emulation.
    /// </summary>
    Fp8Linear,

    /// <summary>
    /// <see cref="IModulatedLayerNormFp8Kernel"/>: a DiT block's adaptive LayerNorm written as the FP8 input of the
    /// linear after it (codes and row scales), bit for bit the norm then the quantization (<c>--linear fp8</c>).
    /// </summary>
    ModulatedLayerNormFp8,
}

/// <summary>The capability query (ggml's supports_op, per op kind).</summary>
public static class BackendCapabilities
{
    public static bool Supports(this IBackend backend, Capability capability) => KernelInterface(capability).IsInstanceOfType(backend);

    /// <summary>The interface a backend implements to have a capability.</summary>
    public static Type KernelInterface(Capability capability) => capability switch
    {
        Capability.Linear => typeof(ILinearKernel),
        Capability.Softmax => typeof(ISoftmaxKernel),
        Capability.LayerNorm => typeof(ILayerNormKernel),
        Capability.RmsNorm => typeof(IRmsNormKernel),
        Capability.GroupNorm => typeof(IGroupNormKernel),
        Capability.ModulatedLayerNorm => typeof(IModulatedLayerNormKernel),
        Capability.GatedResidual => typeof(IGatedResidualKernel),
        Capability.SpatialGroupNorm => typeof(ISpatialGroupNormKernel),
        Capability.UpsampleNearest => typeof(IUpsampleNearestKernel),
        Capability.Attention => typeof(IAttentionKernel),
        Capability.Rotary => typeof(IRotaryKernel),
        Capability.LayerNormRotary => typeof(ILayerNormRotaryKernel),
        Capability.Sage8Attention => typeof(ISage8AttentionKernel),
        Capability.Fp8Linear => typeof(IFp8LinearKernel),
        Capability.ModulatedLayerNormFp8 => typeof(IModulatedLayerNormFp8Kernel),
        _ => throw new ArgumentOutOfRangeException(nameof(capability)),
    };

    /// <summary>The capabilities a backend runs itself; the rest run as decompositions.</summary>
    public static IReadOnlyList<Capability> Capabilities(this IBackend backend) =>
        Enum.GetValues<Capability>().Where(backend.Supports).ToArray();
}

public interface ILinearKernel
{
    /// <summary>y[M, N] = act(x[M, K] · weight[N, K]ᵀ + bias[N]).</summary>
    void Linear(Tensor x, Tensor weight, Tensor? bias, Activation activation, Tensor y);
}

public interface ISoftmaxKernel
{
    /// <summary>Softmax over the last dim.</summary>
    void Softmax(Tensor x, Tensor y);
}

public interface ILayerNormKernel
{
    /// <summary>Normalise over the last dim (mean and variance), then affine.</summary>
    void LayerNorm(Tensor x, Tensor? gamma, Tensor? beta, float eps, Tensor y);
}

public interface IRmsNormKernel
{
    /// <summary>x / sqrt(mean(x²) + eps) over the last dim, times gamma. Statistics in float32.</summary>
    void RmsNorm(Tensor x, Tensor? gamma, float eps, Tensor y);
}

public interface IGroupNormKernel
{
    /// <summary>x [N, C, ...]: normalise over (C/groups × spatial) per group, then per-channel affine and activation.</summary>
    void GroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, float eps, Activation activation, Tensor y);
}

public interface IModulatedLayerNormKernel
{
    /// <summary>
    /// LayerNorm over the last dim with the affine gamma/beta [D] (either may be null), then modulation:
    /// y = (norm(x)·gamma + beta)·(1 + scale) + shift, each step rounded once in float32. scale and shift come
    /// broadcast to x's shape (e.g. one [D] row per batch item: a DiT block's adaptive norm); they and y share x's
    /// dtype. y may be a strided view (it is written once, row by row).
    /// </summary>
    void ModulatedLayerNorm(Tensor x, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Tensor y);
}

public interface IGatedResidualKernel
{
    /// <summary>
    /// y = x + h ⊙ gate (product and sum each rounded once in float32): a gated residual. h and gate come broadcast
    /// to x's shape and share its dtype; y has x's shape and may be x itself or any strided view.
    /// </summary>
    void AddMul(Tensor x, Tensor h, Tensor gate, Tensor y);
}

public interface ISpatialGroupNormKernel
{
    /// <summary>
    /// y = act((GroupNorm(x)·gamma + beta)·scale + shift) for x [N, C, T, H, W], with scale and shift [N, C, T, h, w] (x's
    /// dtype) nearest-upsampled to H × W (whole multiples of h and w): a VAE's spatial norm in one pass over x, the
    /// modulation read at its own size. Each step rounded once in float32; y contiguous.
    /// </summary>
    void SpatialGroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Activation activation, Tensor y);
}

public interface IUpsampleNearestKernel
{
    /// <summary>Nearest-neighbour upsampling: each trailing dim of y is a whole multiple of x's (the factor); y contiguous.</summary>
    void UpsampleNearest(Tensor x, Tensor y);
}

public interface IAttentionKernel
{
    /// <summary>
    /// y = softmax(q·kᵀ·scale + bias)·v with q [B, H, Nq, D], k and v [B, H, Nk, D] (Nk ≥ 1), bias broadcast to
    /// [B, H, Nq, Nk] or null. y has shape [B, H, Nq, D] and may be a strided view (e.g. of [B, Nq, H, D]).
    /// Must not materialise the whole [H, Nq, Nk] score matrix.
    /// </summary>
    void Attention(Tensor q, Tensor k, Tensor v, Tensor? bias, float scale, Tensor y);
}

public interface ISage8AttentionKernel
{
    /// <summary>
    /// y = the 8-bit attention of q [B, H, Nq, D], k and v [B, H, Nk, D] (Nk ≥ 1, no bias) with the softmax scale
    /// <paramref name="scale"/>, as <see cref="Sage8Attention"/> defines it; y [B, H, Nq, D] may be a strided view. A
    /// backend that cannot run it for these inputs (device, dtype, head dim) throws a <see cref="CogVideoXException"/>
    /// saying why and what to use instead.
    /// </summary>
    void Sage8Attention(Tensor q, Tensor k, Tensor v, float scale, Tensor y);
}

public interface IRotaryKernel
{
    /// <summary>
    /// Rotary embedding on interleaved pairs: x [B, H, N, D], cos/sin [N, D];
    /// y[2i] = x[2i]·cos[2i] − x[2i+1]·sin[2i], y[2i+1] = x[2i+1]·cos[2i+1] + x[2i]·sin[2i+1].
    /// y may be a strided view, x itself included (each pair is read before it is written).
    /// </summary>
    void Rotary(Tensor x, Tensor cos, Tensor sin, Tensor y);
}

public interface ILayerNormRotaryKernel
{
    /// <summary>
    /// y = LayerNorm(x) over the last dim with gamma/beta [D] (either may be null), rounded to x's dtype, then the
    /// rotary embedding of <see cref="IRotaryKernel"/> on the last M tokens: x [B, H, N, D] (any strides), cos/sin
    /// [M, D] with M ≤ N, y [B, H, N, D] contiguous in x's dtype. The two ops in sequence with the same roundings,
    /// so the result is theirs bit for bit where the norm's arithmetic is the same.
    /// </summary>
    void LayerNormRotary(Tensor x, Tensor? gamma, Tensor? beta, float eps, Tensor cos, Tensor sin, Tensor y);
}

public interface IFp8LinearKernel
{
    /// <summary>Why the device cannot run it now (e.g. a GPU older than sm_89), or null when it can.</summary>
    string? Fp8Unavailable { get; }

    /// <summary>
    /// codes[n, k] = E4M3(weight[n, k] / scales[n]) with scales[n] = <see cref="E4M3.RowScale"/>(max_k |weight[n, k]|):
    /// weight [N, K] F32/F16/BF16, codes [N, K] F8E4M3 and scales [N] F32 contiguous, allocated by the caller.
    /// </summary>
    void QuantizeWeight(Tensor weight, Tensor codes, Tensor scales);

    /// <summary>
    /// y[M, N] = act(acc · xScale[m] · wScale[n] + bias[n]) where each row of x [M, K] is quantized as a weight row
    /// is (xScale[m] = RowScale of the row's amax, codes E4M3(x / xScale)), acc = Σ_k E4M3(xCode[m, k]) ·
    /// E4M3(codes[n, k]) accumulated in float32, the epilogue evaluated left to right in float32. x, bias and y share
    /// a float dtype.
    /// </summary>
    void LinearFp8(Tensor x, Tensor codes, Tensor scales, Tensor? bias, Activation activation, Tensor y);

    /// <summary>
    /// <see cref="LinearFp8"/> on an input already quantized: xCodes [M, K] (F8E4M3) and xScales [M] (F32), both
    /// contiguous, as LinearFp8 would have made them from x; y [M, N] in F32/F16/BF16 (bias, when given, in y's dtype).
    /// </summary>
    void LinearFp8Quantized(Tensor xCodes, Tensor xScales, Tensor codes, Tensor scales, Tensor? bias, Activation activation, Tensor y);
}

public interface IModulatedLayerNormFp8Kernel
{
    /// <summary>
    /// The <see cref="IModulatedLayerNormKernel"/> norm of each row of x, its values rounded to x's dtype, then the row
    /// quantized as <see cref="IFp8LinearKernel.LinearFp8"/> quantizes its input: scales[r] = <see cref="E4M3.RowScale"/>
    /// of the rounded values' largest magnitude, codes[r, c] = E4M3(value / scales[r]) (one IEEE division). scale and
    /// shift come broadcast to x's shape in x's dtype; codes (F8E4M3, x's shape, unit stride along the last dim) and
    /// scales (F32, x's shape without the last dim) may be strided views. Bit for bit the two ops in sequence where the
    /// norm's arithmetic is the same.
    /// </summary>
    void ModulatedLayerNormFp8(Tensor x, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Tensor codes, Tensor scales);
}
