using System.Text.Json;
using CogVideoX.Engine;

namespace CogVideoX.Weights;

/// <summary>
/// All tensors of one model component: a single .safetensors file, or shards listed by a
/// <c>*.safetensors.index.json</c> weight map. Tensors are found by their checkpoint names.
/// </summary>
public sealed class Checkpoint : IDisposable
{
    private readonly List<SafetensorsFile> _files;
    private readonly Dictionary<string, SafetensorsFile> _byName;

    private Checkpoint(string source, List<SafetensorsFile> files, Dictionary<string, SafetensorsFile> byName)
    {
        Source = source;
        _files = files;
        _byName = byName;
    }

    /// <summary>The file or folder the checkpoint came from (for messages).</summary>
    public string Source { get; }

    public IReadOnlyList<SafetensorsFile> Files => _files;

    public IEnumerable<string> Names => _byName.Keys;

    public int Count => _byName.Count;

    /// <summary>
    /// Opens a .safetensors file, an index.json, or a component folder (diffusers: diffusion_pytorch_model*,
    /// transformers: model*), preferring an index when there is one.
    /// </summary>
    public static Checkpoint Open(string path)
    {
        if (Directory.Exists(path))
        {
            var index = Directory.GetFiles(path, "*.safetensors.index.json").OrderBy(f => f, StringComparer.Ordinal).FirstOrDefault();
            if (index is not null) return OpenIndex(index);
            var single = Directory.GetFiles(path, "*.safetensors").OrderBy(f => f, StringComparer.Ordinal).ToArray();
            if (single.Length == 1) return OpenFile(single[0]);
            if (single.Length > 1)
                throw new WeightsException($"{path}: {single.Length} .safetensors files and no *.safetensors.index.json to say which tensor is where");
            var pickles = Directory.GetFiles(path).Where(f => f.EndsWith(".bin", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".pt", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".ckpt", StringComparison.OrdinalIgnoreCase)).ToArray();
            if (pickles.Length > 0)
                SafetensorsFile.RefusePickle(pickles[0]);
            throw new WeightsException($"{path}: no .safetensors weights in this folder");
        }
        if (path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase)) return OpenIndex(path);
        return OpenFile(path);
    }

    private static Checkpoint OpenFile(string file)
    {
        var f = SafetensorsFile.Open(file);
        var byName = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        foreach (var name in f.Entries.Keys) byName[name] = f;
        return new Checkpoint(file, new List<SafetensorsFile> { f }, byName);
    }

    private static Checkpoint OpenIndex(string indexPath)
    {
        if (!File.Exists(indexPath)) throw new WeightsException($"{indexPath}: file not found");
        Dictionary<string, string> weightMap;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new WeightsException($"{indexPath}: no \"weight_map\" object");
            weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in map.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                    throw new WeightsException($"{indexPath}: weight_map entry '{p.Name}' is not a file name");
                weightMap[p.Name] = p.Value.GetString()!;
            }
        }
        catch (JsonException e)
        {
            throw new WeightsException($"{indexPath}: not valid JSON ({e.Message})");
        }
        var folder = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var files = new List<SafetensorsFile>();
        var byFile = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        var byName = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, shard) in weightMap)
            {
                if (shard.Contains('/') || shard.Contains('\\') || shard.Contains(".."))
                    throw new WeightsException($"{indexPath}: shard name '{shard}' must be a plain file name in the same folder");
                if (!byFile.TryGetValue(shard, out var f))
                {
                    var shardPath = Path.Combine(folder, shard);
                    if (!File.Exists(shardPath))
                        throw new WeightsException($"{indexPath}: shard '{shard}' (holding '{name}') is missing");
                    f = SafetensorsFile.Open(shardPath);
                    byFile[shard] = f;
                    files.Add(f);
                }
                if (!f.Contains(name))
                    throw new WeightsException($"{indexPath}: the index puts '{name}' in '{shard}', which does not hold it");
                byName[name] = f;
            }
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
        return new Checkpoint(indexPath, files, byName);
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public TensorEntry Entry(string name) =>
        _byName.TryGetValue(name, out var f) ? f.Entry(name) : throw new WeightsException($"{Source}: no tensor named '{name}'");

    /// <summary>The file holding a tensor.</summary>
    public SafetensorsFile FileOf(string name) =>
        _byName.TryGetValue(name, out var f) ? f : throw new WeightsException($"{Source}: no tensor named '{name}'");

    public Tensor Load(string name, IBackend? backend = null, DType? dtype = null) => FileOf(name).Load(name, backend, dtype);

    /// <summary>A loader rooted at this checkpoint that converts to dtype on backend.</summary>
    public WeightScope Scope(IBackend backend, DType dtype) => new(this, backend, dtype, "");

    public long ParameterCount => _byName.Keys.Sum(n => Entry(n).ElementCount);

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}

/// <summary>
/// Loads weights by checkpoint name under a prefix (as candle's VarBuilder): <c>w.Scope("transformer_blocks.0")</c>
/// then <c>w.Get("norm1.linear.weight", 3 * d, d)</c>. Errors name the full tensor path and expected vs actual shape.
/// </summary>
public sealed class WeightScope
{
    private readonly Checkpoint _checkpoint;

    internal WeightScope(Checkpoint checkpoint, IBackend backend, DType dtype, string prefix)
    {
        _checkpoint = checkpoint;
        Backend = backend;
        DType = dtype;
        Prefix = prefix;
    }

    public IBackend Backend { get; }

    public DType DType { get; }

    public string Prefix { get; }

    public Checkpoint Checkpoint => _checkpoint;

    public WeightScope Scope(string name) => new(_checkpoint, Backend, DType, Join(name));

    public WeightScope Scope(int index) => Scope(index.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>The same prefix, loading as another dtype (e.g. norms kept in float32).</summary>
    public WeightScope As(DType dtype) => new(_checkpoint, Backend, dtype, Prefix);

    public string Join(string name) => Prefix.Length == 0 ? name : $"{Prefix}.{name}";

    public bool Contains(string name) => _checkpoint.Contains(Join(name));

    /// <summary>Loads a tensor, checking its shape when one is given (no dims = any shape).</summary>
    public Tensor Get(string name, params int[] shape)
    {
        var full = Join(name);
        if (!_checkpoint.Contains(full))
            throw new WeightsException($"{_checkpoint.Source}: missing tensor '{full}'{(shape.Length > 0 ? $" (expected shape {Layout.Format(shape)})" : "")}");
        var entry = _checkpoint.Entry(full);
        if (shape.Length > 0 && !entry.Shape.SequenceEqual(shape))
            throw new WeightsException($"{_checkpoint.Source}: tensor '{full}' has shape {Layout.Format(entry.Shape)}, expected {Layout.Format(shape)}");
        if (!entry.DType.IsFloat() && DType.IsFloat())
            throw new WeightsException($"{_checkpoint.Source}: tensor '{full}' is {entry.DType.Name()}, expected a float type");
        return _checkpoint.Load(full, Backend, DType);
    }

    public Tensor? GetOptional(string name, params int[] shape) => Contains(name) ? Get(name, shape) : null;
}
