namespace CogVideoX.Engine.Cuda;

/// <summary>Raw device memory: what the caching allocator sits on (the driver, or a fake in tests).</summary>
internal interface IDeviceMemory
{
    /// <summary>Allocates, or returns false when the device is out of memory.</summary>
    bool TryAllocate(long bytes, out ulong pointer);

    void Free(ulong pointer);

    /// <summary>Waits for queued work, so blocks about to be returned to the driver are no longer in use.</summary>
    void Synchronize();

    (long Free, long Total) Info();
}

/// <summary>A block handed out by the allocator.</summary>
internal readonly record struct DeviceBlock(ulong Pointer, long Size);

/// <summary>
/// A caching allocator over one stream: freed blocks go to size-ordered free lists and are handed out again without a
/// driver call (cudaMalloc/cudaFree synchronise the device and cost tens of microseconds). Reuse is safe without
/// events because all work is queued on one stream, so a later user is ordered after the earlier one's kernels.
/// Sizes round up to 512 B below 1 MiB, 64 KiB below 32 MiB and 2 MiB above; a cached block of 1 MiB or more also
/// serves a request up to 1/8 smaller than itself. When the driver runs out, the cache is returned to it and the allocation retried once.
/// </summary>
internal sealed class CachingAllocator : IDisposable
{
    private const long SmallGranule = 512;
    private const long MediumGranule = 64L << 10;
    private const long LargeGranule = 2L << 20;
    private const long SmallLimit = 1L << 20;
    private const long MediumLimit = 32L << 20;

    private readonly IDeviceMemory _memory;
    private readonly object _gate = new();
    private readonly SortedSet<(long Size, ulong Pointer)> _free = new();
    private readonly Dictionary<ulong, long> _live = new();
    private bool _disposed;

    public CachingAllocator(IDeviceMemory memory) => _memory = memory;

    /// <summary>Bytes in blocks handed out (rounded sizes).</summary>
    public long AllocatedBytes { get; private set; }

    public long PeakAllocatedBytes { get; private set; }

    /// <summary>Bytes obtained from the driver: handed out plus cached.</summary>
    public long ReservedBytes { get; private set; }

    public long PeakReservedBytes { get; private set; }

    public long CachedBytes => ReservedBytes - AllocatedBytes;

    public int DriverAllocations { get; private set; }

    public int CacheHits { get; private set; }

    public static long RoundUp(long bytes)
    {
        bytes = Math.Max(bytes, 1);
        long granule = bytes < SmallLimit ? SmallGranule : bytes < MediumLimit ? MediumGranule : LargeGranule;
        return (bytes + granule - 1) / granule * granule;
    }

    public DeviceBlock Allocate(long bytes)
    {
        long size = RoundUp(bytes);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var hit = FindCached(size);
            if (hit is { } cached)
            {
                _free.Remove(cached);
                CacheHits++;
                return HandOut(cached.Pointer, cached.Size);
            }
            if (!_memory.TryAllocate(size, out var pointer))
            {
                ReleaseCacheLocked();
                if (!_memory.TryAllocate(size, out pointer))
                {
                    var (free, total) = _memory.Info();
                    throw new CudaOutOfMemoryException(size, AllocatedBytes, ReservedBytes, free, total);
                }
            }
            DriverAllocations++;
            ReservedBytes += size;
            PeakReservedBytes = Math.Max(PeakReservedBytes, ReservedBytes);
            return HandOut(pointer, size);
        }
    }

    private (long Size, ulong Pointer)? FindCached(long size)
    {
        if (_free.Count == 0) return null;
        long limit = size < SmallLimit ? size : size + size / 8;
        var view = _free.GetViewBetween((size, 0UL), (limit, ulong.MaxValue));
        return view.Count == 0 ? null : view.Min;
    }

    private DeviceBlock HandOut(ulong pointer, long size)
    {
        _live.Add(pointer, size);
        AllocatedBytes += size;
        PeakAllocatedBytes = Math.Max(PeakAllocatedBytes, AllocatedBytes);
        return new DeviceBlock(pointer, size);
    }

    /// <summary>Returns a block to the cache (a no-op after Dispose, when the driver memory is already gone).</summary>
    public void Free(DeviceBlock block)
    {
        lock (_gate)
        {
            if (_disposed) return;
            if (!_live.Remove(block.Pointer))
                throw new InvalidOperationException($"device block 0x{block.Pointer:x} freed twice or not from this allocator");
            AllocatedBytes -= block.Size;
            _free.Add((block.Size, block.Pointer));
        }
    }

    /// <summary>Gives every cached block back to the driver.</summary>
    public void ReleaseCache()
    {
        lock (_gate)
        {
            if (!_disposed) ReleaseCacheLocked();
        }
    }

    private void ReleaseCacheLocked()
    {
        if (_free.Count == 0) return;
        _memory.Synchronize();
        foreach (var (size, pointer) in _free)
        {
            _memory.Free(pointer);
            ReservedBytes -= size;
        }
        _free.Clear();
    }

    public void ResetPeak()
    {
        lock (_gate)
        {
            PeakAllocatedBytes = AllocatedBytes;
            PeakReservedBytes = ReservedBytes;
        }
    }

    /// <summary>Frees every block, cached or still handed out (the backend is going away).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _memory.Synchronize();
            ReleaseCacheLocked();
            foreach (var (pointer, size) in _live)
            {
                _memory.Free(pointer);
                ReservedBytes -= size;
            }
            _live.Clear();
            AllocatedBytes = 0;
            _disposed = true;
        }
    }
}
