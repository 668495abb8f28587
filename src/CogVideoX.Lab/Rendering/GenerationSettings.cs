using System.Text.Json.Serialization;
using CogVideoX.Diffusion;

namespace CogVideoX.Lab;

/// <summary>
/// Everything that defines one video, as the user states it (names, not resolved objects). Two videos with
/// equal settings and the same weights are the same video: the sidecar stores these so a run can be reproduced
/// and a finished output recognised. Null means "the model's default" (resolved and recorded by the renderer).
/// </summary>
public sealed record GenerationSettings
{
    /// <summary>`2b`, `5b`, a folder, or a Hugging Face repo id (`owner/name[@revision]`).</summary>
    public string Model { get; init; } = "2b";

    /// <summary>The prompt file's name (under prompts/) when the prompt came from one; for labels only.</summary>
    public string? PromptName { get; init; }

    public string Prompt { get; init; } = "";

    public string? NegativePrompt { get; init; }

    public int Steps { get; init; } = GenerationDefaults.Steps;

    public double Guidance { get; init; } = GenerationDefaults.Guidance;

    public int Frames { get; init; } = GenerationDefaults.Frames;

    public int Fps { get; init; } = GenerationDefaults.Fps;

    public long Seed { get; init; } = GenerationDefaults.Seed;

    public int Height { get; init; } = GenerationDefaults.Height;

    public int Width { get; init; } = GenerationDefaults.Width;

    /// <summary>`ddim` or `dpm`; null → per-model default (2b DDIM, 5b DPM trailing).</summary>
    public string? Scheduler { get; init; }

    /// <summary>null → per-model default (5b on, 2b off).</summary>
    public bool? DynamicCfg { get; init; }

    /// <summary>`f32`, `f16`, `bf16`; null → per-model default on a GPU (2b fp16, 5b bf16), f32 on the CPU.</summary>
    [JsonPropertyName("dtype")]
    public string? DType { get; init; }

