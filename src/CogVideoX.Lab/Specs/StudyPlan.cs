using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using CogVideoX.Diffusion;
using CogVideoX.Lab.Runs;
using CogVideoX.Media;

namespace CogVideoX.Lab.Specs;

/// <summary>
/// A spec expanded into its videos, in a stable order (experiments as written, then prompts, then the varied values
/// with the last grid key fastest): the order shards partition and the report follows. Saved next to the outputs as
/// <c>&lt;spec&gt;.plan.json</c> so <c>report DIR</c> works without the spec or the prompt files.
/// </summary>
public sealed partial record StudyPlan
{
    /// <summary>Longest name a varied value keeps as it is; a job's whole name is held under <see cref="MaxJobNameLength"/>.</summary>
    private const int MaxValueNameLength = 48;

    private const int MaxJobNameLength = 160;

    public int SchemaVersion { get; init; } = 1;

    public required string SpecName { get; init; }

    public string? Description { get; init; }

    public string SourcePath { get; init; } = "";

    public required IReadOnlyList<ExperimentPlan> Experiments { get; init; }

    [JsonIgnore]
    public IEnumerable<PlannedJob> Jobs => Experiments.SelectMany(e => e.Jobs);

    public static string PlanFileName(string specName) => specName + ".plan.json";

    public static string ManifestFileName(string specName) => specName + ".manifest.jsonl";

    public static StudyPlan Expand(ExperimentSpec spec)
    {
        int index = 0;
        var experiments = new List<ExperimentPlan>();
        // Each model named once: a folder's config is read, a name judged (nothing is downloaded).
        var modelDefaults = new Dictionary<string, ModelDefaults?>(StringComparer.Ordinal);
        foreach (var exp in spec.Experiments)
        {
            var jobs = new List<PlannedJob>();
            var combos = Combinations(exp.Varied).ToList();
            var referenceKey = string.Join("\n", exp.Reference.Select(r => r.Text));
            foreach (var prompt in exp.Prompts)
            {
                string? referenceName = exp.Varied.Count == 0 ? null : JobName(exp, prompt, exp.Reference);
                foreach (var combo in combos)
                {
                    var settings = exp.Base with { PromptName = prompt, Prompt = spec.Prompts[prompt] };
                    foreach (var value in combo) settings = SettingKey.Find(value.Key)!.Apply(settings, value);
                    // Frames, size and fps the spec leaves out follow the model (81 × 768 × 1360 at 16 fps for 1.5), as in `generate`.
                    if (!modelDefaults.TryGetValue(settings.Model, out var defaults))
                        modelDefaults[settings.Model] = defaults = ModelDefaultsLookup.For(settings.Model);
                    settings = ModelDefaultsLookup.Apply(settings, defaults, key => exp.Given.Contains(key) || combo.Any(c => c.Key == key));
                    var name = JobName(exp, prompt, combo);
                    bool isReference = exp.Varied.Count > 0 && string.Join("\n", combo.Select(c => c.Text)) == referenceKey;
                    jobs.Add(new PlannedJob
                    {
                        Index = index++,
                        Experiment = exp.Name,
                        Name = name,
                        Output = $"{exp.Name}/{name}.mp4",
                        Settings = settings,
                        Values = combo.ToDictionary(c => c.Key, c => c.Text),
                        IsReference = isReference,
                        ReferenceName = isReference ? null : referenceName,
                    });
                }
            }
            experiments.Add(new ExperimentPlan
            {
                Name = exp.Name,
                Description = exp.Description,
                Prompts = exp.Prompts,
                Varied = exp.Varied.Select(v => new VariedPlan(v.Key, SettingKey.Find(v.Key)!.Continuous, v.Values.Select(x => x.Text).ToList())).ToList(),
                Reference = exp.Reference.ToDictionary(r => r.Key, r => r.Text),
                Jobs = jobs,
            });
        }
        return new StudyPlan { SpecName = spec.Name, Description = spec.Description, SourcePath = spec.SourcePath, Experiments = MarkDuplicates(experiments) };
    }

