namespace CogVideoX.Engine;

/// <summary>
/// A reference-counted buffer owned by a backend. Tensors (and views) hold one reference each; the last release
/// frees the memory at once, because the GC does not feel device-memory pressure.
/// </summary>
public abstract class Storage
{
    private int _refs = 1;

    protected Storage(IBackend backend, DType dtype, long elementCount)
    {
        Backend = backend;
        DType = dtype;
        ElementCount = elementCount;
    }

    public IBackend Backend { get; }

    public DType DType { get; }

    public long ElementCount { get; }

    public long ByteLength => ElementCount * DType.SizeOf();

    public bool IsFreed => Volatile.Read(ref _refs) <= 0;

    internal void AddRef()
    {
        int now = Interlocked.Increment(ref _refs);
        if (now <= 1)
            throw new ObjectDisposedException(nameof(Storage), "a tensor was used after its storage was freed");
    }

    internal void Release()
    {
        if (Interlocked.Decrement(ref _refs) == 0)
            Free();
    }

    /// <summary>Returns the memory to its backend; called exactly once.</summary>
    protected abstract void Free();
}
