using CogVideoX.Engine;

namespace CogVideoX.Weights;

/// <summary>
/// The safetensors files holding one component's weights, as found in its folder: a single file, or shards named
/// by a <c>*.safetensors.index.json</c>. Finding them reads no tensor data (only the index, when there is one).
/// </summary>
public sealed record WeightFiles(string Folder, string? Index, IReadOnlyList<string> Files)
{
    /// <summary>diffusers' and transformers' weight file stems; preferred over variants such as <c>.fp16</c>.</summary>
    private static readonly string[] s_standardStems = ["diffusion_pytorch_model", "model"];

    private const string IndexSuffix = ".safetensors.index.json";

    /// <summary>The weight files in a component folder, or null when it holds none (configs only).</summary>
    /// <exception cref="WeightsException">the folder is missing, holds only pickle checkpoints, or is ambiguous.</exception>
    public static WeightFiles? Find(string folder)
    {
        if (!Directory.Exists(folder))
            throw new WeightsException($"{folder}: folder not found");
        var names = Directory.GetFiles(folder).Select(f => Path.GetFileName(f)).ToList();
        var choice = Choose(names, folder);
        if (choice is { Index: { } index }) return FromIndex(folder, index);
        if (choice is { Single: { } single }) return new WeightFiles(folder, null, [Path.Combine(folder, single)]);

        var pickles = Pickles(names);
        if (pickles.Count > 0)
            throw new WeightsException($"{folder}: holds only pickle checkpoints ({string.Join(", ", pickles)}), which are not loaded because loading them can run arbitrary code; use the model's .safetensors files instead (download the repository's safetensors weights, or convert the checkpoint to safetensors)");
        return null;
    }

    /// <summary>
    /// Which of a component folder's files hold its weights, from the file names alone (so that a download can
    /// decide before fetching anything): a <c>*.safetensors.index.json</c> or a single <c>.safetensors</c> file, the
    /// standard names (<c>diffusion_pytorch_model</c>, <c>model</c>) preferred over variants such as <c>.fp16</c>.
    /// Null when there is no safetensors file. <paramref name="where"/> names the folder in errors.
    /// </summary>
    /// <exception cref="WeightsException">several candidates and nothing says which one is meant.</exception>
    public static WeightChoice? Choose(IEnumerable<string> fileNames, string where)
    {
        var names = fileNames.Order(StringComparer.Ordinal).ToList();
        var indexes = names.Where(n => n.EndsWith(IndexSuffix, StringComparison.Ordinal)).ToList();
        var singles = names.Where(n => n.EndsWith(".safetensors", StringComparison.Ordinal)).ToList();

        foreach (var stem in s_standardStems)
            if (indexes.Contains(stem + IndexSuffix)) return new WeightChoice(stem + IndexSuffix, null);
        foreach (var stem in s_standardStems)
            if (singles.Contains(stem + ".safetensors")) return new WeightChoice(null, stem + ".safetensors");
        if (indexes.Count == 1) return new WeightChoice(indexes[0], null);
        if (indexes.Count > 1)
            throw new WeightsException($"{where}: several weight indexes ({string.Join(", ", indexes)}) and none with a standard name; keep one, or pass the index file itself");
        if (singles.Count == 1) return new WeightChoice(null, singles[0]);
        if (singles.Count > 1)
            throw new WeightsException($"{where}: {singles.Count} .safetensors files ({string.Join(", ", singles)}) and no *.safetensors.index.json to say which tensor is where");
        return null;
    }

    /// <summary>The pickle checkpoints (and their indexes) among file names, in ordinal order.</summary>
    public static IReadOnlyList<string> Pickles(IEnumerable<string> fileNames) =>
        fileNames.Where(n => SafetensorsFile.IsPickle(n) || n.EndsWith(".bin.index.json", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();

    /// <summary>As <see cref="Find"/>, but a folder without weights is an error.</summary>
    public static WeightFiles Require(string folder) =>
        Find(folder) ?? throw new WeightsException($"{folder}: no weights in this folder (expected diffusion_pytorch_model.safetensors, model.safetensors, or shards with a *.safetensors.index.json)");

    private static WeightFiles FromIndex(string folder, string indexName)
    {
        var indexPath = Path.Combine(folder, indexName);
        var index = SafetensorsIndex.Read(indexPath);
        var files = new List<string>();
        foreach (var shard in index.Shards)
        {
            var path = Path.Combine(folder, shard);
            if (!File.Exists(path))
                throw new WeightsException($"{indexPath}: shard '{shard}' is missing from the folder (an incomplete download?)");
            files.Add(path);
        }
        return new WeightFiles(folder, indexPath, files);
    }

    /// <summary>Parameter count, dtypes and file sizes from the headers alone (validated; no tensor data read).</summary>
    public WeightsSummary Summarize()
    {
        using var checkpoint = Checkpoint.Open(this);
        var byDType = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var name in checkpoint.Names)
        {
            var e = checkpoint.Entry(name);
            byDType[e.DType.Name()] = byDType.GetValueOrDefault(e.DType.Name()) + e.ElementCount;
        }
        var files = checkpoint.Files
            .Select(f => new WeightFileSummary(Path.GetFileName(f.Path), f.Length, f.Entries.Count, f.Header.ParameterCount))
            .ToList();
        return new WeightsSummary(checkpoint.ParameterCount, checkpoint.Count, byDType, files.Sum(f => f.Bytes),
            Index is null ? null : Path.GetFileName(Index), files);
    }
}

/// <summary>A component's weights by file name: an index naming shards, or one file (exactly one is set).</summary>
public sealed record WeightChoice(string? Index, string? Single);

/// <summary>What a component's weight files hold, read from their headers.</summary>
public sealed record WeightsSummary(
    long Parameters,
    int Tensors,
    [property: System.Text.Json.Serialization.JsonPropertyName("parameters_by_dtype")]
    IReadOnlyDictionary<string, long> ParametersByDType,
    long Bytes,
    string? Index,
    IReadOnlyList<WeightFileSummary> Files);

public sealed record WeightFileSummary(string Name, long Bytes, int Tensors, long Parameters);
