using CogVideoX.Engine;

namespace CogVideoX.Diffusion;

/// <summary>The three weight-holding components of the pipeline, in the order a run uses them.</summary>
public enum ModelComponent
{
    TextEncoder,
    Transformer,
    Vae,
}

/// <summary>Where a component's weights are while its stage runs.</summary>
public enum WeightResidency
{
    /// <summary>Loaded onto the backend from the weight files, all at once.</summary>
    Loaded,

    /// <summary>
    /// The repeated blocks packed in (pinned) host memory and copied to the device during the stage's first pass,
    /// one device slot per block, each copy overlapping the previous block's compute; the rest loaded from the files.
    /// </summary>
    UploadedFromHost,

    /// <summary>
    /// The repeated blocks packed in (pinned) host memory and streamed through two device slots block by block on a
    /// second stream, every pass; the rest (embeddings, norms, projections) loaded from the files.
    /// </summary>
    Streamed,
}

/// <summary>
/// Decides when and where the pipeline's components hold their weights. Components are loaded lazily, when their
/// stage first needs them; the policy says whether one stays loaded after its stage (so the next video of a sweep
/// skips the load) or is released at once (so the next stage has the memory), and whether its blocks stream from
/// host memory. Residencies other than <see cref="WeightResidency.Loaded"/> need a backend that streams weights
/// (<see cref="IWeightStreaming"/>); elsewhere they fall back to loading (and the pipeline says so).
/// </summary>
public interface IMemoryPolicy
{
    /// <summary>The mode's name as the CLI and sidecars spell it.</summary>
    string Name { get; }

    /// <summary>Whether <paramref name="component"/> stays loaded once its stage of a run is done.</summary>
    bool KeepAfterUse(ModelComponent component);

    /// <summary>Where the component's weights are while its stage runs.</summary>
    WeightResidency Residency(ModelComponent component) => WeightResidency.Loaded;

    /// <summary>Whether the VAE decodes in spatial tiles (the model's default tiles) when no tiling was asked for.</summary>
    bool TilesVae => false;
}

/// <summary>The memory modes that exist, by name.</summary>
public static class MemoryPolicies
{
    /// <summary>Every component stays on the device: a sweep loads each weight file once. Peak = all weights together.</summary>
    public static IMemoryPolicy Full { get; } = new FixedPolicy("full", keep: true, WeightResidency.Loaded, WeightResidency.Loaded, tiles: false);

    /// <summary>
    /// Each component is on the device only while its stage runs: peak = the largest stage. The text encoder streams
    /// its blocks (it runs once per video, so streaming costs what uploading it whole would, without its 10.7 GiB of
    /// T5-XXL weights at once); the transformer's blocks are uploaded from host memory during its first step; the VAE
    /// is loaded after the transformer has left.
    /// </summary>
    public static IMemoryPolicy Balanced { get; } = new FixedPolicy("balanced", keep: false, WeightResidency.Streamed, WeightResidency.UploadedFromHost, tiles: false);

    /// <summary>
    /// The least device memory: text-encoder and transformer blocks stream from pinned host memory through two device
    /// slots, every step; the VAE decodes in spatial tiles. Peak ≈ two blocks, the activations and the tiled decode.
    /// </summary>
    public static IMemoryPolicy Low { get; } = new FixedPolicy("low", keep: false, WeightResidency.Streamed, WeightResidency.Streamed, tiles: true);

    /// <summary>Chosen per run by the pipeline from the free device memory and the estimated need of each mode.</summary>
    public static IMemoryPolicy Auto { get; } = new AutoPolicy();

    /// <summary>The names <see cref="Parse"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = ["auto", "full", "balanced", "low"];

    /// <summary>The modes auto chooses from, most memory (fastest) first.</summary>
    public static IReadOnlyList<IMemoryPolicy> Concrete { get; } = [Full, Balanced, Low];

    /// <summary>A policy by name: auto, full, balanced or low.</summary>
    public static IMemoryPolicy Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "auto" => Auto,
            "full" => Full,
            "balanced" => Balanced,
            "low" => Low,
            _ => throw new CogVideoXException(
                $"unknown memory mode \"{name}\"; use auto (chosen from the free GPU memory), full (all models stay on the GPU: " +
                "fastest), balanced (each model on the GPU only while it runs) or low (weights stream from host memory: the least GPU memory)", 2),
        };
    }

    public static bool IsAuto(IMemoryPolicy policy) => policy is AutoPolicy;

    private sealed class FixedPolicy(string name, bool keep, WeightResidency text, WeightResidency transformer, bool tiles) : IMemoryPolicy
    {
        public string Name => name;

        public bool KeepAfterUse(ModelComponent component) => keep;

        public WeightResidency Residency(ModelComponent component) => component switch
        {
            ModelComponent.TextEncoder => text,
            ModelComponent.Transformer => transformer,
            _ => WeightResidency.Loaded,
        };

        public bool TilesVae => tiles;
    }

    private sealed class AutoPolicy : IMemoryPolicy
    {
        public string Name => "auto";

        // The pipeline resolves auto before a run; these answers apply only if something asks before that.
        public bool KeepAfterUse(ModelComponent component) => false;
    }
}
