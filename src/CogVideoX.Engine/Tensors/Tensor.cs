using System.Runtime.InteropServices;

namespace CogVideoX.Engine;

/// <summary>
/// A view (layout) onto reference-counted storage. Views share storage and cost nothing; Dispose releases this
/// view's reference. Operations live in <see cref="Ops"/> as extension methods and run on the storage's backend.
/// </summary>
public sealed class Tensor : IDisposable
{
    private int _disposed;

    /// <summary>Wraps storage the caller holds one reference to; that reference passes to the tensor.</summary>
    internal Tensor(Storage storage, Layout layout)
    {
        Storage = storage;
        Layout = layout;
        var (min, max) = layout.Span();
        if (layout.ElementCount > 0 && (min < 0 || max >= storage.ElementCount))
            throw new ArgumentException($"layout {layout} reaches outside a storage of {storage.ElementCount} elements");
        TensorScope.Register(this);
    }

    public Storage Storage { get; }

    public Layout Layout { get; }

    public DType DType => Storage.DType;

    public IBackend Backend => Storage.Backend;

    public Device Device => Storage.Backend.Device;

    public ReadOnlySpan<int> Shape => Layout.Shape;

    public int[] ShapeArray() => Layout.ShapeArray();

    public int Rank => Layout.Rank;

    public long ElementCount => Layout.ElementCount;

    public bool IsContiguous => Layout.IsContiguous;

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    public int Dim(int dim) => Layout.Dim(dim);

    public string ShapeString => Layout.Format(Layout.Shape);

