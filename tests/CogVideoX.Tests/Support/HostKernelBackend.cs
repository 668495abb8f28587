using System.Runtime.InteropServices;
using CogVideoX.Engine;

namespace CogVideoX.Tests;

/// <summary>
/// A test backend whose tensors live in its own host memory and whose core kernels are the CPU's, run on CPU views of
/// that memory. A <see cref="Dry"/> one holds no memory and runs no kernel (every value reads as zero).
/// </summary>
public abstract unsafe class HostKernelBackend(bool dry = false) : IBackend
{
    protected static readonly CpuBackend Cpu = CpuBackend.Instance;

    /// <summary>Counts allocations only: no memory behind the tensors, no kernels run.</summary>
    public bool Dry { get; } = dry;

    public abstract string Name { get; }

    public Device Device => Device.Cpu;

    public void Dispose() { }

    public virtual Storage Allocate(DType dtype, long elementCount) => new HostMemory(this, dtype, elementCount);

    /// <summary>Called when a tensor's memory of <paramref name="bytes"/> is freed.</summary>
    protected virtual void Released(long bytes) { }

    public void CopyFromHost(ReadOnlySpan<byte> source, Storage destination, long destinationByteOffset)
    {
        if (!Dry) source.CopyTo(new Span<byte>((byte*)((HostMemory)destination).Pointer + destinationByteOffset, source.Length));
    }

    public void CopyToHost(Storage source, long sourceByteOffset, Span<byte> destination)
    {
        if (Dry) destination.Clear();
        else new ReadOnlySpan<byte>((byte*)((HostMemory)source).Pointer + sourceByteOffset, destination.Length).CopyTo(destination);
    }

    public void Synchronize() { }

    public void Copy(Tensor source, Tensor destination) => Run(source, destination, (s, d) => Cpu.Copy(s, d));

    public void Fill(Tensor destination, double value)
    {
        if (Dry) return;
        using var d = OnCpu(destination);
        Cpu.Fill(d, value);
    }

    public void Unary(UnaryOp op, Tensor x, Tensor y) => Run(x, y, (a, b) => Cpu.Unary(op, a, b));

    public void Affine(Tensor x, float scale, float shift, Tensor y) => Run(x, y, (a, b) => Cpu.Affine(a, scale, shift, b));

    public void Clamp(Tensor x, float min, float max, Tensor y) => Run(x, y, (a, b) => Cpu.Clamp(a, min, max, b));

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y) => Run(a, b, y, (ca, cb, cy) => Cpu.Binary(op, ca, cb, cy));

    public void Reduce(ReduceOp op, Tensor x, Tensor y) => Run(x, y, (a, b) => Cpu.Reduce(op, a, b));

    public void MatMul(Tensor a, Tensor b, Tensor y) => Run(a, b, y, (ca, cb, cy) => Cpu.MatMul(ca, cb, cy));

    public void Conv3d(Tensor x, Tensor weight, Tensor? bias, Conv3dParams p, Tensor y)
    {
        if (Dry) return;
        using var cx = OnCpu(x);
        using var cw = OnCpu(weight);
        using var cb = bias is null ? null : OnCpu(bias);
        using var cy = OnCpu(y);
        Cpu.Conv3d(cx, cw, cb, p, cy);
    }

    public void Gather(Tensor table, Tensor indices, Tensor y) => Run(table, indices, y, (ct, ci, cy) => Cpu.Gather(ct, ci, cy));

    private void Run(Tensor x, Tensor y, Action<Tensor, Tensor> kernel)
    {
        if (Dry) return;
        using var cx = OnCpu(x);
        using var cy = OnCpu(y);
        kernel(cx, cy);
    }

    private void Run(Tensor a, Tensor b, Tensor y, Action<Tensor, Tensor, Tensor> kernel)
    {
        if (Dry) return;
        using var ca = OnCpu(a);
        using var cb = OnCpu(b);
        using var cy = OnCpu(y);
        kernel(ca, cb, cy);
    }

    /// <summary>The same view of the same memory as a CPU tensor (the CPU kernels read CPU storage).</summary>
    protected static Tensor OnCpu(Tensor t) =>
        Tensor.FromStorage(Cpu.Wrap(t.DType, t.Storage.ElementCount, ((HostMemory)t.Storage).Pointer, owner: null), t.Layout);

    private sealed class HostMemory : Storage
    {
        private readonly HostKernelBackend _owner;
        private readonly long _bytes;

        public HostMemory(HostKernelBackend backend, DType dtype, long elementCount)
            : base(backend, dtype, elementCount)
        {
            _owner = backend;
            _bytes = elementCount * dtype.SizeOf();
            if (!backend.Dry) Pointer = (IntPtr)NativeMemory.AlignedAlloc((nuint)Math.Max(_bytes, 1), 64);
        }

        public IntPtr Pointer { get; private set; }

        protected override void Free()
        {
            if (Pointer != IntPtr.Zero) NativeMemory.AlignedFree((void*)Pointer);
            Pointer = IntPtr.Zero;
            _owner.Released(_bytes);
        }
    }
}
