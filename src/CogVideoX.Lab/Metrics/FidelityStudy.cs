using System.Globalization;
using System.Text;
using System.Text.Json;
using CogVideoX.Diffusion;
using CogVideoX.Media;
using CogVideoX.Models.Transformer;

namespace CogVideoX.Lab.Metrics;

/// <summary>
/// A fast mode as the fidelity table names it: a step cache with its threshold, the steps kept exact, the
/// transformer's attention (exact or 8-bit) and the blocks' linears (exact or FP8).
/// </summary>
public sealed record FidelityMode(StepCacheMode Cache, double? Threshold, int ExactSteps,
    Engine.AttentionMode Attention = Engine.AttentionMode.Exact, LinearMode Linears = LinearMode.Exact)
{
    public string Label
    {
        get
        {
            bool sage8 = Attention == Engine.AttentionMode.Sage8, fp8 = Linears == LinearMode.Fp8;
            var names = new List<string>();
            if (Cache != StepCacheMode.None)
                names.Add($"{StepCaching.Name(Cache)} {(Threshold ?? StepCaching.DefaultThreshold(Cache)).ToString("R", CultureInfo.InvariantCulture)}");
            if (sage8) names.Add("sage8");
            if (fp8) names.Add("fp8");
            string mode = names.Count == 0 ? "exact" : string.Join(" + ", names);
            // Under 8-bit attention or FP8 linears the exact steps are as given (0: none); a cache alone always has 1.
            return mode + (ExactSteps > (sage8 || fp8 ? 0 : 1) ? $", exact {ExactSteps}" : "");
        }
    }

    /// <summary>
    /// "teacache:0.1", "fbcache:0.05:2" (mode, threshold, exact steps), "teacache" (the default threshold), "sage8"
    /// (8-bit attention), "sage8::2", "fp8" (FP8 linears), "sage8+teacache:0.1" (both); a "+fp8" suffix adds FP8
    /// linears ("teacache:0.1:2+fp8").
    /// </summary>
    public static FidelityMode Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var given = text;
        var linears = LinearMode.Exact;
        if (text.EndsWith("+fp8", StringComparison.OrdinalIgnoreCase))
        {
            linears = LinearMode.Fp8;
            text = text[..^4];
        }
        var parts = text.Split(':');
        var cache = StepCacheMode.None;
        var attention = Engine.AttentionMode.Exact;
        foreach (var name in parts[0].Split('+', StringSplitOptions.TrimEntries))
        {
            if (name.Equals(Engine.GpuOptions.Sage8Name, StringComparison.OrdinalIgnoreCase)) attention = Engine.AttentionMode.Sage8;
            else if (name.Equals("fp8", StringComparison.OrdinalIgnoreCase)) linears = LinearMode.Fp8;
            else cache = CacheOf(name, given);
        }
        double? threshold = null;
        int exact = 0;
        try
        {
            if (parts.Length > 1 && parts[1].Length > 0) threshold = double.Parse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture);
            if (parts.Length > 2) exact = int.Parse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new Engine.CogVideoXException(
                $"mode \"{given}\" is not understood; write MODE[:THRESHOLD[:EXACT_STEPS]], e.g. teacache:0.2, fbcache:0.05:2, sage8::2, fp8::2 or sage8+teacache:0.1", GenerationRules.UsageExitCode);
        }
        if (parts.Length > 3)
            throw new Engine.CogVideoXException(
                $"mode \"{given}\" has {parts.Length} parts; write MODE[:THRESHOLD[:EXACT_STEPS]], e.g. teacache:0.2, fbcache:0.05:2, sage8::2, fp8::2 or sage8+teacache:0.1", GenerationRules.UsageExitCode);
        return new FidelityMode(cache, threshold, exact, attention, linears);
    }

    /// <summary>A step cache's name within a mode; any other name says which names a mode is made of.</summary>
    private static StepCacheMode CacheOf(string name, string mode)
    {
        try
        {
            return StepCaching.Parse(name);
        }
        catch (Engine.CogVideoXException)
        {
            throw new Engine.CogVideoXException(
                $"mode \"{mode}\": unknown name '{name}'; MODE is teacache, fbcache, sage8 or fp8, or several joined by + (e.g. sage8+teacache:0.1, " +
                "teacache:0.1+fp8); write MODE[:THRESHOLD[:EXACT_STEPS]]", GenerationRules.UsageExitCode);
        }
    }

    /// <summary>FP8 linears alone and with 2 exact steps, and combined with TeaCache 0.1 and First Block Cache 0.6.</summary>
    public static IReadOnlyList<FidelityMode> Fp8 { get; } =
    [
        new(StepCacheMode.None, null, 0, Linears: LinearMode.Fp8), new(StepCacheMode.None, null, 2, Linears: LinearMode.Fp8),
        new(StepCacheMode.TeaCache, 0.1, 0, Linears: LinearMode.Fp8), new(StepCacheMode.TeaCache, 0.1, 2, Linears: LinearMode.Fp8),
        new(StepCacheMode.FirstBlockCache, 0.6, 0, Linears: LinearMode.Fp8), new(StepCacheMode.FirstBlockCache, 0.6, 2, Linears: LinearMode.Fp8),
    ];

    /// <summary>
    /// TeaCache at its published slow and fast thresholds, First Block Cache at diffusers' default and two loose ones
    /// (which reuse steps of the tiny random models), each alone and with 2 exact steps; 8-bit attention alone, with 2
    /// exact steps, and with TeaCache 0.1 and First Block Cache 0.6.
    /// </summary>
    public static IReadOnlyList<FidelityMode> Defaults { get; } =
    [
        new(StepCacheMode.TeaCache, 0.1, 0), new(StepCacheMode.TeaCache, 0.1, 2),
        new(StepCacheMode.TeaCache, 0.2, 0), new(StepCacheMode.TeaCache, 0.2, 2),
        new(StepCacheMode.FirstBlockCache, 0.05, 0), new(StepCacheMode.FirstBlockCache, 0.05, 2),
        new(StepCacheMode.FirstBlockCache, 0.6, 0), new(StepCacheMode.FirstBlockCache, 0.6, 2),
        new(StepCacheMode.FirstBlockCache, 0.8, 0), new(StepCacheMode.FirstBlockCache, 0.8, 2),
        new(StepCacheMode.None, null, 0, Engine.AttentionMode.Sage8), new(StepCacheMode.None, null, 2, Engine.AttentionMode.Sage8),
        new(StepCacheMode.TeaCache, 0.1, 0, Engine.AttentionMode.Sage8), new(StepCacheMode.FirstBlockCache, 0.6, 0, Engine.AttentionMode.Sage8),
        .. Fp8,
    ];

}

