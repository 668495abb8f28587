namespace CogVideoX.Engine.Cuda;

/// <summary>
/// Device memory of one tensor buffer, from the backend's caching allocator. The last reference's release returns
/// the block to the cache at once; a storage that is never released goes back when the GC finalises it.
/// </summary>
public sealed class CudaStorage : Storage
{
    private readonly CachingAllocator _allocator;
    private DeviceBlock _block;
    private int _freed;

    internal CudaStorage(CudaBackend backend, CachingAllocator allocator, DType dtype, long elementCount, DeviceBlock block)
        : base(backend, dtype, elementCount)
    {
        _allocator = allocator;
        _block = block;
    }

    ~CudaStorage() => ReturnBlock();

    /// <summary>The device address of element 0.</summary>
    public ulong Pointer
    {
        get
        {
            if (Volatile.Read(ref _freed) != 0) throw new ObjectDisposedException(nameof(CudaStorage));
            return _block.Pointer;
        }
    }

    /// <summary>Bytes reserved for this buffer (its size rounded up to the allocator's granule).</summary>
    public long CapacityBytes => _block.Size;

    protected override void Free()
    {
        ReturnBlock();
        GC.SuppressFinalize(this);
    }

    private void ReturnBlock()
    {
        if (Interlocked.Exchange(ref _freed, 1) == 0) _allocator.Free(_block);
    }
}
