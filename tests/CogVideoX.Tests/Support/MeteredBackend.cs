using CogVideoX.Engine;

namespace CogVideoX.Tests;

/// <summary>
/// A host backend that counts the bytes its tensors hold (<see cref="IMemoryStatistics"/>, as the CUDA allocator does),
/// for tests of working-set bounds on the CPU. The CPU's kernels run on its memory: the core ones, and the fused
/// GroupNorm that the GPU also has (so the working set is the one a GPU sees, not a decomposition's temporaries).
/// A <see cref="Dry"/> one only counts: it holds no memory and runs no kernel (every value reads as zero), so the
/// working set of a full-size model can be measured in a moment, as long as nothing branches on the values.
/// </summary>
public sealed class MeteredBackend(bool dry = false) : HostKernelBackend(dry), IMemoryStatistics, IGroupNormKernel
{
    private readonly object _gate = new();
    private long _allocated;
    private long _peak;

    public override string Name => "metered";

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

    public override Storage Allocate(DType dtype, long elementCount)
    {
        long bytes = elementCount * dtype.SizeOf();
        lock (_gate)
        {
            _allocated += bytes;
            _peak = Math.Max(_peak, _allocated);
        }
        return base.Allocate(dtype, elementCount);
    }

    protected override void Released(long bytes)
    {
        lock (_gate) _allocated -= bytes;
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
}