    /// <summary>
    /// A job with the same settings as an earlier one (the baseline's panda_guitar is every ablation's reference in
    /// the reference study) is the same video: it names the first as <see cref="PlannedJob.SameAs"/>, and the runner
    /// links (or copies) that file instead of rendering it again.
    /// </summary>
    private static List<ExperimentPlan> MarkDuplicates(List<ExperimentPlan> experiments)
    {
        // Keyed by the settings as DefinesSameVideoAs compares them (device kind only, cache settings normalised): linear in the number of jobs.
        var first = new Dictionary<GenerationSettings, PlannedJob>();
        return experiments.Select(e => e with
        {
            Jobs = e.Jobs.Select(job =>
            {
                var key = job.Settings.SameVideoKey();
                if (first.TryGetValue(key, out var original)) return job with { SameAs = original.Output };
                first[key] = job;
                return job with { SameAs = null };
            }).ToList(),
        }).ToList();
    }

    /// <summary>The plan with <c>device: auto</c> decided (once per run, so every job and its sidecar name the same device).</summary>
    public StudyPlan WithDevice(string device) => this with
    {
        Experiments = Experiments.Select(e => e with
        {
            Jobs = e.Jobs.Select(j => DeviceSelection.IsAuto(j.Settings.Device) ? j with { Settings = j.Settings with { Device = device } } : j).ToList(),
        }).ToList(),
    };

    /// <summary>The job whose output is <paramref name="output"/> (relative, '/'-separated), if any.</summary>
    public PlannedJob? JobFor(string output) => Jobs.FirstOrDefault(j => j.Output == output);

    /// <summary>Output name: the prompt when nothing varies, else <c>key_value</c> pairs (prefixed by the prompt when there are several).</summary>
    private static string JobName(ExperimentDefinition exp, string prompt, IReadOnlyList<SettingValue> combo)
    {
        if (combo.Count == 0) return prompt;
        var varied = string.Join("_", combo.Select(ValueName));
        return Bounded(exp.Prompts.Count > 1 ? $"{prompt}_{varied}" : varied, MaxJobNameLength);
    }

    /// <summary>Every output name an experiment will use, in plan order (for the parser's collision check).</summary>
    internal static IEnumerable<string> JobNames(ExperimentDefinition exp) =>
        exp.Prompts.SelectMany(p => Combinations(exp.Varied).Select(c => JobName(exp, p, c)));

    /// <summary>
    /// <c>key_value</c> as it appears in file names. Ordinary values (numbers, words) appear as written; any other
    /// text (separators, '..', spaces, or too long) becomes a slug of its safe characters and a hash of the exact
    /// text, so a value can never name a folder or leave output_dir, and different values keep different names.
    /// </summary>
    public static string ValueName(SettingValue value) => $"{value.Key}_{Bounded(value.Text, MaxValueNameLength)}";

