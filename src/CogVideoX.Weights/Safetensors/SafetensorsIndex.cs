using System.Text.Json;

namespace CogVideoX.Weights;

/// <summary>
/// A sharded checkpoint's <c>*.safetensors.index.json</c>: which shard file (in the same folder) holds each tensor.
/// </summary>
public sealed class SafetensorsIndex
{
    private SafetensorsIndex(string path, Dictionary<string, string> weightMap, List<string> shards)
    {
        Path = path;
        WeightMap = weightMap;
        Shards = shards;
    }

    public string Path { get; }

    /// <summary>Tensor name → shard file name.</summary>
    public IReadOnlyDictionary<string, string> WeightMap { get; }

    /// <summary>The distinct shard file names, in ordinal order.</summary>
    public IReadOnlyList<string> Shards { get; }

    public string Folder => System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!;

    public static SafetensorsIndex Read(string path)
    {
        byte[] bytes;
        // A FIFO would block the read until something writes to it (see SafetensorsHeader.OpenRead).
        if (SafetensorsHeader.LengthBeforeOpening(path) == 0)
            throw new WeightsException($"{path}: the file is empty (0 bytes) or not a regular file (a FIFO, socket or device); expected the JSON weight index (an incomplete download?)");
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new WeightsException($"{path}: file not found");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new WeightsException($"{path}: cannot be read ({e.Message})");
        }
        int invalid = Utf8Check.FirstInvalid(bytes);
        if (invalid >= 0)
            throw new WeightsException($"{path}: not valid UTF-8 text ({Utf8Check.Describe(bytes, invalid)}); a weight index is UTF-8 JSON, so the file is corrupt: download the model again");
        var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new WeightsException($"{path}: a weight index must be a JSON object with a \"weight_map\"");
            if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new WeightsException($"{path}: no \"weight_map\" object (tensor name → shard file)");
            foreach (var p in map.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                    throw new WeightsException($"{path}: weight_map entry '{p.Name}' must be a shard file name, found {SafetensorsHeader.Describe(p.Value)}");
                var shard = p.Value.GetString()!;
                if (shard.Length == 0 || shard.Contains('/') || shard.Contains('\\') || shard is "." or "..")
                    throw new WeightsException($"{path}: shard name '{shard}' (for '{p.Name}') must be a plain file name in the index's folder");
                SafetensorsFile.RefusePickle(shard);
                if (!weightMap.TryAdd(p.Name, shard))
                    throw new WeightsException($"{path}: tensor '{p.Name}' appears twice in weight_map");
            }
        }
        catch (JsonException e)
        {
            throw new WeightsException($"{path}: not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1})");
        }
        if (weightMap.Count == 0)
            throw new WeightsException($"{path}: weight_map lists no tensors");
        var shards = weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        return new SafetensorsIndex(path, weightMap, shards);
    }
}
