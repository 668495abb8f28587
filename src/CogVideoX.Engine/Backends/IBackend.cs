namespace CogVideoX.Engine;

public enum UnaryOp : byte
{
    Neg,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Sin,
    Cos,
    Tanh,
    Sigmoid,
    Silu,
    /// <summary>GELU with the tanh approximation (PyTorch approximate="tanh", T5's gelu_new).</summary>
    GeluTanh,
    /// <summary>Exact GELU (erf).</summary>
    Gelu,
    Relu,
    Abs,
    Square,
}

public enum BinaryOp : byte
{
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

public enum ReduceOp : byte
{
    Sum,
    Mean,
    Max,
    Min,
}

/// <summary>An activation fused into the epilogue of a GEMM or a norm.</summary>
public enum Activation : byte
{
    None,
    GeluTanh,
    Gelu,
    Silu,
    Relu,
}

/// <summary>Stride and zero padding of a 3D convolution, per (time, height, width).</summary>
public readonly record struct Conv3dParams(int StrideT, int StrideH, int StrideW, int PadT, int PadH, int PadW)
{
    public static Conv3dParams Same(int stride, int padT, int padH, int padW) => new(stride, stride, stride, padT, padH, padW);
}

/// <summary>
/// The narrow interface every compute backend implements. Shape inference, validation and composite operations
/// (concat, pad, upsampling, views) live once in <see cref="Ops"/>; a backend only runs kernels.
///
/// Contract for kernels: outputs are allocated by the caller with the right shape and dtype, contiguous unless a
/// method says otherwise; inputs may have any layout (a backend may make contiguous copies where its kernel needs
/// them); all tensors belong to this backend; float kernels take F32/F16/BF16 and compute in float32.
/// </summary>
public interface IBackend : IDisposable
{
    string Name { get; }

    Device Device { get; }

    /// <summary>Uninitialised storage for elementCount elements.</summary>
    Storage Allocate(DType dtype, long elementCount);

    void CopyFromHost(ReadOnlySpan<byte> source, Storage destination, long destinationByteOffset);

    void CopyToHost(Storage source, long sourceByteOffset, Span<byte> destination);

    /// <summary>Waits until all queued work has finished.</summary>
    void Synchronize();

    /// <summary>dst = src, element by element; shapes equal, any layouts (dst may be a view), dtype converted.</summary>
    void Copy(Tensor source, Tensor destination);

    void Fill(Tensor destination, double value);

    void Unary(UnaryOp op, Tensor x, Tensor y);

    /// <summary>y = x * scale + shift.</summary>
    void Affine(Tensor x, float scale, float shift, Tensor y);

    void Clamp(Tensor x, float min, float max, Tensor y);

    /// <summary>y = a op b; a and b come already broadcast to y's shape (stride-0 dims).</summary>
    void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y);

    /// <summary>Batched y[..., M, N] = a[..., M, K] · b[..., K, N]; batch dims already broadcast to y's.</summary>
    void MatMul(Tensor a, Tensor b, Tensor y);

    /// <summary>y[M, N] = act(x[M, K] · weight[N, K]ᵀ + bias[N]).</summary>
    void Linear(Tensor x, Tensor weight, Tensor? bias, Activation activation, Tensor y);

    /// <summary>x [N, Cin, T, H, W], weight [Cout, Cin, kT, kH, kW], bias [Cout] → y [N, Cout, T', H', W'], zero padding.</summary>
    void Conv3d(Tensor x, Tensor weight, Tensor? bias, Conv3dParams p, Tensor y);

    /// <summary>x [N, C, ...]: normalise over (C/groups × spatial) per group, then per-channel affine and activation.</summary>
    void GroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, float eps, Activation activation, Tensor y);

    /// <summary>
    /// y = act((GroupNorm(x)·gamma + beta)·scale + shift) for x [N, C, T, H, W], with scale and shift [N, C, T, h, w] (x's
    /// dtype) nearest-upsampled to H × W (whole multiples of h and w): a VAE's spatial norm in one pass over x, the
    /// modulation read at its own size. Each step rounded once in float32; y contiguous.
    /// </summary>
    void SpatialGroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Activation activation, Tensor y);

    /// <summary>Nearest-neighbour upsampling: each trailing dim of y is a whole multiple of x's (the factor); y contiguous.</summary>
    void UpsampleNearest(Tensor x, Tensor y);

    /// <summary>Normalise over the last dim (mean and variance), then affine.</summary>
    void LayerNorm(Tensor x, Tensor? gamma, Tensor? beta, float eps, Tensor y);

    /// <summary>
    /// LayerNorm over the last dim with the affine gamma/beta [D] (either may be null), then modulation:
    /// y = (norm(x)·gamma + beta)·(1 + scale) + shift, each step rounded once in float32. scale and shift come
    /// broadcast to x's shape (e.g. one [D] row per batch item: a DiT block's adaptive norm); they and y share x's
    /// dtype. y may be a strided view (it is written once, row by row).
    /// </summary>
    void ModulatedLayerNorm(Tensor x, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Tensor y);

    /// <summary>
    /// y = x + h ⊙ gate (product and sum each rounded once in float32): a gated residual. h and gate come broadcast
    /// to x's shape and share its dtype; y has x's shape and may be x itself or any strided view.
    /// </summary>
    void AddMul(Tensor x, Tensor h, Tensor gate, Tensor y);

    /// <summary>x / sqrt(mean(x²) + eps) over the last dim, times gamma. Statistics in float32.</summary>
    void RmsNorm(Tensor x, Tensor? gamma, float eps, Tensor y);

    /// <summary>Softmax over the last dim.</summary>
    void Softmax(Tensor x, Tensor y);

    /// <summary>
    /// y = softmax(q·kᵀ·scale + bias)·v with q [B, H, Nq, D], k and v [B, H, Nk, D], bias broadcast to
    /// [B, H, Nq, Nk] or null. y has shape [B, H, Nq, D] and may be a strided view (e.g. of [B, Nq, H, D]).
    /// Must not materialise the whole [H, Nq, Nk] score matrix.
    /// </summary>
    void Attention(Tensor q, Tensor k, Tensor v, Tensor? bias, float scale, Tensor y);

    /// <summary>
    /// Rotary embedding on interleaved pairs: x [B, H, N, D], cos/sin [N, D];
    /// y[2i] = x[2i]·cos[2i] − x[2i+1]·sin[2i], y[2i+1] = x[2i+1]·cos[2i+1] + x[2i]·sin[2i+1].
    /// y may be a strided view, x itself included (each pair is read before it is written).
    /// </summary>
    void Rotary(Tensor x, Tensor cos, Tensor sin, Tensor y);

    /// <summary>Row lookup: table [V, D], indices I64 [n] → y [n, D].</summary>
    void Gather(Tensor table, Tensor indices, Tensor y);

    /// <summary>Reduces the last dim: x [..., K] → y [...].</summary>
    void Reduce(ReduceOp op, Tensor x, Tensor y);
}
