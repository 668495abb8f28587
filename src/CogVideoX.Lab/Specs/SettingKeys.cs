using System.Globalization;
using CogVideoX.Diffusion;
using CogVideoX.Engine;

namespace CogVideoX.Lab.Specs;

/// <summary>One value of a setting as written in a spec: the typed value and the text used in names and labels.</summary>
public sealed record SettingValue(string Key, object? Value, string Text)
{
    /// <summary>The value as a number, for charts and summaries; null for text settings.</summary>
    public double? Number => Value switch
    {
        int i => i,
        long l => l,
        double d => d,
        _ => null,
    };
}

/// <summary>
/// The settings a spec may name (in <c>defaults</c>, an experiment's <c>settings</c>, <c>vary</c>, <c>grid</c> and
/// <c>reference</c>): how each is parsed, checked and applied to <see cref="GenerationSettings"/>.
/// </summary>
public sealed class SettingKey
{
    private readonly Func<string, object?> _parse;
    private readonly Func<object?, string?> _check;
    private readonly Func<GenerationSettings, object?, GenerationSettings> _apply;
    private readonly Func<GenerationSettings, object?> _read;

    private SettingKey(string name, string allowed, bool continuous, Func<string, object?> parse, Func<object?, string?> check,
        Func<GenerationSettings, object?, GenerationSettings> apply, Func<GenerationSettings, object?> read)
    {
        Name = name;
        Allowed = allowed;
        Continuous = continuous;
        _parse = parse;
        _check = check;
        _apply = apply;
        _read = read;
    }

    /// <summary>The key as written in YAML (snake_case).</summary>
    public string Name { get; }

    /// <summary>What values are allowed, for error messages.</summary>
    public string Allowed { get; }

    /// <summary>True when values lie on a scale (steps, guidance): charts use a numeric axis, else categories (seed).</summary>
    public bool Continuous { get; }

    /// <summary>Whether an experiment may vary it (where a video is rendered is no experiment setting).</summary>
    public bool CanVary => Name != "device";

    /// <summary>Parses and checks a scalar; returns the value or an error that says what is allowed.</summary>
    public bool TryParse(string? text, bool isNull, out SettingValue? value, out string? error)
    {
        value = null;
        error = null;
        object? parsed;
        if (isNull)
        {
            if (!Nullable)
            {
                error = $"{Name} needs a value: {Allowed}";
                return false;
            }
            parsed = null;
        }
        else
        {
            try
            {
                parsed = _parse(text ?? "");
            }
            catch (FormatException e)
            {
                error = e.InnerException is CogVideoXException detail ? detail.Message : $"{Name} must be {Allowed}, got '{text}'";
                return false;
            }
            catch (OverflowException)
            {
                error = $"{Name} must be {Allowed}, got '{text}' (out of range)";
                return false;
            }
        }
        var problem = _check(parsed);
        if (problem is not null)
        {
            error = $"{Name} {problem}; allowed: {Allowed}";
            return false;
        }
        value = new SettingValue(Name, parsed, Format(parsed));
        return true;
    }

    private bool Nullable => Name is "scheduler" or "dynamic_cfg" or "dtype" or "negative_prompt" or "lora" or "image" or "video" or "strength" or "cache_threshold";

    public GenerationSettings Apply(GenerationSettings settings, SettingValue value) => _apply(settings, value.Value);

    /// <summary>The setting's value in <paramref name="settings"/>, formatted as in output names.</summary>
    public string Read(GenerationSettings settings) => Format(_read(settings));

