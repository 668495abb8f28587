using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>A resolved scheduler: which kind, with which configuration.</summary>
public sealed record SchedulerChoice(SchedulerKind Kind, SchedulerConfig Config)
{
    /// <summary>A new scheduler of this kind and configuration.</summary>
    public IScheduler Create() => Kind switch
    {
        SchedulerKind.Ddim => new CogVideoXDdimScheduler(Config),
        SchedulerKind.Dpm => new CogVideoXDpmScheduler(Config),
        _ => throw new ArgumentOutOfRangeException(nameof(Kind), Kind, null),
    };
}

/// <summary>
/// Which scheduler a run uses. By default, what THUDM's official demo (<c>inference/cli_demo.py</c>) recommends: DDIM
/// for CogVideoX-2b, with its folder's scheduler_config.json as published; DPM for the 5b family — whose published
/// folder names DDIM, so the demo swaps in <c>CogVideoXDPMScheduler.from_config(config, timestep_spacing="trailing")</c>.
/// The user's choice overrides the default.
/// </summary>
public static class SchedulerSelection
{
    /// <summary>The names the CLI accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = ["ddim", "dpm"];

    public static string Name(SchedulerKind kind) => kind switch
    {
        SchedulerKind.Ddim => "ddim",
        SchedulerKind.Dpm => "dpm",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>Parses a user's scheduler name ("ddim" or "dpm", any case).</summary>
    public static SchedulerKind Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "ddim" => SchedulerKind.Ddim,
            "dpm" => SchedulerKind.Dpm,
            _ => throw new CogVideoXException($"Unknown scheduler \"{name}\". Choose one of: {string.Join(", ", Names)} (ddim: deterministic, the 2b default; dpm: DPM-Solver++ with per-step noise, the 5b default)."),
        };
    }

    /// <summary>The diffusers class name of a kind, as <c>_class_name</c> in scheduler_config.json spells it.</summary>
    public static string ClassName(SchedulerKind kind) => kind switch
    {
        SchedulerKind.Ddim => "CogVideoXDDIMScheduler",
        SchedulerKind.Dpm => "CogVideoXDPMScheduler",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>The kind a scheduler_config.json names, or null when it names another scheduler.</summary>
    public static SchedulerKind? KindOfClassName(string? className) => className switch
    {
        "CogVideoXDDIMScheduler" => SchedulerKind.Ddim,
        "CogVideoXDPMScheduler" => SchedulerKind.Dpm,
        _ => null,
    };

    /// <summary>
    /// The default for a model: DPM for the 5b family (recognised by its 3D rotary positional embeddings, which 5b,
    /// 5b-I2V and 1.5-5b use and 2b does not), DDIM for 2b.
    /// </summary>
    public static SchedulerKind DefaultKind(TransformerConfig transformer)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        return transformer.UseRotaryPositionalEmbeddings ? SchedulerKind.Dpm : SchedulerKind.Ddim;
    }

    /// <summary>
    /// The scheduler for a run: <paramref name="requested"/>, or the model's default. When that is the scheduler the
    /// folder names, its configuration is used as it stands; otherwise the scheduler is swapped in as the demo does —
    /// the folder's values with <c>timestep_spacing = "trailing"</c>.
    /// </summary>
    public static SchedulerChoice Resolve(SchedulerConfig folderConfig, TransformerConfig transformer, SchedulerKind? requested = null)
    {
        ArgumentNullException.ThrowIfNull(folderConfig);
        var kind = requested ?? DefaultKind(transformer);
        var config = KindOfClassName(folderConfig.ClassName) == kind
            ? folderConfig
            : folderConfig with { ClassName = ClassName(kind), TimestepSpacing = "trailing" };
        return new SchedulerChoice(kind, config);
    }
}
