using System.Text.Json;
using CogVideoX.Engine;

namespace CogVideoX.Weights;

/// <summary>Where one tensor sits in a safetensors file (offsets relative to the start of the data).</summary>
public sealed record TensorEntry(string Name, DType DType, int[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (p, d) => p * d);

    public long ByteCount => End - Begin;
}

/// <summary>
/// The validated header of a .safetensors file: 8-byte little-endian header length, then a JSON object mapping
/// tensor names to dtype, shape and [begin, end) byte offsets into the data that follows. Validation is complete
/// and happens before any tensor is touched: offsets inside the data, sizes equal to shape × dtype size, no
/// overlaps, no holes (the format requires the data to be fully indexed), so a corrupt file fails here with a
/// message rather than later with a crash, a hang or a huge allocation.
/// </summary>
public sealed class SafetensorsHeader
{
    /// <summary>The format's own limit (the reference implementation refuses larger headers).</summary>
    public const long MaxHeaderBytes = 100L << 20;

    private readonly byte[] _json;

    private SafetensorsHeader(string path, long fileLength, byte[] json, Dictionary<string, TensorEntry> entries,
        Dictionary<string, string> metadata)
    {
        Path = path;
        FileLength = fileLength;
        _json = json;
        Entries = entries;
        Metadata = metadata;
    }

    public string Path { get; }

    /// <summary>Size of the whole file in bytes.</summary>
    public long FileLength { get; }

    /// <summary>The header's JSON bytes, as stored (its length is the file's first 8 bytes).</summary>
    public ReadOnlySpan<byte> Json => _json;

    /// <summary>Offset of the data section from the start of the file.</summary>
    public long DataStart => 8 + _json.Length;

    public long DataLength => FileLength - DataStart;

    public IReadOnlyDictionary<string, TensorEntry> Entries { get; }

    /// <summary>The optional <c>__metadata__</c> string map (e.g. <c>format: pt</c>).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    public long ParameterCount => Entries.Values.Sum(e => e.ElementCount);

    /// <summary>Reads and validates the header of a file without mapping or reading its data.</summary>
    public static SafetensorsHeader Read(string path)
    {
        using var stream = OpenRead(path);
        long length = stream.Length;
        Span<byte> prefix = stackalloc byte[8];
        CheckMinimumLength(path, length);
        stream.ReadExactly(prefix);
        int headerLength = CheckHeaderLength(path, BitConverter.ToUInt64(prefix), length);
        var json = new byte[headerLength];
        stream.ReadExactly(json);
        return Parse(path, json, length);
    }

