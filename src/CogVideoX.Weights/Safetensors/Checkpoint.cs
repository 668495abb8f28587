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

    private Checkpoint(string source, List<SafetensorsFile> files, Dictionary<string, SafetensorsFile> byName)
    {
        Source = source;
        _files = files;
        _byName = byName;
    }

    /// <summary>The file, index or folder the checkpoint came from (for messages).</summary>
    public string Source { get; }

    public IReadOnlyList<SafetensorsFile> Files => _files;

    /// <summary>Tensor names in ordinal order.</summary>
    public IEnumerable<string> Names => _byName.Keys.Order(StringComparer.Ordinal);

    public int Count => _byName.Count;

    public long ParameterCount => _byName.Sum(p => p.Value.Entry(p.Key).ElementCount);

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

    public bool Contains(string name) => _byName.ContainsKey(name);

    public TensorEntry Entry(string name) => FileOf(name).Entry(name);

    /// <summary>The file holding a tensor.</summary>
    public SafetensorsFile FileOf(string name) =>
        _byName.TryGetValue(name, out var f) ? f : throw new WeightsException($"{Source}: no tensor named '{name}'");

    /// <summary>Loads a tensor onto a backend, converted to dtype (its stored dtype when null).</summary>
    public Tensor Load(string name, IBackend? backend = null, DType? dtype = null)
    {
        var t = FileOf(name).Load(name, backend, dtype);
        _loaded.TryAdd(name, 0);
        return t;
    }

    /// <summary>Names never loaded so far: after building a model, tensors the model does not know.</summary>
    public IReadOnlyList<string> UnloadedNames() => Names.Where(n => !_loaded.ContainsKey(n)).ToList();

    /// <summary>A loader rooted at this checkpoint that converts to dtype on backend.</summary>
    public WeightScope Scope(IBackend backend, DType dtype) => new(this, backend, dtype, "");

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}
