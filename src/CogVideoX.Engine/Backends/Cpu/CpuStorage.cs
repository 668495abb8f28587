using System.Runtime.InteropServices;

namespace CogVideoX.Engine;

/// <summary>
/// Host memory: either 64-byte aligned native memory owned by this storage, or memory owned by someone else
/// (a memory-mapped file) kept alive through <see cref="IDisposable"/> owner that is released with the storage.
/// </summary>
public sealed unsafe class CpuStorage : Storage
{
    private IntPtr _pointer;
    private readonly IDisposable? _owner;
    private readonly bool _ownsMemory;

    internal CpuStorage(CpuBackend backend, DType dtype, long elementCount)
        : base(backend, dtype, elementCount)
    {
        nuint bytes = (nuint)Math.Max(elementCount * dtype.SizeOf(), 1);
        _pointer = (IntPtr)NativeMemory.AlignedAlloc(bytes, 64);
        _ownsMemory = true;
        GC.AddMemoryPressure((long)bytes);
    }

    /// <summary>Wraps external memory; <paramref name="owner"/> is disposed when the last reference goes.</summary>
    internal CpuStorage(CpuBackend backend, DType dtype, long elementCount, IntPtr pointer, IDisposable? owner)
        : base(backend, dtype, elementCount)
    {
        _pointer = pointer;
        _owner = owner;
    }

    ~CpuStorage() => FreeMemory();

    public IntPtr Pointer
    {
        get
        {
            if (_pointer == IntPtr.Zero) throw new ObjectDisposedException(nameof(CpuStorage));
            return _pointer;
        }
    }

    protected override void Free()
    {
        FreeMemory();
        GC.SuppressFinalize(this);
    }

    private void FreeMemory()
    {
        var p = Interlocked.Exchange(ref _pointer, IntPtr.Zero);
        if (p == IntPtr.Zero) return;
        if (_ownsMemory)
        {
            NativeMemory.AlignedFree((void*)p);
            GC.RemoveMemoryPressure(Math.Max(ByteLength, 1));
        }
        _owner?.Dispose();
    }
}