    public override string ToString() => $"Tensor{ShapeString} {DType.Name()} on {Device}";

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
            Storage.Release();
    }

    internal void ThrowIfDisposed()
    {
        if (IsDisposed) throw new ObjectDisposedException(nameof(Tensor), $"{this} was used after Dispose");
    }

    // ---- creation ----

    /// <summary>Uninitialised contiguous tensor.</summary>
    public static Tensor Empty(IBackend backend, DType dtype, params int[] shape)
    {
        var layout = Layout.Contiguous(shape);
        return new Tensor(backend.Allocate(dtype, layout.ElementCount), layout);
    }

    public static Tensor Zeros(IBackend backend, DType dtype, params int[] shape) => Full(backend, dtype, 0, shape);

    public static Tensor Full(IBackend backend, DType dtype, double value, params int[] shape)
    {
        var t = Empty(backend, dtype, shape);
        if (t.ElementCount > 0) backend.Fill(t, value);
        return t;
    }

    /// <summary>Copies host floats into a new tensor of the given dtype (converted) on the backend (CPU when null).</summary>
    public static Tensor FromArray(ReadOnlySpan<float> data, int[] shape, IBackend? backend = null, DType dtype = DType.F32)
    {
        backend ??= CpuBackend.Instance;
        var layout = Layout.Contiguous(shape);
        if (layout.ElementCount != data.Length)
            throw new ArgumentException($"{data.Length} values do not fill shape {Layout.Format(shape)}");
        if (dtype == DType.F32)
        {
            var t = new Tensor(backend.Allocate(DType.F32, data.Length), layout);
            backend.CopyFromHost(MemoryMarshal.AsBytes(data), t.Storage, 0);
            return t;
        }
        using var f32 = FromArray(data, shape, backend);
        return f32.To(dtype);
    }

    public static Tensor FromArray(ReadOnlySpan<long> data, int[] shape, IBackend? backend = null)
    {
        backend ??= CpuBackend.Instance;
        var layout = Layout.Contiguous(shape);
        if (layout.ElementCount != data.Length)
            throw new ArgumentException($"{data.Length} values do not fill shape {Layout.Format(shape)}");
        var t = new Tensor(backend.Allocate(DType.I64, data.Length), layout);
        backend.CopyFromHost(MemoryMarshal.AsBytes(data), t.Storage, 0);
        return t;
    }

    /// <summary>Wraps raw bytes of a given dtype (e.g. read from a file) into a new tensor on the backend.</summary>
    public static Tensor FromBytes(ReadOnlySpan<byte> bytes, DType dtype, int[] shape, IBackend? backend = null)
    {
        backend ??= CpuBackend.Instance;
        var layout = Layout.Contiguous(shape);
        if (layout.ElementCount * dtype.SizeOf() != bytes.Length)
            throw new ArgumentException($"{bytes.Length} bytes do not fill {dtype.Name()} shape {Layout.Format(shape)}");
        var t = new Tensor(backend.Allocate(dtype, layout.ElementCount), layout);
        backend.CopyFromHost(bytes, t.Storage, 0);
        return t;
    }

    /// <summary>Wraps storage the caller already owns a reference to (backends and loaders use this).</summary>
    public static Tensor FromStorage(Storage storage, Layout layout) => new(storage, layout);

    // ---- views (no copy) ----

    private Tensor View(Layout layout)
    {
        ThrowIfDisposed();
        Storage.AddRef();
        return new Tensor(Storage, layout);
    }

    public Tensor Permute(params int[] dims) => View(Layout.Permute(dims));

    public Tensor Transpose(int a, int b) => View(Layout.Transpose(a, b));

    public Tensor Narrow(int dim, int start, int length) => View(Layout.Narrow(dim, start, length));

    public Tensor Slice(int dim, int start, int end, int step = 1) => View(Layout.Slice(dim, start, end, step));

    /// <summary>Index one position of dim and drop it.</summary>
    public Tensor Select(int dim, int index) => View(Layout.Narrow(dim, index, 1).Squeeze(dim));

    public Tensor Unsqueeze(int dim) => View(Layout.Unsqueeze(dim));

    public Tensor Squeeze(int dim) => View(Layout.Squeeze(dim));

    public Tensor BroadcastTo(params int[] shape) => View(Layout.BroadcastTo(shape));

    /// <summary>A new handle on the same view (one more reference).</summary>
    public Tensor Alias() => View(Layout);

    /// <summary>Same elements, new shape (one -1 allowed). A view when the layout allows, otherwise a contiguous copy.</summary>
    public Tensor Reshape(params int[] shape)
    {
        ThrowIfDisposed();
        var target = Layout.InferShape(shape, ElementCount);
        var view = Layout.TryReshape(target);
        if (view is not null) return View(view);
        using var c = Contiguous();
        return c.View(c.Layout.TryReshape(target)!);
    }

    /// <summary>Splits dim into equal chunks (views).</summary>
    public Tensor[] Chunk(int chunks, int dim)
    {
        int d = Layout.Normalize(dim);
        int size = Shape[d];
        if (size % chunks != 0)
            throw new ArgumentException($"dimension {d} of {ShapeString} does not split into {chunks} equal chunks");
        int len = size / chunks;
        var parts = new Tensor[chunks];
        for (int i = 0; i < chunks; i++) parts[i] = Narrow(d, i * len, len);
        return parts;
    }

    // ---- copies ----

    /// <summary>This tensor when contiguous (as a new reference), otherwise a contiguous copy.</summary>
    public Tensor Contiguous()
    {
        ThrowIfDisposed();
        if (IsContiguous) return Alias();
        return Clone();
    }

    /// <summary>A contiguous copy in new storage.</summary>
    public Tensor Clone()
    {
        ThrowIfDisposed();
        var y = Empty(Backend, DType, ShapeArray());
        if (ElementCount > 0) Backend.Copy(this, y);
        return y;
    }

    /// <summary>Converts to another dtype (a new reference when it already is that dtype and contiguous).</summary>
    public Tensor To(DType dtype)
    {
        ThrowIfDisposed();
        if (dtype == DType) return Contiguous();
        var y = Empty(Backend, dtype, ShapeArray());
        if (ElementCount > 0) Backend.Copy(this, y);
        return y;
    }

    /// <summary>Moves to another backend (through host memory when neither side is the CPU).</summary>
    public Tensor To(IBackend backend)
    {
        ThrowIfDisposed();
        if (ReferenceEquals(backend, Backend)) return Contiguous();
        using var src = Contiguous();
        var y = new Tensor(backend.Allocate(DType, ElementCount), Layout.Contiguous(ShapeArray()));
        if (ElementCount == 0) return y;
        if (src.Backend is CpuBackend)
            backend.CopyFromHost(CpuBackend.Bytes(src), y.Storage, 0);
        else if (backend is CpuBackend)
            src.Backend.CopyToHost(src.Storage, src.Layout.Offset * DType.SizeOf(), CpuBackend.Bytes(y));
        else
        {
            var host = new byte[src.ElementCount * DType.SizeOf()];
            src.Backend.CopyToHost(src.Storage, src.Layout.Offset * DType.SizeOf(), host);
            backend.CopyFromHost(host, y.Storage, 0);
        }
        return y;
    }

    /// <summary>The values in logical (row-major) order as float32, wherever the tensor lives.</summary>
    public float[] ToFloatArray()
    {
        ThrowIfDisposed();
        if (DType == DType.I64) return Array.ConvertAll(ToLongArray(), v => (float)v);
        using var f = To(DType.F32);
        var result = new float[f.ElementCount];
        if (result.Length == 0) return result;
        f.Backend.CopyToHost(f.Storage, f.Layout.Offset * 4, MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }

    public long[] ToLongArray()
    {
        ThrowIfDisposed();
        if (DType != DType.I64) throw new InvalidOperationException($"{this} is not I64");
        using var c = Contiguous();
        var result = new long[c.ElementCount];
        if (result.Length == 0) return result;
        c.Backend.CopyToHost(c.Storage, c.Layout.Offset * 8, MemoryMarshal.AsBytes(result.AsSpan()));
        return result;
    }

    /// <summary>The single value of a one-element tensor.</summary>
    public float Item()
    {
        if (ElementCount != 1) throw new InvalidOperationException($"Item() needs one element, {this} has {ElementCount}");
        return ToFloatArray()[0];
    }
}
