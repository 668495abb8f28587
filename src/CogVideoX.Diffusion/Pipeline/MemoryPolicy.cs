using CogVideoX.Engine;

namespace CogVideoX.Diffusion;

/// <summary>The three weight-holding components of the pipeline, in the order a run uses them.</summary>
public enum ModelComponent
{
    TextEncoder,
    Transformer,
    Vae,
}

/// <summary>
/// Decides when the pipeline's components hold their weights. Components are always loaded lazily, when their
/// stage first needs them; the policy says whether one stays loaded after its stage (so the next video of a sweep
/// skips the load) or is released at once (so the next stage has the memory).
/// </summary>
/// <remarks>
/// The GPU memory modes <c>full</c> and <c>balanced</c> are these two answers; <c>low</c> (streaming the
/// transformer's blocks from host memory) will need a hook inside the transformer's forward and is not one yet.
/// </remarks>
public interface IMemoryPolicy
{
    /// <summary>The mode's name as the CLI and sidecars spell it.</summary>
    string Name { get; }

    /// <summary>Whether <paramref name="component"/> stays loaded once its stage of a run is done.</summary>
    bool KeepAfterUse(ModelComponent component);
}

/// <summary>The memory modes that exist, by name.</summary>
public static class MemoryPolicies
{
    /// <summary>Every component stays loaded: a sweep loads each weight file once. Peak = all weights together.</summary>
    public static IMemoryPolicy Full { get; } = new FixedPolicy("full", keep: true);

    /// <summary>Each component is released after its stage: peak = the largest component plus its activations.</summary>
    public static IMemoryPolicy Balanced { get; } = new FixedPolicy("balanced", keep: false);

    /// <summary>The names <see cref="Parse"/> accepts (<c>auto</c> is resolved by the caller, from the memory it has).</summary>
    public static IReadOnlyList<string> Names { get; } = ["full", "balanced"];

    /// <summary>A policy by name ("full" or "balanced").</summary>
    public static IMemoryPolicy Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "full" => Full,
            "balanced" => Balanced,
            "low" => throw new CogVideoXException(
                "memory mode \"low\" (streaming the transformer's blocks from host memory) is not available yet; use \"balanced\" " +
                "(each model is released after its stage) or \"full\" (all stay loaded)", 2),
            _ => throw new CogVideoXException(
                $"unknown memory mode \"{name}\"; use auto, full (all models stay loaded: fastest for many videos) or balanced " +
                "(each model is released after its stage: the least memory)", 2),
        };
    }

    private sealed class FixedPolicy(string name, bool keep) : IMemoryPolicy
    {
        public string Name => name;

        public bool KeepAfterUse(ModelComponent component) => keep;
    }
}