    /// <summary>Reads sidecars written before the key was <c>dtype</c> (the naming policy made it <c>d_type</c>); never written.</summary>
    [JsonPropertyName("d_type")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    [System.ComponentModel.EditorBrowsable(System.ComponentModel.EditorBrowsableState.Never)]
    public string? LegacyDType
    {
        get => null;
        init => DType ??= value;
    }

    /// <summary>`auto` (the GPU when one works, else the CPU: see <see cref="DeviceSelection"/>), `cpu`, `cuda`, `cuda:N`.</summary>
    public string Device { get; init; } = DeviceSelection.Auto;

    /// <summary>`auto`, `full`, `balanced`, `low` (GPU memory policy).</summary>
    public string Memory { get; init; } = "auto";

    /// <summary>`own` or `cudnn`: the attention kernel a GPU tries first; null → the backend's default (own).</summary>
    public string? Attention { get; init; }

    /// <summary>`on`, `off`, `attention`, `conv`, `autotune`: what a GPU uses cuDNN for; null → on.</summary>
    public string? Cudnn { get; init; }

    /// <summary>`auto`, `unified`, `composite`: the cuDNN attention graph; null → auto.</summary>
    public string? CudnnSdpa { get; init; }

    /// <summary>
    /// True when both settings make the same video. Which GPU of a kind ran it does not matter (`cuda:1` makes the
    /// video `cuda` makes), so a sweep spread over several GPUs recognises its outputs; the kind does (CPU float32
    /// and GPU half precision differ).
    /// </summary>
    public bool DefinesSameVideoAs(GenerationSettings other) => SameVideoKey() == other.SameVideoKey();

    /// <summary>
    /// These settings with what does not change the video taken out: the GPU's ordinal; the GPU choices left to their
    /// defaults written out (attention own, cudnn on, cudnn-sdpa auto); without a step cache its threshold and exact
    /// steps; with one, its default threshold written out and exact steps of 0 read as 1 (the first and last step are
    /// always exact). Equal keys, same video.
    /// </summary>
    public GenerationSettings SameVideoKey()
    {
        var key = this with
        {
            Device = DeviceKind(Device),
            Attention = Attention ?? Engine.GpuOptions.AttentionNames[0],
            Cudnn = Cudnn ?? Engine.GpuOptions.CudnnNames[0],
            CudnnSdpa = CudnnSdpa ?? Engine.GpuOptions.CudnnSdpaNames[0],
        };
        // Under 8-bit attention or FP8 linears exactly the first and last N steps are exact (0: none), with or without a
        // cache: the count stays as it is. Under a cache alone its first and last step always compute.
        bool asGiven = Attention == Engine.GpuOptions.Sage8Name || Linear == "fp8";
        if (Cache == "none") return key with { CacheThreshold = null, ExactSteps = asGiven ? ExactSteps : 0 };
        var mode = StepCaching.Names.Contains(Cache) ? StepCaching.Parse(Cache) : StepCacheMode.None;
        return mode == StepCacheMode.None ? key
            : key with { CacheThreshold = CacheThreshold ?? StepCaching.DefaultThreshold(mode), ExactSteps = asGiven ? ExactSteps : Math.Max(1, ExactSteps) };
    }

    /// <summary>What differs from <paramref name="other"/>, as "steps 50 → 10" (this → other); the GPU's ordinal does not count.</summary>
    public IReadOnlyList<string> Differences(GenerationSettings other)
    {
        var list = new List<string>();
        void Add<T>(string name, T mine, T theirs)
        {
            if (!EqualityComparer<T>.Default.Equals(mine, theirs)) list.Add($"{name} {Show(mine)} → {Show(theirs)}");
        }
        static string Show<T>(T value) => value switch
        {
            null => "default",
            string text => text.Length > 40 ? $"\"{text[..37]}…\"" : text,
            IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
            _ => value.ToString() ?? "",
        };
        Add("model", Model, other.Model);
        Add("prompt", Prompt, other.Prompt);
        Add("negative prompt", NegativePrompt, other.NegativePrompt);
        Add("steps", Steps, other.Steps);
        Add("guidance", Guidance, other.Guidance);
        Add("frames", Frames, other.Frames);
        Add("fps", Fps, other.Fps);
        Add("seed", Seed, other.Seed);
        Add("height", Height, other.Height);
        Add("width", Width, other.Width);
        Add("scheduler", Scheduler, other.Scheduler);
        Add("dynamic CFG", DynamicCfg, other.DynamicCfg);
        Add("dtype", DType, other.DType);
        Add("device", DeviceKind(Device), DeviceKind(other.Device));
        Add("memory", Memory, other.Memory);
        Add("VAE tiling", VaeTiling, other.VaeTiling);
        Add("attention", Attention, other.Attention);
        Add("cudnn", Cudnn, other.Cudnn);
        Add("cudnn-sdpa", CudnnSdpa, other.CudnnSdpa);
        Add("lora", Lora, other.Lora);
        Add("image", Image, other.Image);
        Add("video", Video, other.Video);
        Add("strength", Strength, other.Strength);
        Add("cache", Cache, other.Cache);
        Add("cache threshold", CacheThreshold, other.CacheThreshold);
        Add("exact steps", ExactSteps, other.ExactSteps);
        Add("linear", Linear, other.Linear);
        return list;
    }

    /// <summary>`cuda:3` → `cuda`; `cpu` → `cpu`.</summary>
    public static string DeviceKind(string device)
    {
        int colon = device.IndexOf(':');
        return colon < 0 ? device : device[..colon];
    }
    /// <summary>`none` (the exact path), `teacache` or `fbcache`: step caching, a fast mode.</summary>
    public string Cache { get; init; } = "none";

    /// <summary>The step cache's threshold; null → the mode's default (teacache 0.1, fbcache 0.05).</summary>
    public double? CacheThreshold { get; init; }

    /// <summary>The first and last N steps kept exact while a fast mode runs the rest.</summary>
    public int ExactSteps { get; init; }

    /// <summary>`exact` (the default) or `fp8`: how the transformer blocks' attention and feed-forward projections run (a fast mode).</summary>
    public string Linear { get; init; } = "exact";

    /// <summary>Decode the latents in overlapping spatial tiles (less memory; the blended seams change pixels slightly).</summary>
    public bool VaeTiling { get; init; }

    /// <summary>
    /// LoRA adapters fused into the transformer, as "FILE:STRENGTH" entries separated by "; " (canonical form of
    /// <see cref="Models.Lora.LoraSpec.FormatList"/>); null for none.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Lora { get; init; }
    /// <summary>Image to video: the picture to animate (PNG, JPEG, WebP); needs an image-to-video model (5b-i2v).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Image { get; init; }

    /// <summary>Video to video: the video to restyle (its first <see cref="Frames"/> frames), on a text-to-video model.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Video { get; init; }

    /// <summary>Video to video: the part of the schedule that runs, in (0, 1]; null → 0.8 (diffusers' default).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? Strength { get; init; }
}

/// <summary>One video to make in an experiment: where it goes and what defines it.</summary>
public sealed record VideoJob(string Experiment, string Name, string OutputPath, GenerationSettings Settings)
{
    /// <summary>The sidecar next to the video: same name, .json.</summary>
    [JsonIgnore]
    public string SidecarPath => Path.ChangeExtension(OutputPath, ".json");
}
