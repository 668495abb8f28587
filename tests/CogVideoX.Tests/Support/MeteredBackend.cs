using System.Runtime.InteropServices;
using CogVideoX.Engine;

namespace CogVideoX.Tests;

/// <summary>
/// A host backend that counts the bytes its tensors hold (<see cref="IMemoryStatistics"/>, as the CUDA allocator does),
/// for tests of working-set bounds on the CPU. The CPU's kernels run on its memory: the core ones, and the fused
/// GroupNorm that the GPU also has (so the working set is the one a GPU sees, not a decomposition's temporaries).
/// A <see cref="Dry"/> one only counts: it holds no memory and runs no kernel (every value reads as zero), so the
/// working set of a full-size model can be measured in a moment, as long as nothing branches on the values.
/// </summary>
public sealed unsafe class MeteredBackend(bool dry = false) : IBackend, IMemoryStatistics, IGroupNormKernel
{
    /// <summary>Counts allocations only: no memory behind the tensors, no kernels run.</summary>
    public bool Dry { get; } = dry;

    private static readonly CpuBackend Cpu = CpuBackend.Instance;
    private readonly object _gate = new();
    private long _allocated;
    private long _peak;

    public string Name => "metered";

    public Device Device => Device.Cpu;

    public long AllocatedBytes
    {
        get { lock (_gate) return _allocated; }
    }

    public long PeakBytes
    {
        get { lock (_gate) return _peak; }
    }

    public long ReservedBytes => AllocatedBytes;

    public long PeakReservedBytes => PeakBytes;

    public void ResetPeak()
    {
        lock (_gate) _peak = _allocated;
    }

    public void Dispose() { }

    public Storage Allocate(DType dtype, long elementCount)
    {
        long bytes = elementCount * dtype.SizeOf();
        lock (_gate)
        {
            _allocated += bytes;
            _peak = Math.Max(_peak, _allocated);
        }
        return new HostMemory(this, dtype, elementCount);
    }

    private void Released(long bytes)
    {
        lock (_gate) _allocated -= bytes;
    }

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

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        if (Dry) return;
        using var ca = OnCpu(a);
        using var cb = OnCpu(b);
        using var cy = OnCpu(y);
        Cpu.Binary(op, ca, cb, cy);
    }

    public void Reduce(ReduceOp op, Tensor x, Tensor y) => Run(x, y, (a, b) => Cpu.Reduce(op, a, b));

    public void MatMul(Tensor a, Tensor b, Tensor y)
    {
        if (Dry) return;
        using var ca = OnCpu(a);
        using var cb = OnCpu(b);
        using var cy = OnCpu(y);
        Cpu.MatMul(ca, cb, cy);
    }

    public void Conv3d(Tensor x, Tensor weight, Tensor? bias, Conv3dParams p, Tensor y)
    {
        if (Dry) return;
        using var cx = OnCpu(x);
        using var cw = OnCpu(weight);
        using var cb = bias is null ? null : OnCpu(bias);
        using var cy = OnCpu(y);
        Cpu.Conv3d(cx, cw, cb, p, cy);
    }

    public void Gather(Tensor table, Tensor indices, Tensor y)
    {
        if (Dry) return;
        using var ct = OnCpu(table);
        using var ci = OnCpu(indices);
        using var cy = OnCpu(y);
        Cpu.Gather(ct, ci, cy);
    }

    public void GroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, float eps, Activation activation, Tensor y)
    {
        if (Dry) return;
        using var cx = OnCpu(x);
        using var cg = gamma is null ? null : OnCpu(gamma);
        using var cb = beta is null ? null : OnCpu(beta);
        using var cy = OnCpu(y);
        Cpu.GroupNorm(cx, groups, cg, cb, eps, activation, cy);
    }

    private void Run(Tensor x, Tensor y, Action<Tensor, Tensor> kernel)
    {
        if (Dry) return;
        using var cx = OnCpu(x);
        using var cy = OnCpu(y);
        kernel(cx, cy);
    }

    /// <summary>The same view of the same memory as a CPU tensor (the CPU kernels read CPU storage).</summary>
    private static Tensor OnCpu(Tensor t) =>
        Tensor.FromStorage(Cpu.Wrap(t.DType, t.Storage.ElementCount, ((HostMemory)t.Storage).Pointer, owner: null), t.Layout);

    private sealed class HostMemory : Storage
    {
        private readonly MeteredBackend _owner;
        private readonly long _bytes;

        public HostMemory(MeteredBackend backend, DType dtype, long elementCount)
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