    public static string Format(object? value) => value switch
    {
        null => "default",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    public static readonly IReadOnlyList<SettingKey> All =
    [
        Text("model", "`2b`, `5b`, a model folder or a Hugging Face repo id",
            v => string.IsNullOrWhiteSpace(v) ? "must not be empty" : null, (s, v) => s with { Model = v! }, s => s.Model),
        Int("steps", "an integer ≥ 1 (denoising steps)", v => v < 1 ? $"must be at least 1, got {v}" : null,
            (s, v) => s with { Steps = v }, s => s.Steps),
        Real("guidance", "a number ≥ 0 (classifier-free guidance scale; 1 or less turns guidance off)",
            v => v < 0 || double.IsNaN(v) || double.IsInfinity(v) ? $"must be a finite number ≥ 0, got {Format(v)}" : null,
            (s, v) => s with { Guidance = v }, s => s.Guidance),
        Long("seed", "an integer ≥ 0", v => v < 0 ? $"must be ≥ 0, got {v}" : null, (s, v) => s with { Seed = v }, s => s.Seed),
        Int("frames", "a count of the form 4k+1 (… 9, 13, 25, 49): the VAE turns k+1 latent frames into 4k+1 frames",
            v => v < 1 || (v - 1) % 4 != 0 ? $"is {v}, which is not of the form 4k+1 (nearest: {Nearest4k1(v)})" : null,
            (s, v) => s with { Frames = v }, s => s.Frames),
        Int("fps", "an integer from 1 to 240", v => v is < 1 or > 240 ? $"is {v}, out of range" : null,
            (s, v) => s with { Fps = v }, s => s.Fps),
        Int("height", "a multiple of 16 ≥ 16 (pixels; the VAE downsamples by 8 and the transformer patches by 2)",
            v => v < 16 || v % 16 != 0 ? $"is {v}" : null, (s, v) => s with { Height = v }, s => s.Height),
        Int("width", "a multiple of 16 ≥ 16 (pixels; the VAE downsamples by 8 and the transformer patches by 2)",
            v => v < 16 || v % 16 != 0 ? $"is {v}" : null, (s, v) => s with { Width = v }, s => s.Width),
        Choice("scheduler", [.. SchedulerRegistry.Names], (s, v) => s with { Scheduler = v }, s => s.Scheduler),
        new SettingKey("dynamic_cfg", "true, false or null (the model's default)", false,
            t => t.ToLowerInvariant() switch { "true" => true, "false" => false, _ => throw new FormatException() },
            _ => null, (s, v) => s with { DynamicCfg = (bool?)v }, s => s.DynamicCfg),
        Choice("dtype", ["f32", "f16", "bf16"], (s, v) => s with { DType = v }, s => s.DType),
        Choice("attention", [.. GpuOptions.AttentionNames], (s, v) => s with { Attention = v }, s => s.Attention),
        Choice("cudnn", [.. GpuOptions.CudnnNames], (s, v) => s with { Cudnn = v }, s => s.Cudnn),
        Choice("cudnn_sdpa", [.. GpuOptions.CudnnSdpaNames], (s, v) => s with { CudnnSdpa = v }, s => s.CudnnSdpa),
        Text("device", "`auto`, `cpu`, `cuda` or `cuda:N`", v => IsDevice(v!) ? null : $"is '{v}'",
            (s, v) => s with { Device = v! }, s => s.Device),
        Choice("memory", ["auto", "full", "balanced", "low"], (s, v) => s with { Memory = v! }, s => s.Memory),
        Text("negative_prompt", "text (what the video should not show)", _ => null, (s, v) => s with { NegativePrompt = v }, s => s.NegativePrompt),
        new SettingKey("lora", "LoRA files as FILE or FILE:STRENGTH (strength 1 when left out), several separated by ';', or none", false,
            t => LoraSetting(t), _ => null, (s, v) => s with { Lora = (string?)v }, s => s.Lora),
        Text("image", "a PNG, JPEG or WebP file (image-to-video; needs model 5b-i2v)", v => string.IsNullOrWhiteSpace(v) ? "must not be empty" : null,
            (s, v) => s with { Image = v }, s => s.Image),
        Text("video", "a video file ffmpeg reads, e.g. MP4 (video-to-video on model 2b or 5b; its first `frames` frames are used)",
            v => string.IsNullOrWhiteSpace(v) ? "must not be empty" : null, (s, v) => s with { Video = v }, s => s.Video),
        new SettingKey("strength", "a number in (0, 1] (video-to-video: the part of the schedule that runs; 0.8 by default) or null", true,
            t => double.Parse(t, NumberStyles.Float, CultureInfo.InvariantCulture),
            v => v is double d && !(d > 0 && d <= 1) ? $"is {Format(d)}, outside (0, 1]" : null,
            (s, v) => s with { Strength = (double?)v }, s => s.Strength),
        Choice("cache", [.. StepCaching.Names], (s, v) => s with { Cache = v! }, s => s.Cache),
        new SettingKey("cache_threshold", "a number ≥ 0 (teacache: 0.1 slow, 0.2 fast; fbcache: 0.05) or null (the mode's default)", true,
            t => double.Parse(t, NumberStyles.Float, CultureInfo.InvariantCulture),
            v => v is double d && (d < 0 || !double.IsFinite(d)) ? $"must be a finite number ≥ 0, got {Format(d)}" : null,
            (s, v) => s with { CacheThreshold = (double?)v }, s => s.CacheThreshold),
        Int("exact_steps", "an integer ≥ 0 (the first and last N steps computed exactly under a fast mode)",
            v => v < 0 ? $"must be ≥ 0, got {v}" : null, (s, v) => s with { ExactSteps = v }, s => s.ExactSteps),
        Choice("linear", [.. LinearModes.Names], (s, v) => s with { Linear = v! }, s => s.Linear),
    ];

    /// <summary>The canonical "FILE:STRENGTH; …" text of a lora value (null for none); a bad value is a FormatException.</summary>
    private static string? LoraSetting(string text)
    {
        try
        {
            return Models.Lora.LoraSpec.FormatList(Models.Lora.LoraSpec.ParseList(text));
        }
        catch (CogVideoXException e)
        {
            throw new FormatException(e.Message, e);
        }
    }

    public static SettingKey? Find(string name) => All.FirstOrDefault(k => k.Name == name);

    public static bool IsDevice(string device) =>
        device is "auto" or "cpu" or "cuda" ||
        (device.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(device.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out _));

    private static int Nearest4k1(int v) => Math.Max(1, (int)Math.Round((v - 1) / 4.0) * 4 + 1);

    private static SettingKey Int(string name, string allowed, Func<int, string?> check,
        Func<GenerationSettings, int, GenerationSettings> apply, Func<GenerationSettings, int> read) =>
        new(name, allowed, true, t => int.Parse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture),
            v => check((int)v!), (s, v) => apply(s, (int)v!), s => read(s));

