using System.Collections.Concurrent;
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
    private readonly ConcurrentDictionary<string, byte> _loaded = new(StringComparer.Ordinal);
    private readonly RandomWeights? _random;
    private readonly Dictionary<string, int[]>? _declared;

    private Checkpoint(string source, List<SafetensorsFile> files, Dictionary<string, SafetensorsFile> byName)
    {
        Source = source;
        _files = files;
        _byName = byName;
    }

    private Checkpoint(string source, RandomWeights random, Dictionary<string, int[]>? declared)
        : this(source, [], new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal))
    {
        _random = random;
        _declared = declared;
    }

    /// <summary>
    /// A checkpoint of deterministic random weights made on demand on the loading backend, for benchmarks at full
    /// size without weight files. With <paramref name="declared"/> (name and shape of every tensor) it holds exactly
    /// those; without, it holds a tensor of whatever name and shape a model asks for.
    /// </summary>
    public static Checkpoint Random(string source, int seed = 0, IEnumerable<(string Name, int[] Shape)>? declared = null) =>
        new(source, new RandomWeights(seed), declared?.ToDictionary(d => d.Name, d => d.Shape, StringComparer.Ordinal));

    /// <summary>True for <see cref="Random"/> checkpoints.</summary>
    public bool IsRandom => _random is not null;

    /// <summary>The file, index or folder the checkpoint came from (for messages).</summary>
    public string Source { get; }

    public IReadOnlyList<SafetensorsFile> Files => _files;

    /// <summary>Tensor names in ordinal order (for an undeclared random checkpoint: those loaded so far).</summary>
    public IEnumerable<string> Names => _random is null ? _byName.Keys.Order(StringComparer.Ordinal)
        : (_declared?.Keys ?? _loaded.Keys).Order(StringComparer.Ordinal);

    public int Count => Names.Count();

    public long ParameterCount => _random is null ? _byName.Sum(p => p.Value.Entry(p.Key).ElementCount)
        : _declared?.Values.Sum(s => s.Aggregate(1L, (a, d) => a * d)) ?? 0;

    /// <summary>
    /// Opens a .safetensors file, a <c>*.safetensors.index.json</c>, or a component folder (see
    /// <see cref="WeightFiles.Find"/> for which files a folder's weights are).
    /// </summary>
    public static Checkpoint Open(string path)
    {
        if (Directory.Exists(path)) return Open(WeightFiles.Require(path));
        if (path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase))
        {
            if (path.EndsWith(".bin.index.json", StringComparison.OrdinalIgnoreCase))
                SafetensorsFile.RefusePickle(path[..^".index.json".Length]);
            return OpenIndex(SafetensorsIndex.Read(path));
        }
        return OpenFile(path);
    }

    public static Checkpoint Open(WeightFiles weights) =>
        weights.Index is not null ? OpenIndex(SafetensorsIndex.Read(weights.Index)) : OpenFile(weights.Files[0]);

    private static Checkpoint OpenFile(string file)
    {
        var f = SafetensorsFile.Open(file);
        var byName = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        foreach (var name in f.Entries.Keys) byName[name] = f;
        return new Checkpoint(file, [f], byName);
    }

    private static Checkpoint OpenIndex(SafetensorsIndex index)
    {
        var files = new List<SafetensorsFile>();
        var byName = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        try
        {
            var byShard = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (var shard in index.Shards)
            {
                var shardPath = Path.Combine(index.Folder, shard);
                if (!File.Exists(shardPath))
                    throw new WeightsException($"{index.Path}: shard '{shard}' is missing from the folder (an incomplete download?)");
                var f = SafetensorsFile.Open(shardPath);
                files.Add(f);
                byShard[shard] = f;
            }
            foreach (var (name, shard) in index.WeightMap)
            {
                var f = byShard[shard];
                if (!f.Contains(name))
                    throw new WeightsException($"{index.Path}: the index puts '{name}' in '{shard}', which does not hold it");
                byName[name] = f;
            }
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
        return new Checkpoint(index.Path, files, byName);
    }

    public bool Contains(string name) => _random is null ? _byName.ContainsKey(name) : _declared?.ContainsKey(name) ?? true;

    /// <summary>A tensor of a random checkpoint, of the declared shape (or, undeclared, the one asked for).</summary>
    internal Tensor LoadRandom(string name, int[] shape, IBackend backend, DType dtype)
    {
        if (_declared is not null)
        {
            if (!_declared.TryGetValue(name, out var declared))
                throw new WeightsException($"{Source}: no tensor '{name}'");
            if (shape.Length > 0 && !declared.AsSpan().SequenceEqual(shape))
                throw new WeightsException($"{Source}: tensor '{name}' has shape {Layout.Format(declared)}, expected {Layout.Format(shape)}");
            shape = declared;
        }
        else if (shape.Length == 0)
        {
            throw new WeightsException($"{Source}: '{name}' was asked for without a shape; a random checkpoint without declared shapes needs one");
        }
        _loaded.TryAdd(name, 0);
        return _random!.Make(name, shape, backend, dtype);
    }

    public TensorEntry Entry(string name) => FileOf(name).Entry(name);

    /// <summary>The file holding a tensor.</summary>
    public SafetensorsFile FileOf(string name) =>
        _byName.TryGetValue(name, out var f) ? f : throw new WeightsException($"{Source}: no tensor named '{name}'");

    /// <summary>Loads a tensor onto a backend, converted to dtype (its stored dtype when null).</summary>
    public Tensor Load(string name, IBackend? backend = null, DType? dtype = null)
    {
        if (_random is not null) return LoadRandom(name, [], backend ?? CpuBackend.Instance, dtype ?? DType.F32);
        var t = FileOf(name).Load(name, backend, dtype);
        _loaded.TryAdd(name, 0);
        return t;
    }

    /// <summary>Names never loaded so far: after building a model, tensors the model does not know.</summary>
    public IReadOnlyList<string> UnloadedNames() => Names.Where(n => !_loaded.ContainsKey(n)).ToList();

    /// <summary>A loader rooted at this checkpoint that converts to dtype on backend.</summary>
    public WeightScope Scope(IBackend backend, DType dtype) => new(this, backend, dtype, "");

    /// <summary>A loader rooted at this checkpoint whose tensors are changed by <paramref name="patch"/> as they are read (null: as stored).</summary>
    public WeightScope Scope(IBackend backend, DType dtype, IWeightPatch? patch) => new(this, backend, dtype, "", patch);

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _random?.Dispose();
    }
}
