namespace CogVideoX.Weights;

/// <summary>The component folders of a CogVideoX pipeline, as diffusers names them.</summary>
public static class PipelineComponents
{
    public const string TextEncoder = "text_encoder";
    public const string Tokenizer = "tokenizer";
    public const string Transformer = "transformer";
    public const string Vae = "vae";
    public const string Scheduler = "scheduler";

    /// <summary>In the order data flows through the pipeline.</summary>
    public static readonly IReadOnlyList<string> All = [TextEncoder, Tokenizer, Transformer, Vae, Scheduler];
}

/// <summary>Where a model folder came from when it was resolved in the Hugging Face cache.</summary>
public sealed record HubSnapshot(string RepoId, string Revision, string Commit, string RepoCacheFolder);

/// <summary>
/// A resolved diffusers-layout pipeline folder (<c>model_index.json</c> plus one folder per component). The index is
/// read on open; component configs are read when first asked for; weights are only found or opened on request.
/// </summary>
public sealed class ModelFolder
{
    private readonly Lazy<TransformerConfig> _transformer;
    private readonly Lazy<VaeConfig> _vae;
    private readonly Lazy<T5Config> _textEncoder;
    private readonly Lazy<SchedulerConfig> _scheduler;
    private readonly Lazy<string?> _checksum;

    private ModelFolder(string path, ModelIndex index, HubSnapshot? hub)
    {
        Path = path;
        Index = index;
        Hub = hub;
        _transformer = new(() => TransformerConfig.Load(ConfigPath(PipelineComponents.Transformer)));
        _vae = new(() => VaeConfig.Load(ConfigPath(PipelineComponents.Vae)));
        _textEncoder = new(() => T5Config.Load(ConfigPath(PipelineComponents.TextEncoder)));
        _scheduler = new(() => SchedulerConfig.Load(ConfigPath(PipelineComponents.Scheduler)));
        _checksum = new(() => global::CogVideoX.Weights.WeightsChecksum.Compute(this));
    }

    /// <summary>Opens a pipeline folder given by path.</summary>
    public static ModelFolder Open(string path) => Open(path, hub: null);

    internal static ModelFolder Open(string path, HubSnapshot? hub)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (!Directory.Exists(full))
            throw new WeightsException(File.Exists(full)
                ? $"{path}: is a file; a model is a diffusers pipeline folder (with model_index.json, transformer/, vae/, ...)"
                : $"{path}: folder not found");
        var indexPath = System.IO.Path.Combine(full, ModelIndex.FileName);
        if (!File.Exists(indexPath))
        {
            var component = System.IO.Path.GetFileName(full);
            bool looksLikeComponent = File.Exists(System.IO.Path.Combine(full, "config.json")) || File.Exists(System.IO.Path.Combine(full, "scheduler_config.json"));
            throw new WeightsException(looksLikeComponent
                ? $"{full}: this is the '{component}' component folder, not a pipeline folder; pass its parent (the folder with model_index.json)"
                : $"{full}: not a diffusers pipeline folder: it has no model_index.json (expected model_index.json with transformer/, vae/, text_encoder/, tokenizer/ and scheduler/ beside it)");
        }
        return new ModelFolder(full, ModelIndex.Load(indexPath), hub);
    }

    /// <summary>The folder's full path (a snapshot folder when it came from the Hugging Face cache).</summary>
    public string Path { get; }

    public ModelIndex Index { get; }

    /// <summary>Set when the folder was resolved from a repo id in the Hugging Face cache.</summary>
    public HubSnapshot? Hub { get; }

    /// <summary>What a sidecar records as the model: <c>owner/name@commit</c> for the cache, else the folder path.</summary>
    public string Identity => Hub is null ? Path : $"{Hub.RepoId}@{Hub.Commit}";

    public string PipelineClass => Index.PipelineClass;

    public string ComponentPath(string component) => System.IO.Path.Combine(Path, component);

    public bool HasComponent(string component) => Directory.Exists(ComponentPath(component));

    /// <summary>A component's config file: scheduler/scheduler_config.json, else &lt;component&gt;/config.json.</summary>
    public string ConfigPath(string component) =>
        System.IO.Path.Combine(ComponentPath(component), component == PipelineComponents.Scheduler ? "scheduler_config.json" : "config.json");

    public TransformerConfig Transformer => _transformer.Value;

    public VaeConfig Vae => _vae.Value;

    public T5Config TextEncoder => _textEncoder.Value;

    public SchedulerConfig Scheduler => _scheduler.Value;

    /// <summary>A component's weight files, or null when its folder holds none (a configs-only folder).</summary>
    public WeightFiles? FindWeights(string component)
    {
        if (!HasComponent(component))
            throw new WeightsException($"{ComponentPath(component)}: component folder not found{ListedAs(component)}");
        return WeightFiles.Find(ComponentPath(component));
    }

    /// <summary>Opens a component's weights (memory-mapped; nothing is read until a tensor is loaded).</summary>
    public Checkpoint OpenWeights(string component) =>
        Checkpoint.Open(FindWeights(component)
            ?? throw new WeightsException($"{ComponentPath(component)}: no weights in this folder (expected .safetensors files){DownloadHint()}"));

    /// <summary>
    /// "sha256:…" identifying the weight files (see <see cref="global::CogVideoX.Weights.WeightsChecksum"/>), or null when the folder
    /// holds no weights. Computed once, on first use.
    /// </summary>
    public string? WeightsChecksum => _checksum.Value;

    private string ListedAs(string component) =>
        Index.Component(component) is { IsPresent: true } c ? $" (model_index.json lists {component}: {c.Library} {c.ClassName})" : "";

    private string DownloadHint() => Hub is null ? "" : $"; run `cogvideox download {Hub.RepoId}` to fetch them";
}
