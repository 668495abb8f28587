namespace CogVideoX.Engine.Cuda;

/// <summary>One cuDNN backend descriptor (destroyed with Dispose); setters check every status.</summary>
internal sealed unsafe class CudnnDescriptor : IDisposable
{
    private CudnnDescriptor(IntPtr handle, int type)
    {
        Handle = handle;
        Type = type;
    }

    public IntPtr Handle { get; private set; }

    public int Type { get; }

    public static CudnnDescriptor Create(int type)
    {
        Cudnn.Check(Cudnn.cudnnBackendCreateDescriptor(type, out var handle), "cudnnBackendCreateDescriptor", $"descriptor type {type}");
        return new CudnnDescriptor(handle, type);
    }

    public CudnnDescriptor Finalise()
    {
        Cudnn.Check(Cudnn.cudnnBackendFinalize(Handle), "cudnnBackendFinalize", $"descriptor type {Type}");
        return this;
    }

    /// <summary>Finalize, returning the status instead of throwing (plans an engine cannot build are skipped).</summary>
    public int TryFinalise() => Cudnn.cudnnBackendFinalize(Handle);

    public void Set(int name, int type, long count, void* values) =>
        Cudnn.Check(Cudnn.cudnnBackendSetAttribute(Handle, name, type, count, values), "cudnnBackendSetAttribute", $"attribute {name} of descriptor type {Type}");

    public void SetInt64(int name, long value) => Set(name, Cudnn.TypeInt64, 1, &value);

    public void SetInt64s(int name, ReadOnlySpan<long> values)
    {
        fixed (long* p = values) Set(name, Cudnn.TypeInt64, values.Length, p);
    }

    public void SetEnum(int name, int type, int value) => Set(name, type, 1, &value);

    public void SetBoolean(int name, bool value)
    {
        // CUDNN_TYPE_BOOLEAN is C's one-byte bool.
        byte b = value ? (byte)1 : (byte)0;
        Set(name, Cudnn.TypeBoolean, 1, &b);
    }

    public void SetHandle(int name, IntPtr handle) => Set(name, Cudnn.TypeHandle, 1, &handle);

    public void SetDescriptor(int name, CudnnDescriptor d)
    {
        var h = d.Handle;
        Set(name, Cudnn.TypeBackendDescriptor, 1, &h);
    }

    public void SetDescriptors(int name, IReadOnlyList<CudnnDescriptor> ds)
    {
        var handles = new IntPtr[ds.Count];
        for (int i = 0; i < handles.Length; i++) handles[i] = ds[i].Handle;
        fixed (IntPtr* p = handles) Set(name, Cudnn.TypeBackendDescriptor, handles.Length, p);
    }

    public long GetInt64(int name)
    {
        long value = 0;
        Cudnn.Check(Cudnn.cudnnBackendGetAttribute(Handle, name, Cudnn.TypeInt64, 1, out _, &value), "cudnnBackendGetAttribute", $"attribute {name}");
        return value;
    }

    public void Dispose()
    {
        if (Handle == IntPtr.Zero) return;
        Cudnn.cudnnBackendDestroyDescriptor(Handle);
        Handle = IntPtr.Zero;
    }
}
