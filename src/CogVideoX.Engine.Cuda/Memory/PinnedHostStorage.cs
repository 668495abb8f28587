namespace CogVideoX.Engine.Cuda;

/// <summary>
/// Page-locked host memory behind a CPU tensor (what <see cref="CudaBackend.AllocatePinned"/> hands out): the CPU
/// storage disposes this owner when its last view goes, which frees the memory with the backend's context current.
/// After the backend is gone the context's teardown has already freed it, so it is only forgotten.
/// </summary>
internal sealed class PinnedHostStorage : IDisposable
{
    private readonly CudaBackend _backend;
    private readonly PinnedHostBuffer _buffer;

    private PinnedHostStorage(CudaBackend backend, PinnedHostBuffer buffer)
    {
        _backend = backend;
        _buffer = buffer;
    }

    public static unsafe Tensor Allocate(CudaBackend backend, DType dtype, long elementCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elementCount);
        long bytes = Math.Max(elementCount * dtype.SizeOf(), 1);
        backend.MakeCurrent();
        var buffer = PinnedHostBuffer.Allocate(bytes);
        var owner = new PinnedHostStorage(backend, buffer);
        var storage = CpuBackend.Instance.Wrap(dtype, elementCount, (IntPtr)buffer.Pointer, owner);
        return Tensor.FromStorage(storage, Layout.Contiguous([checked((int)elementCount)]));
    }

    public void Dispose()
    {
        if (_backend.TryMakeCurrent()) _buffer.Dispose();
        else _buffer.SetHandleAsInvalid();
    }
}
