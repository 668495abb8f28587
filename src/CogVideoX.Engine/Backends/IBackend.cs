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
/// The narrow interface every compute backend implements: memory, strided copies, element-wise maps, last-dim
/// reductions, batched matrix products, 3D convolution and row lookup. Everything else (GEMM epilogues, norms, softmax,
/// attention, rotary, the fused forms a model needs) is an optional kernel a backend may add by implementing its
/// interface in <see cref="Capability"/>; <see cref="Ops"/> runs it where present and its reference decomposition in
/// <see cref="Decompositions"/> (built from these core ops) where not. Shape inference, validation and composite
/// operations (concat, pad, views) live once in <see cref="Ops"/>; a backend only runs kernels.
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

    /// <summary>Reduces the last dim: x [..., K] → y [...].</summary>
    void Reduce(ReduceOp op, Tensor x, Tensor y);

    /// <summary>Batched y[..., M, N] = a[..., M, K] · b[..., K, N]; batch dims already broadcast to y's.</summary>
    void MatMul(Tensor a, Tensor b, Tensor y);

    /// <summary>x [N, Cin, T, H, W], weight [Cout, Cin, kT, kH, kW], bias [Cout] → y [N, Cout, T', H', W'], zero padding.</summary>
    void Conv3d(Tensor x, Tensor weight, Tensor? bias, Conv3dParams p, Tensor y);

    /// <summary>Row lookup: table [V, D], indices I64 [n] → y [n, D].</summary>
    void Gather(Tensor table, Tensor indices, Tensor y);
}
