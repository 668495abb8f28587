namespace CogVideoX.Weights;

/// <summary>
/// Which files of a diffusers pipeline repo the pipeline needs, and whether a folder has them all. Only these
/// are downloaded: <c>model_index.json</c>; per component its config (<c>config.json</c>, or the scheduler's
/// <c>scheduler_config.json</c>), the tokenizer's files, and the safetensors weights chosen as
/// <see cref="WeightFiles.Choose"/> chooses them (the standard file or index before variants such as .fp16;
/// an index brings exactly the shards it names). Never pickle checkpoints, READMEs, images or other formats.
/// </summary>
internal static class PipelineFiles
{
    /// <summary>Tokenizer files: sentencepiece models, vocabularies, merges and their JSON configs.</summary>
    private static readonly string[] s_tokenizerExtensions = [".json", ".model", ".txt", ".tiktoken"];

    internal enum ComponentKind
    {
        Scheduler,
        Tokenizer,
        Model,
    }

    /// <summary>What a component folder holds, from its class: schedulers and tokenizers have no weights.</summary>
    internal static ComponentKind Kind(PipelineComponent component) =>
        component.ClassName is { } c && c.EndsWith("Scheduler", StringComparison.Ordinal) ? ComponentKind.Scheduler
        : component.ClassName is { } t && t.Contains("Tokenizer", StringComparison.Ordinal) ? ComponentKind.Tokenizer
        : ComponentKind.Model;

    /// <summary>The first stage of a download: configs, tokenizer files and weight indexes, and each model component's weight choice.</summary>
    internal sealed record Plan(IReadOnlyList<string> Small, IReadOnlyList<(string Component, WeightChoice Weights)> Weights);

    /// <summary>Plans the files of <paramref name="repo"/> that the pipeline in <paramref name="index"/> needs.</summary>
    /// <param name="where">owner/name@revision, for messages.</param>
    public static Plan PlanDownload(RepoInfo repo, ModelIndex index, string where)
    {
        var small = new List<string>();
        var weights = new List<(string, WeightChoice)>();
        foreach (var component in index.Components.Where(c => c.IsPresent))
        {
            var names = repo.Files.Select(f => f.Path)
                .Where(p => p.StartsWith(component.Name + "/", StringComparison.Ordinal) && p.IndexOf('/', component.Name.Length + 1) < 0)
                .Select(p => p[(component.Name.Length + 1)..])
                .Order(StringComparer.Ordinal)
                .ToList();
            string listed = $"model_index.json lists {component.Name} ({component.Library} {component.ClassName})";
            if (names.Count == 0)
                throw NotAPipeline($"{where}: {listed}, but the repository has no {component.Name}/ folder");
            string Require(string name) => names.Contains(name)
                ? $"{component.Name}/{name}"
                : throw NotAPipeline($"{where}: {component.Name}/{name} is missing from the repository ({listed}; its folder holds {Sample(names)})");

            switch (Kind(component))
            {
                case ComponentKind.Scheduler:
                    small.Add(Require("scheduler_config.json"));
                    break;
                case ComponentKind.Tokenizer:
                    var tokenizerFiles = names.Where(n => s_tokenizerExtensions.Contains(Path.GetExtension(n), StringComparer.OrdinalIgnoreCase)).ToList();
                    if (tokenizerFiles.Count == 0)
                        throw NotAPipeline($"{where}: {component.Name}/ has no tokenizer files (.json, .model, .txt); it holds {Sample(names)}");
                    small.AddRange(tokenizerFiles.Select(n => $"{component.Name}/{n}"));
                    break;
                default:
                    small.Add(Require("config.json"));
                    WeightChoice? choice;
                    try
                    {
                        choice = WeightFiles.Choose(names, $"{where}: {component.Name}/");
                    }
                    catch (WeightsException e)
                    {
                        throw NotAPipeline(e.Message);
                    }
                    if (choice is null)
                    {
                        var pickles = WeightFiles.Pickles(names);
                        throw NotAPipeline(pickles.Count > 0
                            ? $"{where}: {component.Name}/ has only pickle checkpoints ({string.Join(", ", pickles)}), which are never downloaded because loading them can run arbitrary code; this repository has no safetensors weights for its {component.Name}"
                            : $"{where}: {component.Name}/ has no weights (.safetensors); it holds {Sample(names)}");
                    }
                    if (choice.Index is { } weightIndex) small.Add($"{component.Name}/{weightIndex}");
                    weights.Add((component.Name, choice));
                    break;
            }
        }
        return new Plan(small, weights);
    }

