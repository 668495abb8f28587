using System.Text.Json;
using CogVideoX.Engine;

namespace CogVideoX.Weights;

/// <summary>
/// Writes tensors to a .safetensors file (for <c>--save-tensors</c> and tools): an 8-byte little-endian header
/// length, the JSON header (names in the given order, dtype, shape, data offsets, optional <c>__metadata__</c>),
/// padded with spaces to a multiple of 8 bytes as the reference writer does, then the data. Tensors may live on any
/// backend; they are copied to the host in their own dtype.
/// </summary>
public static class SafetensorsWriter
{
    private const string MetadataKey = "__metadata__";

    public static void Write(string path, IReadOnlyList<(string Name, Tensor Tensor)> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        Write(path, tensors.Select(t => (t.Name, t.Tensor.DType, t.Tensor.ShapeArray())).ToList(), i => tensors[i].Tensor, ownsTensors: false, metadata);
    }

    /// <summary>
    /// Writes tensors made one at a time, so a file larger than memory can be written: <paramref name="entries"/> gives
    /// every tensor's name, dtype and shape (the header), then <paramref name="make"/>(i) is called for each in turn;
    /// the tensor it returns (of that dtype and shape) is written and released.
    /// </summary>
    public static void Write(string path, IReadOnlyList<(string Name, DType DType, int[] Shape)> entries, Func<int, Tensor> make,
        IReadOnlyDictionary<string, string>? metadata = null) => Write(path, entries, make, ownsTensors: true, metadata);

    private static void Write(string path, IReadOnlyList<(string Name, DType DType, int[] Shape)> entries, Func<int, Tensor> tensorAt,
        bool ownsTensors, IReadOnlyDictionary<string, string>? metadata)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(entries);
        var header = Header(entries, metadata);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        stream.Write(BitConverter.GetBytes((ulong)header.Length));
        stream.Write(header);
        for (int i = 0; i < entries.Count; i++)
        {
            var (name, dtype, shape) = entries[i];
            if (Elements(shape) == 0) continue;
            var tensor = tensorAt(i);
            try
            {
                if (tensor.DType != dtype || !tensor.Shape.SequenceEqual(shape))
                    throw new ArgumentException($"tensor '{name}' is {tensor.DType.Name()}{tensor.ShapeString}, its header entry {dtype.Name()}{Layout.Format(shape)}");
                using var host = tensor.To(CpuBackend.Instance);
                stream.Write(CpuBackend.Bytes(host));
            }
            finally
            {
                if (ownsTensors) tensor.Dispose();
            }
        }
    }

    private static long Elements(int[] shape) => shape.Aggregate(1L, (n, d) => n * d);

    private static byte[] Header(IReadOnlyList<(string Name, DType DType, int[] Shape)> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(MetadataKey);
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, dtype, shape) in tensors)
            {
                if (string.IsNullOrEmpty(name) || name == MetadataKey)
                    throw new ArgumentException($"'{name}' cannot name a tensor in a safetensors file");
                if (!names.Add(name))
                    throw new ArgumentException($"tensor name '{name}' appears twice");
                long bytes = Elements(shape) * dtype.SizeOf();
                json.WriteStartObject(name);
                json.WriteString("dtype", dtype.Name());
                json.WriteStartArray("shape");
                foreach (int d in shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        // Spaces after the JSON bring the data to an 8-byte boundary (8 + header length), as the reference writer pads.
        int padding = (int)((8 - buffer.Length % 8) % 8);
        for (int i = 0; i < padding; i++) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }
}