    private static SettingKey Long(string name, string allowed, Func<long, string?> check,
        Func<GenerationSettings, long, GenerationSettings> apply, Func<GenerationSettings, long> read) =>
        new(name, allowed, false, t => long.Parse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture),
            v => check((long)v!), (s, v) => apply(s, (long)v!), s => read(s));

    private static SettingKey Real(string name, string allowed, Func<double, string?> check,
        Func<GenerationSettings, double, GenerationSettings> apply, Func<GenerationSettings, double> read) =>
        new(name, allowed, true, t => double.Parse(t, NumberStyles.Float, CultureInfo.InvariantCulture),
            v => check((double)v!), (s, v) => apply(s, (double)v!), s => read(s));

    private static SettingKey Text(string name, string allowed, Func<string?, string?> check,
        Func<GenerationSettings, string?, GenerationSettings> apply, Func<GenerationSettings, string?> read) =>
        new(name, allowed, false, t => t, v => check((string?)v), (s, v) => apply(s, (string?)v), s => read(s));

    private static SettingKey Choice(string name, string[] choices,
        Func<GenerationSettings, string?, GenerationSettings> apply, Func<GenerationSettings, string?> read) =>
        new(name, "one of " + string.Join(", ", choices), false, t => t,
            v => v is null || choices.Contains((string)v) ? null : $"is '{v}'",
            (s, v) => apply(s, (string?)v), s => read(s));
}
