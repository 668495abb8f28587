using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>A resolved scheduler: which kind, with which configuration.</summary>
public sealed record SchedulerChoice(SchedulerKind Kind, SchedulerConfig Config)
{
    /// <summary>The registry's entry of this kind.</summary>
    public SchedulerInfo Info => SchedulerRegistry.Get(Kind);

    /// <summary>A new scheduler of this kind and configuration (caller disposes).</summary>
    public IScheduler Create() => SchedulerRegistry.Create(Kind, Config);
}

/// <summary>
/// Which scheduler a run uses. By default, what THUDM's official demo (<c>inference/cli_demo.py</c>) recommends: DDIM
/// for CogVideoX-2b, with its folder's scheduler_config.json as published; DPM for the 5b family — whose published
/// folder names DDIM, so the demo swaps in <c>CogVideoXDPMScheduler.from_config(config, timestep_spacing="trailing")</c>.
/// The user's choice overrides the default.
/// </summary>
public static class SchedulerSelection
{
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
        var config = SchedulerRegistry.KindOfClassName(folderConfig.ClassName) == kind
            ? folderConfig
            : folderConfig with { ClassName = SchedulerRegistry.Get(kind).ClassName, TimestepSpacing = "trailing" };
        return new SchedulerChoice(kind, config);
    }
}
