using System.IO.MemoryMappedFiles;
using System.Text.Json;
using CogVideoX.Engine;

namespace CogVideoX.Weights;

/// <summary>Where one tensor sits in a safetensors file.</summary>
public sealed record TensorEntry(string Name, DType DType, int[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (p, d) => p * d);
}

/// <summary>
/// A memory-mapped .safetensors file: 8-byte little-endian header length, a JSON header, then the raw data.
/// The header is validated in full before any tensor is read, so a corrupt file fails with a message instead of
/// a crash or a huge allocation.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private const long MaxHeaderBytes = 100L << 20;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private readonly long _dataStart;
    private int _disposed;

    private SafetensorsFile(string path, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* basePtr,
        long dataStart, long length, Dictionary<string, TensorEntry> entries, Dictionary<string, string> metadata)
    {
        Path = path;
        _map = map;
        _view = view;
        _base = basePtr;
        _dataStart = dataStart;
        Length = length;
        Entries = entries;
        Metadata = metadata;
    }

    public string Path { get; }

    public long Length { get; }

    public IReadOnlyDictionary<string, TensorEntry> Entries { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    public static SafetensorsFile Open(string path)
    {
        RefusePickle(path);
        if (!File.Exists(path)) throw new WeightsException($"{path}: file not found");
        long length = new FileInfo(path).Length;
        if (length < 8) throw new WeightsException($"{path}: truncated safetensors file ({length} bytes; the 8-byte header length is missing)");

        MemoryMappedFile map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        MemoryMappedViewAccessor? view = null;
        try
        {
            view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            p += view.PointerOffset;
            ulong headerLen = *(ulong*)p;
            if (headerLen > (ulong)(length - 8))
                throw new WeightsException($"{path}: header length {headerLen} runs past the end of the file ({length} bytes); the file is truncated or not safetensors");
            if (headerLen > MaxHeaderBytes)
                throw new WeightsException($"{path}: header length {headerLen} is implausibly large (limit {MaxHeaderBytes}); not a safetensors file");
            var header = new ReadOnlySpan<byte>(p + 8, (int)headerLen);
            long dataStart = 8 + (long)headerLen;
            var (entries, metadata) = ParseHeader(path, header, length - dataStart);
            var file = new SafetensorsFile(path, map, view, p, dataStart, length, entries, metadata);
            return file;
        }
        catch
        {
            if (view is not null)
            {
                view.SafeMemoryMappedViewHandle.ReleasePointer();
                view.Dispose();
            }
            map.Dispose();
            throw;
        }
    }

    /// <summary>Pickle checkpoints can run code when loaded; we never read them.</summary>
    public static void RefusePickle(string path)
    {
        var ext = System.IO.Path.GetExtension(path).ToLowerInvariant();
        if (ext is ".bin" or ".pt" or ".pth" or ".ckpt" or ".pkl")
            throw new WeightsException($"{path}: pickle checkpoints ({ext}) are not loaded because they can run arbitrary code; use the model's .safetensors files (convert with `safetensors` if the repository has none)");
    }

    private static (Dictionary<string, TensorEntry>, Dictionary<string, string>) ParseHeader(string path, ReadOnlySpan<byte> header, long dataLength)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header.ToArray());
        }
        catch (JsonException e)
        {
            throw new WeightsException($"{path}: the header is not valid JSON ({e.Message})");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new WeightsException($"{path}: the header must be a JSON object");
            var entries = new Dictionary<string, TensorEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind == JsonValueKind.Object)
                        foreach (var m in prop.Value.EnumerateObject())
                            metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    continue;
                }
                entries[prop.Name] = ParseEntry(path, prop.Name, prop.Value, dataLength);
            }
            CheckOverlaps(path, entries.Values);
            return (entries, metadata);
        }
    }

    private static TensorEntry ParseEntry(string path, string name, JsonElement e, long dataLength)
    {
        string where = $"{path}: tensor '{name}'";
        if (e.ValueKind != JsonValueKind.Object) throw new WeightsException($"{where}: entry is not an object");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new WeightsException($"{where}: missing dtype");
        var dtype = dt.GetString() switch
        {
            "F32" => DType.F32,
            "F16" => DType.F16,
            "BF16" => DType.BF16,
            "I64" => DType.I64,
            var other => throw new WeightsException($"{where}: dtype {other} is not supported (supported: F32, F16, BF16, I64)"),
        };
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new WeightsException($"{where}: missing shape");
        var shape = new List<int>();
        long count = 1;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var v) || v < 0 || v > int.MaxValue)
                throw new WeightsException($"{where}: invalid dimension {d.GetRawText()} in shape");
            shape.Add((int)v);
            count = checked(count * v);
        }
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new WeightsException($"{where}: data_offsets must be [begin, end]");
        if (!off[0].TryGetInt64(out var begin) || !off[1].TryGetInt64(out var end) || begin < 0 || end < begin)
            throw new WeightsException($"{where}: data_offsets {off.GetRawText()} are invalid");
        if (end > dataLength)
            throw new WeightsException($"{where}: data_offsets [{begin}, {end}] lie outside the {dataLength} bytes of data; the file is truncated or corrupt");
        long expected = count * dtype.SizeOf();
        if (end - begin != expected)
            throw new WeightsException($"{where}: {end - begin} bytes stored but shape {Layout.Format(shape.ToArray())} of {dtype.Name()} needs {expected}");
        return new TensorEntry(name, dtype, shape.ToArray(), begin, end);
    }

    private static void CheckOverlaps(string path, IEnumerable<TensorEntry> entries)
    {
        TensorEntry? previous = null;
        foreach (var e in entries.Where(e => e.End > e.Begin).OrderBy(e => e.Begin))
        {
            if (previous is not null && e.Begin < previous.End)
                throw new WeightsException($"{path}: tensors '{previous.Name}' [{previous.Begin}, {previous.End}) and '{e.Name}' [{e.Begin}, {e.End}) overlap");
            previous = e;
        }
    }

    public bool Contains(string name) => Entries.ContainsKey(name);

    public TensorEntry Entry(string name) =>
        Entries.TryGetValue(name, out var e) ? e : throw new WeightsException($"{Path}: no tensor named '{name}'");

    /// <summary>The stored bytes of one tensor (valid while the file is open).</summary>
    public ReadOnlySpan<byte> Bytes(TensorEntry entry)
    {
        if (Volatile.Read(ref _disposed) != 0) throw new ObjectDisposedException(Path);
        long len = entry.End - entry.Begin;
        if (len > int.MaxValue) throw new WeightsException($"{Path}: tensor '{entry.Name}' is larger than 2 GiB");
        return new ReadOnlySpan<byte>(_base + _dataStart + entry.Begin, (int)len);
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
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
