using CogVideoX.Engine;

namespace CogVideoX.Lab.Specs;

/// <summary>
/// A study: defaults for every setting, and experiments that each render a prompt set with one setting varied (or a
/// grid of several). Read from YAML by <see cref="SpecParser"/>; expanded to jobs by <see cref="StudyPlan"/>.
/// </summary>
public sealed record ExperimentSpec
{
    public required string Name { get; init; }

    public string? Description { get; init; }

    /// <summary>The YAML file it came from (absolute).</summary>
    public required string SourcePath { get; init; }

    /// <summary>Where videos go: &lt;OutputDir&gt;/&lt;experiment&gt;/&lt;name&gt;.mp4 (absolute).</summary>
    public required string OutputDir { get; init; }

    /// <summary>Where prompt files live: &lt;PromptDir&gt;/&lt;name&gt;.txt (absolute).</summary>
    public required string PromptDir { get; init; }

    public required GenerationSettings Defaults { get; init; }

    public required IReadOnlyList<ExperimentDefinition> Experiments { get; init; }

    /// <summary>Prompt name → text, for every prompt an experiment names.</summary>
    public required IReadOnlyDictionary<string, string> Prompts { get; init; }
}

/// <summary>One experiment of a spec.</summary>
public sealed record ExperimentDefinition
{
    public required string Name { get; init; }

    public string? Description { get; init; }

    public required IReadOnlyList<string> Prompts { get; init; }

    /// <summary>The spec's defaults with this experiment's own <c>settings</c> applied.</summary>
    public required GenerationSettings Base { get; init; }

    /// <summary>
    /// The settings the spec states for this experiment (in <c>defaults</c> or its <c>settings</c>); the model's own
    /// defaults fill in the others that follow the model (<see cref="ModelDefaultsLookup.Keys"/>) when the plan is expanded.
    /// </summary>
    public IReadOnlySet<string> Given { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>Settings that vary, in the order written (one for <c>vary</c>, several for a <c>grid</c>).</summary>
    public required IReadOnlyList<VariedSetting> Varied { get; init; }

    /// <summary>The combination the difference metrics compare against (one value per varied key); empty when nothing varies.</summary>
    public required IReadOnlyList<SettingValue> Reference { get; init; }
}

public sealed record VariedSetting(string Key, IReadOnlyList<SettingValue> Values);

/// <summary>A spec that cannot be used: every problem, each with its file, line and column.</summary>
public sealed class SpecException(string message) : CogVideoXException(message, 2);
