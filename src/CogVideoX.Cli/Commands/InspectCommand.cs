using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Models.Transformer;
using CogVideoX.Weights;

namespace CogVideoX.Cli.Commands;

/// <summary>
/// <c>inspect &lt;model&gt;</c>: what a model folder holds — pipeline, components, parameter counts, dtypes and file
/// sizes read from the safetensors headers (no weights are loaded) and the main config values.
/// </summary>
internal static class InspectCommand
{
    private const string FolderMissing = "folder missing";

    public static Command Create()
    {
        var model = new Argument<string>("model")
        {
            Description = "A diffusers pipeline folder, a Hugging Face repo id in the local cache (THUDM/CogVideoX-2b, owner/name@revision) or an alias (2b, 5b).",
        };
        var json = new Option<bool>("--json") { Description = "Print machine-readable JSON instead of text." };
        var cmd = new Command("inspect", "Show a model's components, parameter counts, dtypes, file sizes and main config values, without loading weights.");
        cmd.Arguments.Add(model);
        cmd.Options.Add(json);
        cmd.SetAction(parse =>
        {
            var report = Build(parse.GetValue(model)!);
            var o = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json)) o.WriteLine(JsonSerializer.Serialize(report, InspectJsonContext.Default.InspectReport));
            else WriteText(report, o);
            return 0;
        });
        return cmd;
    }

    internal static InspectReport Build(string model)
    {
        var folder = ModelLocator.Resolve(model);
        var order = PipelineComponents.All.ToList();
        var components = folder.Index.Components
            .Where(c => c.IsPresent)
            .OrderBy(c => order.IndexOf(c.Name) is var i && i < 0 ? int.MaxValue : i)
            .Select(c => Component(folder, c))
            .ToList();
        return new InspectReport(model, folder.Identity, folder.Path, folder.PipelineClass, folder.Index.DiffusersVersion,
            folder.Hub, folder.WeightsChecksum, components)
        { Task = Task(folder), Kind = ModelDefaults.Describe(folder) };
    }

    /// <summary>What the folder does (text-, image- or video-to-video); null when its configs cannot tell.</summary>
    private static string? Task(ModelFolder folder)
    {
        try
        {
            return PipelineTasks.Describe(folder);
        }
        catch (CogVideoXException)
        {
            return null; // a missing or broken component config: the component rows say so
        }
    }

    private static ComponentReport Component(ModelFolder folder, PipelineComponent c)
    {
        var path = folder.ComponentPath(c.Name);
        var report = new ComponentReport(c.Name, c.Library, c.ClassName, path);
        if (!folder.HasComponent(c.Name)) return report with { Note = FolderMissing };
        switch (c.Name)
        {
            case PipelineComponents.Tokenizer:
                return report with { Files = Directory.GetFiles(path).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal).ToList() };
            case PipelineComponents.Scheduler:
                return report with { Scheduler = folder.Scheduler };
        }
        var weights = folder.FindWeights(c.Name);
        report = weights is null ? report with { Note = "no weights in this folder" } : report with { Weights = weights.Summarize() };
        return c.Name switch
        {
            PipelineComponents.Transformer => report with { Transformer = folder.Transformer, DeviceWeights = DeviceWeights(folder.Transformer) },
            PipelineComponents.Vae => report with { Vae = folder.Vae },
            PipelineComponents.TextEncoder => report with { TextEncoder = folder.TextEncoder },
            _ => report,
        };
    }

    /// <summary>
    /// The transformer's weights on a GPU (F16 or BF16, every block resident), exact and with --linear fp8 (no exact
    /// steps: the blocks' projections as FP8 codes and scales); null when the config cannot be sized.
    /// </summary>
    private static TransformerDeviceWeights? DeviceWeights(TransformerConfig config)
    {
        try
        {
            return new TransformerDeviceWeights(CogVideoXTransformer.EstimateWeightBytes(config, DType.BF16),
                CogVideoXTransformer.EstimateWeightBytes(config, DType.BF16, ProjectionWeights.Fp8));
        }
        catch (CogVideoXException)
        {
            return null; // an invalid config: its rows say what it holds, loading it says what is wrong
        }
    }

    private static void WriteText(InspectReport r, TextWriter o)
    {
        o.WriteLine($"{r.PipelineClass}{(r.DiffusersVersion is null ? "" : $" (diffusers {r.DiffusersVersion})")}");
        var head = new List<(string, string)> { ("folder", r.Path) };
        if (r.Kind is { } kind) head.Add(("model", kind));
        if (r.Hub is { } hub) head.Add(("source", $"{hub.RepoId}@{hub.Commit} (revision {hub.Revision})"));
        head.Add(("weights checksum", r.WeightsChecksum ?? "none (no weights in this folder)"));
        if (r.Task is not null) head.Add(("task", r.Task));
        WriteRows(o, head);
        foreach (var c in r.Components)
        {
            o.WriteLine();
            o.WriteLine($"{c.Name}: {c.ClassName} ({c.Library})");
            WriteRows(o, Rows(c));
        }
    }

    private static List<(string Label, string Value)> Rows(ComponentReport c)
    {
        var rows = new List<(string, string)>();
        if (c.Note is not null) rows.Add(c.Note == FolderMissing ? ("folder", "missing") : ("weights", c.Note));
        if (c.Weights is { } w) rows.AddRange(WeightRows(w));
        if (c.Transformer is { } t)
        {
            rows.Add(("layers", N(t.NumLayers)));
            rows.Add(("attention heads", $"{N(t.NumAttentionHeads)} × head dim {N(t.AttentionHeadDim)} (inner dim {N(t.InnerDim)})"));
            rows.Add(("channels", $"{N(t.InChannels)} in, {N(t.OutputChannels)} out"));
            rows.Add(("patch size", t.PatchSizeT is { } pt ? $"{N(t.PatchSize)} × {N(t.PatchSize)} × {N(pt)} frames" : $"{N(t.PatchSize)} × {N(t.PatchSize)}"));
            rows.Add(("positional embeddings", t.PositionalEmbedding));
            rows.Add(("text", $"up to {N(t.MaxTextSeqLength)} tokens, embed dim {N(t.TextEmbedDim)}"));
            rows.Add(("time embed dim", N(t.TimeEmbedDim)));
            rows.Add(("sample size", $"{N(t.SampleFrames)} frames, {N(t.SampleHeight)} × {N(t.SampleWidth)} latents"));
            if (c.DeviceWeights is { } dw)
                rows.Add(("GPU weights", $"{Size(dw.HalfBytes)} in F16/BF16, {Size(dw.Fp8LinearBytes)} with --linear fp8 (projections as FP8 codes and scales)"));
        }
        if (c.Vae is { } v)
        {
            rows.Add(("latent channels", N(v.LatentChannels)));
            rows.Add(("block channels", $"{string.Join(", ", v.BlockOutChannels.Select(N))} ({N(v.LayersPerBlock)} layers per block, {N(v.NormNumGroups)} norm groups)"));
            rows.Add(("scaling factor", D(v.ScalingFactor) + (v.ShiftFactor is { } s ? $", shift {D(s)}" : "")));
            rows.Add(("compression", $"{N(v.SpatialCompressionRatio)}× spatial, {N(v.TemporalCompressionRatio)}× temporal"));
            rows.Add(("sample size", $"{N(v.SampleHeight)} × {N(v.SampleWidth)}"));
        }
        if (c.TextEncoder is { } e)
        {
            rows.Add(("d_model", N(e.DModel)));
            rows.Add(("layers", N(e.NumLayers)));
            rows.Add(("heads", $"{N(e.NumHeads)} × d_kv {N(e.DKv)}"));
            rows.Add(("d_ff", $"{N(e.DFf)} ({e.FeedForwardProj}, activation {e.Activation})"));
            rows.Add(("vocab", N(e.VocabSize)));
        }
        if (c.Scheduler is { } s2)
        {
            if (s2.ClassName != c.ClassName) rows.Add(("config class", $"{s2.ClassName} (model_index.json says {c.ClassName})"));
            rows.Add(("prediction", s2.PredictionType));
            rows.Add(("timestep spacing", s2.TimestepSpacing));
            rows.Add(("snr shift scale", D(s2.SnrShiftScale)));
            rows.Add(("betas", $"{s2.BetaSchedule} {D(s2.BetaStart)} → {D(s2.BetaEnd)} over {N(s2.NumTrainTimesteps)} steps{(s2.RescaleBetasZeroSnr ? ", rescaled to zero terminal SNR" : "")}"));
        }
        if (c.Files is { } files) rows.Add(("files", files.Count == 0 ? "none" : string.Join(", ", files)));
        return rows;
    }

    private static IEnumerable<(string, string)> WeightRows(WeightsSummary w)
    {
        var dtypes = w.ParametersByDType.Count == 1 ? w.ParametersByDType.Keys.Single()
            : string.Join(", ", w.ParametersByDType.Select(p => $"{p.Key} {N(p.Value)}"));
        yield return ("parameters", $"{N(w.Parameters)} in {N(w.Tensors)} tensors");
        yield return ("dtypes", dtypes);
        if (w.Index is null)
        {
            yield return ("file", $"{w.Files[0].Name} ({Size(w.Bytes)})");
            yield break;
        }
        yield return ("files", $"{N(w.Files.Count)} shards, {Size(w.Bytes)} (index {w.Index})");
        foreach (var f in w.Files)
            yield return ("", $"{f.Name} ({Size(f.Bytes)}, {N(f.Tensors)} tensors)");
    }

    private static void WriteRows(TextWriter o, List<(string Label, string Value)> rows)
    {
        foreach (var (label, value) in rows)
            o.WriteLine($"  {label,-22} {value}".TrimEnd());
    }

    private static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);

    private static string N(int v) => v.ToString("N0", CultureInfo.InvariantCulture);

    private static string D(double v) => v.ToString(CultureInfo.InvariantCulture);

    private static string Size(long bytes)
    {
        string[] units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
        double v = bytes;
        int u = 0;
        while (v >= 1024 && u < units.Length - 1) { v /= 1024; u++; }
        return u == 0 ? $"{bytes} bytes" : $"{v.ToString("0.0", CultureInfo.InvariantCulture)} {units[u]}";
    }
}