    /// <summary>The second stage: the single weight files, and the shards named by the indexes now in <paramref name="snapshot"/>.</summary>
    public static IReadOnlyList<string> WeightFilesToFetch(Plan plan, RepoInfo repo, string snapshot, string where)
    {
        var files = new List<string>();
        foreach (var (component, choice) in plan.Weights)
        {
            if (choice.Single is { } single)
            {
                files.Add($"{component}/{single}");
                continue;
            }
            var index = SafetensorsIndex.Read(Path.Combine(snapshot, component, choice.Index!));
            foreach (var shard in index.Shards)
            {
                var path = $"{component}/{shard}";
                if (repo.File(path) is null)
                    throw NotAPipeline($"{where}: {component}/{choice.Index} names the shard '{shard}', which the repository does not have; the repository is incomplete");
                files.Add(path);
            }
        }
        return files;
    }

    /// <summary>
    /// What a pipeline folder (a cache snapshot above all) lacks for the pipeline to run, as relative paths with a
    /// word on why; empty when nothing is missing. Reads only the index, directory entries and weight indexes.
    /// </summary>
    public static IReadOnlyList<string> Missing(string folder)
    {
        var indexPath = Path.Combine(folder, ModelIndex.FileName);
        if (!HubCacheFolder.IsPresent(indexPath)) return [ModelIndex.FileName];
        ModelIndex index;
        try
        {
            index = ModelIndex.Load(indexPath);
        }
        catch (WeightsException e)
        {
            return [$"{ModelIndex.FileName} ({e.Message})"];
        }
        var missing = new List<string>();
        foreach (var component in index.Components.Where(c => c.IsPresent))
        {
            var dir = Path.Combine(folder, component.Name);
            if (!Directory.Exists(dir))
            {
                missing.Add($"{component.Name}/ (the whole folder)");
                continue;
            }
            // Hidden names are temporaries of an interrupted write, never part of the pipeline.
            var entries = Directory.GetFiles(dir).Where(f => !Path.GetFileName(f).StartsWith('.')).ToList();
            missing.AddRange(entries.Where(f => !HubCacheFolder.IsPresent(f))
                .Select(f => $"{component.Name}/{Path.GetFileName(f)} (a link to a missing blob)"));
            switch (Kind(component))
            {
                case ComponentKind.Scheduler:
                    if (!entries.Any(f => Path.GetFileName(f) == "scheduler_config.json"))
                        missing.Add($"{component.Name}/scheduler_config.json");
                    break;
                case ComponentKind.Tokenizer:
                    // Every transformers tokenizer has a tokenizer_config.json; a sentencepiece one (T5Tokenizer) also its model.
                    foreach (var required in component.ClassName == "T5Tokenizer" ? ["tokenizer_config.json", "spiece.model"] : (string[])["tokenizer_config.json"])
                        if (!entries.Any(f => Path.GetFileName(f) == required))
                            missing.Add($"{component.Name}/{required}");
                    break;
                default:
                    if (!entries.Any(f => Path.GetFileName(f) == "config.json"))
                        missing.Add($"{component.Name}/config.json");
                    try
                    {
                        if (WeightFiles.Find(dir) is not { } weights)
                            missing.Add($"{component.Name}/ (weights: no .safetensors file)");
                        else
                            missing.AddRange(weights.Files.Where(f => !HubCacheFolder.IsPresent(f) && !entries.Contains(f))
                                .Select(f => $"{component.Name}/{Path.GetFileName(f)}"));
                    }
                    catch (WeightsException e)
                    {
                        missing.Add($"{component.Name}/ (weights: {e.Message})");
                    }
                    break;
            }
        }
        return missing.Distinct().ToList();
    }

    private static HubException NotAPipeline(string message) => new(HubFailure.NotAPipeline, message);

    private static string Sample(IReadOnlyList<string> names) =>
        names.Count <= 6 ? string.Join(", ", names) : $"{string.Join(", ", names.Take(6))} and {names.Count - 6} more";
}
