using System.IO.MemoryMappedFiles;
using CogVideoX.Engine;

namespace CogVideoX.Weights;

/// <summary>
/// A memory-mapped .safetensors file. The header is validated in full on open (see <see cref="SafetensorsHeader"/>);
/// tensor data is only touched when a tensor is loaded, straight from the mapping.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private int _disposed;

    private SafetensorsFile(SafetensorsHeader header, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePtr)
    {
        Header = header;
        _map = map;
        _view = view;
        _base = basePtr;
    }

    public SafetensorsHeader Header { get; }

    public string Path => Header.Path;

    /// <summary>Size of the file in bytes (of the link's target when the path is a symbolic link).</summary>
    public long Length => Header.FileLength;

    public IReadOnlyDictionary<string, TensorEntry> Entries => Header.Entries;

    public IReadOnlyDictionary<string, string> Metadata => Header.Metadata;

    public static SafetensorsFile Open(string path)
    {
        // The length comes from the opened stream, not FileInfo: for a symbolic link (the Hugging Face cache is
        // made of them) FileInfo reports the link's own size.
        var stream = SafetensorsHeader.OpenRead(path);
        long length = stream.Length;
        MemoryMappedFile map;
        try
        {
            SafetensorsHeader.CheckMinimumLength(path, length);
            map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        }
        catch (Exception e)
        {
            stream.Dispose();
            if (e is IOException or UnauthorizedAccessException)
                throw new WeightsException($"{path}: cannot be mapped into memory ({e.Message})");
            throw;
        }
        MemoryMappedViewAccessor? view = null;
        bool acquired = false;
        try
        {
            view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            acquired = true;
            p += view.PointerOffset;
            int headerLength = SafetensorsHeader.CheckHeaderLength(path, *(ulong*)p, length);
            var header = SafetensorsHeader.Parse(path, new ReadOnlySpan<byte>(p + 8, headerLength), length);
            return new SafetensorsFile(header, map, view, p);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Release(view, acquired, map);
            throw new WeightsException($"{path}: cannot be mapped into memory ({e.Message})");
        }
        catch
        {
            Release(view, acquired, map);
            throw;
        }
    }

    private static void Release(MemoryMappedViewAccessor? view, bool acquired, MemoryMappedFile map)
    {
        if (view is not null)
        {
            if (acquired) view.SafeMemoryMappedViewHandle.ReleasePointer();
            view.Dispose();
        }
        map.Dispose();
    }

    /// <summary>The extensions of pickle checkpoints, which we never read.</summary>
    public static readonly IReadOnlyList<string> PickleExtensions = [".bin", ".pt", ".pth", ".ckpt", ".pkl"];

    public static bool IsPickle(string path) =>
        PickleExtensions.Contains(System.IO.Path.GetExtension(path).ToLowerInvariant());

    /// <summary>Pickle checkpoints can run arbitrary code when loaded; refuse them with what to use instead.</summary>
    public static void RefusePickle(string path)
    {
        if (IsPickle(path))
            throw new WeightsException($"{path}: pickle checkpoints ({System.IO.Path.GetExtension(path)}) are not loaded because loading them can run arbitrary code; use the model's .safetensors files instead (download the repository's safetensors weights, or convert the checkpoint to safetensors)");
    }

    public bool Contains(string name) => Entries.ContainsKey(name);

    public TensorEntry Entry(string name) =>
        Entries.TryGetValue(name, out var e) ? e : throw new WeightsException($"{Path}: no tensor named '{name}'");

    /// <summary>The stored bytes of one tensor (valid while the file is open).</summary>
    public ReadOnlySpan<byte> Bytes(TensorEntry entry)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (entry.ByteCount > int.MaxValue) throw new WeightsException($"{Path}: tensor '{entry.Name}' is larger than 2 GiB, which is not supported");
        return new ReadOnlySpan<byte>(_base + Header.DataStart + entry.Begin, (int)entry.ByteCount);
    }

    /// <summary>Bytes of the data section, [offset, offset + count) (valid while the file is open).</summary>
    public ReadOnlySpan<byte> DataBytes(long offset, int count)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset + count, Header.DataLength);
        return new ReadOnlySpan<byte>(_base + Header.DataStart + offset, count);
    }

    /// <summary>Loads a tensor onto a backend, converted to dtype (its stored dtype when null).</summary>
    public Tensor Load(string name, IBackend? backend = null, DType? dtype = null)
    {
        var entry = Entry(name);
        backend ??= CpuBackend.Instance;
        using var raw = Tensor.FromBytes(Bytes(entry), entry.DType, entry.Shape, backend);
        return raw.To(dtype ?? entry.DType);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