    private static string Bounded(string text, int maxLength)
    {
        if (text.Length <= maxLength && FileNameChars().IsMatch(text) && !text.Contains("..", StringComparison.Ordinal)) return text;
        var slug = Unsafe().Replace(text, "-").Trim('-', '.');
        while (slug.Contains("..", StringComparison.Ordinal)) slug = slug.Replace("..", ".", StringComparison.Ordinal);
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..10];
        slug = slug[..Math.Min(slug.Length, maxLength - hash.Length - 1)].TrimEnd('-', '.');
        return slug.Length == 0 ? hash : $"{slug}-{hash}";
    }

    [GeneratedRegex("^[A-Za-z0-9_.+-]*$")]
    private static partial Regex FileNameChars();

    [GeneratedRegex("[^A-Za-z0-9_.+-]+")]
    private static partial Regex Unsafe();

    private static IEnumerable<IReadOnlyList<SettingValue>> Combinations(IReadOnlyList<VariedSetting> varied)
    {
        IEnumerable<IReadOnlyList<SettingValue>> acc = [[]];
        foreach (var v in varied)
            acc = acc.SelectMany(prefix => v.Values.Select(x => (IReadOnlyList<SettingValue>)[.. prefix, x]));
        return acc;
    }

    /// <summary>Writes the plan next to the outputs (only when it changed, so concurrent shards do not churn it).</summary>
    public void Save(string outputDir)
    {
        var path = Path.Combine(outputDir, PlanFileName(SpecName));
        var json = JsonSerializer.Serialize(this, LabRunJsonContext.Readable.StudyPlan);
        if (File.Exists(path) && File.ReadAllText(path) == json) return;
        AtomicFile.WriteAllText(path, json);
    }

    public static StudyPlan Load(string path)
    {
        StudyPlan plan;
        try
        {
            plan = JsonSerializer.Deserialize(File.ReadAllBytes(path), LabRunJsonContext.Default.StudyPlan)
                ?? throw new Engine.CogVideoXException($"{path}: empty plan file");
        }
        catch (JsonException e)
        {
            throw new Engine.CogVideoXException($"{path}: not a readable plan file ({e.Message}); run `experiment run SPEC --dry-run` to write it again");
        }
        // The report is written under the spec's name and reads the videos at the jobs' paths: a plan file is
        // data from disk, so neither may lead out of the folder it was found in.
        string? problem = !IsFileName(plan.SpecName) ? $"its spec name '{plan.SpecName}' is not a plain file name"
            : plan.Experiments.FirstOrDefault(e => !IsFileName(e.Name)) is { } badExp ? $"its experiment name '{badExp.Name}' is not a plain folder name"
            : plan.Experiments.SelectMany(e => e.Jobs).FirstOrDefault(j => j.Experiment is null || j.Name is null || j.Output != $"{j.Experiment}/{j.Name}.mp4" || !IsFileName(j.Name) || !IsFileName(j.Experiment))
                is { } badJob ? $"its video path '{badJob.Output}' is not <experiment>/<name>.mp4 inside the folder"
            : null;
        if (problem is not null)
            throw new Engine.CogVideoXException($"{path}: not a plan file `experiment run` writes: {problem}; run `experiment run SPEC --dry-run` to write it again", 2);
        return plan;
    }

    /// <summary>One path component that stays where it is put: no separators, no '..', not empty, not too long.</summary>
    private static bool IsFileName(string? name) =>
        name is { Length: > 0 and <= 255 } && name is not "." and not ".." && name.IndexOfAny(['/', '\\', '\0']) < 0 && !name.Contains("..", StringComparison.Ordinal);
}

public sealed record ExperimentPlan
{
    public required string Name { get; init; }

    public string? Description { get; init; }

    public required IReadOnlyList<string> Prompts { get; init; }

    public required IReadOnlyList<VariedPlan> Varied { get; init; }

    /// <summary>Varied key → the reference value's text.</summary>
    public required IReadOnlyDictionary<string, string> Reference { get; init; }

    public required IReadOnlyList<PlannedJob> Jobs { get; init; }
}

public sealed record VariedPlan(string Key, bool Continuous, IReadOnlyList<string> Values);

/// <summary>One video of a plan.</summary>
public sealed record PlannedJob
{
    /// <summary>Position in the plan's stable order (what <c>--shard i/n</c> partitions: index mod n == i).</summary>
    public required int Index { get; init; }

    public required string Experiment { get; init; }

    public required string Name { get; init; }

    /// <summary>Relative to the output folder, '/'-separated.</summary>
    public required string Output { get; init; }

    public required GenerationSettings Settings { get; init; }

    /// <summary>Varied key → this video's value (empty when nothing varies).</summary>
    public required IReadOnlyDictionary<string, string> Values { get; init; }

    public bool IsReference { get; init; }

    /// <summary>The name of the job in the same experiment this one is compared with; null for references and unvaried experiments.</summary>
    public string? ReferenceName { get; init; }

    /// <summary>
    /// The output of an earlier job with the same settings: this one is not rendered again but gets that file (a
    /// hard link, or a copy where links are not possible). Null when this job renders its own video.
    /// </summary>
    public string? SameAs { get; init; }

    [JsonIgnore]
    public string Id => $"{Experiment}/{Name}";

    public VideoJob ToVideoJob(string outputDir) =>
        new(Experiment, Name, Path.Combine(outputDir, Output.Replace('/', Path.DirectorySeparatorChar)), Settings);
}