/// <summary>One row of the fidelity table: a run in one mode against the exact path.</summary>
public sealed record FidelityRow(string Run, int Steps, string Mode, IReadOnlyList<int> ReusedSteps, double Psnr, double Ssim, double MaxAbs,
    double DenoiseSeconds, double ExactDenoiseSeconds);

/// <summary>A named request to measure (a golden run, or any prompt and settings).</summary>
public sealed record FidelityRun(string Name, GenerationRequest Request);

/// <summary>
/// The fidelity of the fast modes: each run rendered on the exact path and in each mode by the same pipeline, the
/// frames compared (PSNR and SSIM on luma as <see cref="VideoMetrics.Compare"/> does, and the largest absolute
/// difference) with the denoising times beside them.
/// </summary>
public static class FidelityStudy
{
    /// <summary>The runs of a golden fixture folder (<c>runs/runs.json</c>), at their own steps or at <paramref name="steps"/>.</summary>
    public static IReadOnlyList<FidelityRun> GoldenRuns(string folder, int? steps = null)
    {
        var path = Path.Combine(folder, "runs", "runs.json");
        if (!File.Exists(path))
            throw new Engine.CogVideoXException($"{path} not found: fidelity reads the golden runs of a fixture model folder (tests/fixtures/golden/pipeline_2b_style)", GenerationRules.UsageExitCode);
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var runs = new List<FidelityRun>();
        foreach (var r in doc.RootElement.EnumerateArray())
        {
            var request = new GenerationRequest
            {
                Prompt = r.GetProperty("prompt").GetString()!,
                NegativePrompt = r.TryGetProperty("negative_prompt", out var n) ? n.GetString() : null,
                Seed = r.GetProperty("seed").GetInt64(),
                Steps = steps ?? r.GetProperty("steps").GetInt32(),
                Guidance = r.GetProperty("guidance").GetDouble(),
                Frames = r.GetProperty("frames").GetInt32(),
                Height = r.GetProperty("height").GetInt32(),
                Width = r.GetProperty("width").GetInt32(),
                DynamicCfg = r.TryGetProperty("dynamic_cfg", out var d) && d.GetBoolean(),
            };
            runs.Add(new FidelityRun($"{Path.GetFileName(Path.TrimEndingDirectorySeparator(folder))}/{r.GetProperty("tag").GetString()}", request));
        }
        return runs;
    }

