using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>
/// One scheduler the pipeline can run: its kind, the name users type, the diffusers class name scheduler_config.json
/// spells, what it is (for help and errors), whether dynamic CFG is on by default with it, and how to build one.
/// </summary>
public sealed record SchedulerInfo(
    SchedulerKind Kind,
    string Name,
    string ClassName,
    string Description,
    bool DynamicCfgByDefault,
    Func<SchedulerConfig, IScheduler> Create);

/// <summary>
/// Every scheduler, in one table: adding one is a class, an enum member and a row here. Names are matched without
/// regard to case or surrounding spaces.
/// </summary>
public static class SchedulerRegistry
{
    /// <summary>The schedulers, the CLI's order.</summary>
    public static IReadOnlyList<SchedulerInfo> All { get; } =
    [
        // THUDM's demo turns dynamic CFG off for DDIM and on for DPM.
        new(SchedulerKind.Ddim, "ddim", "CogVideoXDDIMScheduler", "deterministic, the 2b default", false, c => new CogVideoXDdimScheduler(c)),
        new(SchedulerKind.Dpm, "dpm", "CogVideoXDPMScheduler", "DPM-Solver++ with per-step noise, the 5b default", true, c => new CogVideoXDpmScheduler(c)),
    ];

    /// <summary>The names users may type.</summary>
    public static IReadOnlyList<string> Names { get; } = All.Select(s => s.Name).ToArray();

    /// <summary>The entry of a kind.</summary>
    public static SchedulerInfo Get(SchedulerKind kind) =>
        All.FirstOrDefault(s => s.Kind == kind) ?? throw new ArgumentOutOfRangeException(nameof(kind), kind, "no scheduler of this kind is registered");

    /// <summary>The name of a kind ("ddim", "dpm").</summary>
    public static string Name(SchedulerKind kind) => Get(kind).Name;

    /// <summary>Parses a user's scheduler name (any case); an unknown name gets an error listing the known ones.</summary>
    public static SchedulerKind Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var key = name.Trim();
        return All.FirstOrDefault(s => string.Equals(s.Name, key, StringComparison.OrdinalIgnoreCase))?.Kind
            ?? throw new CogVideoXException($"Unknown scheduler \"{name}\". Choose one of: {string.Join(", ", Names)} " +
                $"({string.Join("; ", All.Select(s => $"{s.Name}: {s.Description}"))}).");
    }

    /// <summary>The kind a scheduler_config.json's <c>_class_name</c> names, or null when it names another scheduler.</summary>
    public static SchedulerKind? KindOfClassName(string? className) =>
        All.FirstOrDefault(s => s.ClassName == className)?.Kind;

    /// <summary>A new scheduler of a kind and configuration.</summary>
    public static IScheduler Create(SchedulerKind kind, SchedulerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Get(kind).Create(config);
    }
}
