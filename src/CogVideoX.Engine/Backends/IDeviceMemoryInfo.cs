namespace CogVideoX.Engine;

/// <summary>
/// Implemented by backends on a device with memory of its own (CUDA): how much the device has and how much of it is
/// free now, for choosing a memory mode before a run and for explaining an out-of-memory error.
/// </summary>
public interface IDeviceMemoryInfo
{
    /// <summary>Bytes the driver could hand out now (memory this process caches for reuse is not counted).</summary>
    long FreeBytes { get; }

    long TotalBytes { get; }

    /// <summary>Bytes this process holds from the device but no tensor uses (a caching allocator's reserve).</summary>
    long CachedBytes { get; }

    /// <summary>Gives the cached, unused memory back to the driver (after a model is released, so others can use it).</summary>
    void TrimCache();
}

/// <summary>
/// Implemented by the exception a backend throws when the device runs out of memory, so layers above the engine can
/// turn it into advice (which memory mode fits) without knowing the backend.
/// </summary>
public interface IDeviceOutOfMemory
{
    /// <summary>The allocation that failed.</summary>
    long RequestedBytes { get; }

    /// <summary>Bytes this process held from the device when it failed (tensors and cache).</summary>
    long HeldBytes { get; }

    /// <summary>Free device memory after the cache was returned.</summary>
    long FreeBytes { get; }

    long TotalBytes { get; }
}