    /// <summary>Renders <paramref name="run"/> exactly and in every mode with <paramref name="pipeline"/>; one row per mode.</summary>
    public static IReadOnlyList<FidelityRow> Measure(CogVideoXPipeline pipeline, FidelityRun run, IReadOnlyList<FidelityMode> modes, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(modes);
        var exactRequest = run.Request with { Cache = StepCacheMode.None, CacheThreshold = null, ExactSteps = 0, Attention = Engine.AttentionMode.Exact, Linears = LinearMode.Exact };
        var exact = pipeline.Generate(exactRequest, cancellation: cancellation);
        var reference = Frames(exact);
        var rows = new List<FidelityRow>();
        foreach (var mode in modes)
        {
            var result = pipeline.Generate(run.Request with { Cache = mode.Cache, CacheThreshold = mode.Threshold, ExactSteps = mode.ExactSteps, Attention = mode.Attention, Linears = mode.Linears }, cancellation: cancellation);
            var metrics = VideoMetrics.Compare(Frames(result), reference)!;
            double maxAbs = 0;
            for (int i = 0; i < result.Frames.Length; i++) maxAbs = Math.Max(maxAbs, Math.Abs(result.Frames[i] - exact.Frames[i]));
            rows.Add(new FidelityRow(run.Name, run.Request.Steps, mode.Label, result.Resolved.ReusedSteps, metrics.Psnr, metrics.Ssim, maxAbs,
                result.Timings.Denoise.TotalSeconds, exact.Timings.Denoise.TotalSeconds));
        }
        return rows;
    }

    private static VideoFrames Frames(GenerationResult r) => new(r.Frames, r.FrameCount, r.Height, r.Width);

    /// <summary>The rows as a Markdown table.</summary>
    public static string Table(IEnumerable<FidelityRow> rows)
    {
        static string F(double v, string format) => double.IsPositiveInfinity(v) ? "identical" : v.ToString(format, CultureInfo.InvariantCulture);
        var s = new StringBuilder();
        s.AppendLine("| run | steps | mode | reused steps | PSNR (dB) | SSIM | max abs | denoise (s) | exact denoise (s) |");
        s.AppendLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows)
        {
            string reused = r.ReusedSteps.Count == 0 ? "none" : $"{r.ReusedSteps.Count}: {string.Join(",", r.ReusedSteps)}";
            s.AppendLine($"| {r.Run} | {r.Steps} | {r.Mode} | {reused} | {F(r.Psnr, "0.00")} | {F(r.Ssim, "0.0000")} | {F(r.MaxAbs, "0.0000")} | " +
                $"{F(r.DenoiseSeconds, "0.00")} | {F(r.ExactDenoiseSeconds, "0.00")} |");
        }
        return s.ToString();
    }
}