    /// <summary>Opens a file for reading, turning the ways that can fail into messages (links followed).</summary>
    internal static FileStream OpenRead(string path)
    {
        SafetensorsFile.RefusePickle(path);
        if (Directory.Exists(path))
            throw new WeightsException($"{path}: is a folder, expected a .safetensors file");
        // Opening a FIFO waits for a writer that may never come, and a device may never end. Both report 0 bytes (as
        // does an empty file), so a file of 0 bytes (the link's target for a link) is refused before it is opened.
        if (LengthBeforeOpening(path) == 0)
            throw new WeightsException($"{path}: the file is empty (0 bytes) or not a regular file (a FIFO, socket or device); a safetensors file holds a header and the tensor data: the download or save probably failed");
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.RandomAccess);
        }
        catch (FileNotFoundException) when (new FileInfo(path).LinkTarget is { } target)
        {
            throw new WeightsException($"{path}: a link to '{target}', which does not exist (an incomplete download?)");
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new WeightsException($"{path}: file not found");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new WeightsException($"{path}: cannot be read ({e.Message})");
        }
    }

    /// <summary>The file's size without opening it (of the final target for a link), or −1 when it cannot be told.</summary>
    internal static long LengthBeforeOpening(string path)
    {
        try
        {
            var info = new FileInfo(path);
            if (info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target) info = target;
            return info.Exists ? info.Length : -1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
    }

    internal static void CheckMinimumLength(string path, long length)
    {
        if (length == 0)
            throw new WeightsException($"{path}: the file is empty (0 bytes); the download or save probably failed");
        if (length < 8)
            throw new WeightsException($"{path}: truncated safetensors file ({length} bytes; the 8-byte header length is incomplete)");
    }

    /// <summary>Checks the 8-byte header length against the file before anything is allocated from it.</summary>
    internal static int CheckHeaderLength(string path, ulong headerLength, long fileLength)
    {
        if (headerLength > (ulong)(fileLength - 8))
            throw new WeightsException($"{path}: the header length {headerLength} runs past the end of the file ({fileLength} bytes); the file is truncated or not safetensors");
        if (headerLength > MaxHeaderBytes)
            throw new WeightsException($"{path}: the header length {headerLength} is over the format's limit of {MaxHeaderBytes} bytes; not a safetensors file");
        if (headerLength < 2)
            throw new WeightsException($"{path}: the header length is {headerLength}; a safetensors header is a JSON object of at least 2 bytes");
        return (int)headerLength;
    }

    /// <summary>Parses and validates header JSON; <paramref name="fileLength"/> bounds the offsets.</summary>
    internal static SafetensorsHeader Parse(string path, ReadOnlySpan<byte> json, long fileLength)
    {
        var copy = json.ToArray();
        long dataLength = fileLength - 8 - copy.Length;
        int invalid = Utf8Check.FirstInvalid(copy);
        if (invalid >= 0)
            throw new WeightsException($"{path}: the header is not valid UTF-8 ({Utf8Check.Describe(copy, invalid)} of the header); a safetensors header is UTF-8 JSON, so the file is corrupt or not safetensors");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(copy);
        }
        catch (JsonException e)
        {
            throw new WeightsException($"{path}: the header is not valid JSON ({FirstSentence(e.Message)}); the file is corrupt or not safetensors");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new WeightsException($"{path}: the header must be a JSON object, found {Describe(doc.RootElement)}");
            var entries = new Dictionary<string, TensorEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            bool sawMetadata = false;
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (sawMetadata) throw new WeightsException($"{path}: '__metadata__' appears twice in the header");
                    sawMetadata = true;
                    ParseMetadata(path, prop.Value, metadata);
                    continue;
                }
                if (entries.ContainsKey(prop.Name))
                    throw new WeightsException($"{path}: tensor '{prop.Name}' appears twice in the header");
                entries[prop.Name] = ParseEntry(path, prop.Name, prop.Value, dataLength);
            }
            CheckLayout(path, entries.Values, dataLength);
            return new SafetensorsHeader(path, fileLength, copy, entries, metadata);
        }
    }

    private static void ParseMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new WeightsException($"{path}: '__metadata__' must be an object of strings, found {Describe(value)}");
        foreach (var m in value.EnumerateObject())
        {
            if (m.Value.ValueKind != JsonValueKind.String)
                throw new WeightsException($"{path}: '__metadata__' value '{m.Name}' must be a string, found {Describe(m.Value)}");
            metadata[m.Name] = m.Value.GetString()!;
        }
    }

    private static TensorEntry ParseEntry(string path, string name, JsonElement e, long dataLength)
    {
        string where = $"{path}: tensor '{name}'";
        if (e.ValueKind != JsonValueKind.Object)
            throw new WeightsException($"{where}: the entry must be an object with dtype, shape and data_offsets, found {Describe(e)}");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new WeightsException($"{where}: 'dtype' is missing or not a string");
        var dtype = ParseDType(where, dt.GetString()!);

        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new WeightsException($"{where}: 'shape' is missing or not a list of dimensions");
        var shape = new int[sh.GetArrayLength()];
        long count = 1;
        bool overflow = false;
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var v) || v < 0 || v > int.MaxValue)
                throw new WeightsException($"{where}: dimension {i} of the shape is {d.GetRawText()}; dimensions are integers from 0 to {int.MaxValue}");
            shape[i++] = (int)v;
            // Dims are checked one by one, so a product that overflows is caught before it wraps.
            if (v != 0 && count > long.MaxValue / v) overflow = true;
            else count *= v;
        }
        if (count == 0) overflow = false;
        long size = dtype.SizeOf();
        if (overflow || count > long.MaxValue / size)
            throw new WeightsException($"{where}: shape {Layout.Format(shape)} has more elements than any file can hold");

        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new WeightsException($"{where}: 'data_offsets' must be [begin, end]");
        if (off[0].ValueKind != JsonValueKind.Number || off[1].ValueKind != JsonValueKind.Number
            || !off[0].TryGetInt64(out var begin) || !off[1].TryGetInt64(out var end) || begin < 0 || end < begin)
            throw new WeightsException($"{where}: data_offsets {Compact(off)} are not integers with 0 ≤ begin ≤ end");
        if (end > dataLength)
            throw new WeightsException($"{where}: data_offsets [{begin}, {end}] lie outside the {dataLength} bytes of data; the file is truncated or corrupt");
        long expected = count * size;
        if (end - begin != expected)
            throw new WeightsException($"{where}: {end - begin} bytes stored, but shape {Layout.Format(shape)} of {dtype.Name()} needs {expected}");
        return new TensorEntry(name, dtype, shape, begin, end);
    }

    private static DType ParseDType(string where, string text) => text switch
    {
        "F32" => DType.F32,
        "F16" => DType.F16,
        "BF16" => DType.BF16,
        "I64" => DType.I64,
        "F64" or "I32" or "I16" or "I8" or "U8" or "U16" or "U32" or "U64" or "BOOL" or "C64"
            or "F8_E4M3" or "F8_E5M2" or "F8_E8M0" or "F6_E2M3" or "F6_E3M2" or "F4" =>
            throw new WeightsException($"{where}: dtype {text} is valid safetensors but not supported here (supported: F32, F16, BF16, I64)"),
        _ => throw new WeightsException($"{where}: unknown dtype '{Truncate(text)}' (supported: F32, F16, BF16, I64)"),
    };

    /// <summary>Tensors must tile the data exactly: no overlaps, no holes, nothing after the last one.</summary>
    private static void CheckLayout(string path, IEnumerable<TensorEntry> entries, long dataLength)
    {
        long covered = 0;
        TensorEntry? previous = null;
        foreach (var e in entries.Where(e => e.End > e.Begin).OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (previous is not null && e.Begin < previous.End)
                throw new WeightsException($"{path}: tensors '{previous.Name}' [{previous.Begin}, {previous.End}) and '{e.Name}' [{e.Begin}, {e.End}) overlap; the header is corrupt");
            if (e.Begin > covered)
                throw new WeightsException($"{path}: data bytes [{covered}, {e.Begin}) belong to no tensor; the format requires the data to be fully indexed (the file is corrupt)");
            covered = e.End;
            previous = e;
        }
        if (covered != dataLength)
            throw new WeightsException($"{path}: {dataLength - covered} bytes after the last tensor's data belong to no tensor; the file is corrupt or was not written as safetensors");
    }

    internal static string Describe(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "a list",
        JsonValueKind.String => $"the string {Truncate(e.GetRawText())}",
        JsonValueKind.Number => $"the number {Truncate(e.GetRawText())}",
        JsonValueKind.True or JsonValueKind.False => e.GetRawText(),
        JsonValueKind.Null => "null",
        _ => e.ValueKind.ToString(),
    };

    private static string Compact(JsonElement e) => Truncate(e.GetRawText().Replace(" ", "", StringComparison.Ordinal));

    private static string Truncate(string s) => s.Length <= 60 ? s : s[..57] + "...";

    private static string FirstSentence(string message)
    {
        int cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut].TrimEnd('.', ' ') : message.TrimEnd('.', ' ');
    }
}