/// <summary>What <c>inspect --json</c> prints.</summary>
internal sealed record InspectReport(
    string Model,
    string Identity,
    string Path,
    string PipelineClass,
    string? DiffusersVersion,
    HubSnapshot? Hub,
    string? WeightsChecksum,
    IReadOnlyList<ComponentReport> Components)
{
    /// <summary>What the folder does: text-to-video or image-to-video, and how that was decided.</summary>
    public string? Task { get; init; }

    /// <summary>What the folder is: model generation and task, the published model it is like, its defaults.</summary>
    public string? Kind { get; init; }
}

/// <summary>One component: its weights (from the headers) or why there are none, and its effective config.</summary>
internal sealed record ComponentReport(string Name, string? Library, string? ClassName, string Path)
{
    public string? Note { get; init; }

    public WeightsSummary? Weights { get; init; }

    public TransformerConfig? Transformer { get; init; }

    public VaeConfig? Vae { get; init; }

    public T5Config? TextEncoder { get; init; }

    public SchedulerConfig? Scheduler { get; init; }

    public IReadOnlyList<string>? Files { get; init; }

    /// <summary>The transformer's device weights in F16/BF16, exact and with FP8-only projections (--linear fp8, no exact steps).</summary>
    public TransformerDeviceWeights? DeviceWeights { get; init; }
}

/// <summary>Bytes of the transformer's weights on the device: all exact, and with the blocks' projections as FP8 codes and scales.</summary>
internal sealed record TransformerDeviceWeights(long HalfBytes, long Fp8LinearBytes);

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(InspectReport))]
internal sealed partial class InspectJsonContext : JsonSerializerContext;
