using CogVideoX.Engine;
using CogVideoX.Models.Lora;
using CogVideoX.Models.Text;

namespace CogVideoX.Diffusion;

/// <summary>The names of the pipeline's stages, as progress reports and sidecar timings spell them.</summary>
public static class PipelineStages
{
    public const string LoadTextEncoder = "load_text_encoder";
    public const string TextEncoder = "text_encoder";
    public const string LoadTransformer = "load_transformer";
    public const string Denoise = "denoise";
    public const string LoadVae = "load_vae";
    public const string VaeDecode = "vae_decode";

    /// <summary>Image- and video-to-video: the VAE encodes the input before the denoising loop.</summary>
    public const string VaeEncode = "vae_encode";

    /// <summary>Writing the MP4: not a pipeline stage, but renderers report it under this name after the decode.</summary>
    public const string EncodeVideo = "encode_video";

    /// <summary>What a stage does, in words ("decoding the latents"), for progress lines and error messages.</summary>
    public static string Describe(string stage) => stage switch
    {
        LoadTextEncoder => "loading the text encoder",
        TextEncoder => "encoding the prompt",
        LoadTransformer => "loading the transformer",
        Denoise => "denoising",
        LoadVae => "loading the VAE",
        VaeDecode => "decoding the latents",
        VaeEncode => "encoding the input with the VAE",
        EncodeVideo => "writing the MP4",
        _ => stage,
    };

    public static string Load(ModelComponent component) => component switch
    {
        ModelComponent.TextEncoder => LoadTextEncoder,
        ModelComponent.Transformer => LoadTransformer,
        ModelComponent.Vae => LoadVae,
        _ => throw new ArgumentOutOfRangeException(nameof(component), component, null),
    };
}

/// <summary>
/// Progress of a run. A stage reports once when it starts (<see cref="Step"/> 0) and once when it ends; the denoising
/// stage also after every step, with that step's duration.
/// </summary>
/// <param name="Stage">One of <see cref="PipelineStages"/>.</param>
/// <param name="Step">Steps done in this stage (0 at its start).</param>
/// <param name="TotalSteps">Steps of the stage (the denoising steps; 1 for the other stages).</param>
/// <param name="StageElapsed">Time since the stage started.</param>
/// <param name="Elapsed">Time since the run started.</param>
/// <param name="LastStep">Duration of the step just done (zero at a stage's start).</param>
/// <param name="Timestep">The scheduler timestep of the step just done (denoising only; −1 otherwise).</param>
public readonly record struct PipelineProgress(
    string Stage, int Step, int TotalSteps, TimeSpan StageElapsed, TimeSpan Elapsed, TimeSpan LastStep, int Timestep)
{
    /// <summary>The denoising step just done reused cached work (a step cache) instead of running every block.</summary>
    public bool StepReused { get; init; }
}

/// <summary>
/// Sees the run's intermediate tensors, named as diffusers' reference runs name them (<c>prompt_embeds</c>,
/// <c>negative_embeds</c>, <c>initial_latents</c>, <c>transformer_out_stepN</c>, <c>latents_after_stepN</c>,
/// <c>vae_input</c>, <c>vae_decoded</c>): for tests that locate a difference, and for previews. A tensor is only
/// valid during the call; copy what you keep.
/// </summary>
public interface IPipelineObserver
{
    void Tensor(string name, Tensor value);
}

/// <summary>Seconds spent per stage; loads are counted apart from the stage that needed them.</summary>
public sealed record PipelineTimings
{
    public TimeSpan LoadTextEncoder { get; init; }

    public TimeSpan TextEncoder { get; init; }

    public TimeSpan LoadTransformer { get; init; }

    public TimeSpan Denoise { get; init; }

    /// <summary>Each denoising step (transformer, guidance, scheduler).</summary>
    public IReadOnlyList<TimeSpan> Steps { get; init; } = [];

    public TimeSpan LoadVae { get; init; }

    public TimeSpan VaeDecode { get; init; }

    /// <summary>The VAE encoder's stage (image- and video-to-video only).</summary>
    public TimeSpan VaeEncode { get; init; }

    /// <summary>The whole run, loads included.</summary>
    public TimeSpan Total { get; init; }

    /// <summary>The timings as sidecar entries (seconds, by stage name; zero-length loads left out).</summary>
    public Dictionary<string, double> ToSeconds()
    {
        var d = new Dictionary<string, double>();
        void Add(string key, TimeSpan value, bool always = true)
        {
            if (always || value > TimeSpan.Zero) d[key] = value.TotalSeconds;
        }
        Add(PipelineStages.LoadTextEncoder, LoadTextEncoder, always: false);
        Add(PipelineStages.TextEncoder, TextEncoder);
        Add(PipelineStages.LoadTransformer, LoadTransformer, always: false);
        Add(PipelineStages.Denoise, Denoise);
        if (Steps.Count > 0)
        {
            d["denoise_step_mean"] = Steps.Average(s => s.TotalSeconds);
            d["denoise_step_max"] = Steps.Max(s => s.TotalSeconds);
        }
        Add(PipelineStages.LoadVae, LoadVae, always: false);
        Add(PipelineStages.VaeDecode, VaeDecode);
        Add(PipelineStages.VaeEncode, VaeEncode, always: false);
        d["pipeline"] = Total.TotalSeconds;
        return d;
    }
}

/// <summary>What a run resolved from the request and the model: the values it actually used.</summary>
public sealed record ResolvedGeneration
{
    public SchedulerKind Scheduler { get; init; }

    /// <summary>The scheduler's timestep spacing (the 5b swap to DPM uses "trailing").</summary>
    public string TimestepSpacing { get; init; } = "";

    public IReadOnlyList<int> Timesteps { get; init; } = [];

    public bool DynamicCfg { get; init; }

    public DynamicCfgSchedule DynamicCfgSchedule { get; init; }

    /// <summary>Whether the transformer ran on [negative; positive] (guidance &gt; 1).</summary>
    public bool ClassifierFreeGuidance { get; init; }

    public DType DType { get; init; }

    public string Device { get; init; } = "";

    /// <summary>The memory mode the run used (auto resolved to full, balanced or low).</summary>
    public string MemoryPolicy { get; init; } = "";

    /// <summary>How the memory mode was chosen, and what it falls back to on this backend.</summary>
    public IReadOnlyList<string> MemoryNotes { get; init; } = [];

    /// <summary>The estimated device memory of the mode used (null on backends without device memory figures).</summary>
    public MemoryEstimate? MemoryEstimate { get; init; }

    /// <summary>[batch, latent frames, channels, height / 8, width / 8].</summary>
    public IReadOnlyList<int> LatentShape { get; init; } = [];

    /// <summary>Frames the VAE returned (the requested count, or more for an even number of latent frames).</summary>
    public int DecodedFrames { get; init; }

    /// <summary>Whether the VAE decoded in tiles (asked for, or implied by the low memory mode).</summary>
    public bool VaeTiling { get; init; }

    /// <summary>The LoRA adapters fused into the transformer: each file, its SHA-256 and strength (empty for none).</summary>
    public IReadOnlyList<LoraRecord> Lora { get; init; } = [];
    /// <summary>What the run did: text-to-video, image-to-video or video-to-video.</summary>
    public string Task { get; init; } = "";

    /// <summary>Video-to-video's strength (the part of the schedule that ran); null for the other tasks.</summary>
    public double? Strength { get; init; }

    /// <summary>The step cache as set up ("none", or the mode with its threshold and coefficients).</summary>
    public string Cache { get; init; } = "none";

    /// <summary>The first and last N steps kept exact under a fast mode (at least 1 with a cache).</summary>
    public int ExactSteps { get; init; }

    /// <summary>The transformer's self-attention: "exact" or "sage8" (8-bit, on every step but the exact ones).</summary>
    public string Attention { get; init; } = "exact";
    /// <summary>The blocks' projections: "exact" or "fp8" (E4M3, per-channel weight and per-token activation scales).</summary>
    public string Linear { get; init; } = "exact";

    /// <summary>The denoising steps (0-based) that reused cached work; filled in after the loop.</summary>
    public IReadOnlyList<int> ReusedSteps { get; init; } = [];
}

/// <summary>The output of <see cref="CogVideoXPipeline.Generate"/>: frames and latents on the host, and what the run measured.</summary>
public sealed class GenerationResult
{
    internal GenerationResult(float[] frames, int frameCount, int height, int width, float[] latents, int[] latentShape,
        PipelineTimings timings, long peakMemoryBytes, string peakMemoryKind, ResolvedGeneration resolved,
        TokenizedPrompt prompt, TokenizedPrompt? negativePrompt, IReadOnlyList<string> warnings)
    {
        Frames = frames;
        FrameCount = frameCount;
        Height = height;
        Width = width;
        Latents = latents;
        LatentShape = latentShape;
        Timings = timings;
        PeakMemoryBytes = peakMemoryBytes;
        PeakMemoryKind = peakMemoryKind;
        Resolved = resolved;
        Prompt = prompt;
        NegativePrompt = negativePrompt;
        Warnings = warnings;
    }

    /// <summary>The video, float32 [F, 3, H, W] in C order, values in [0, 1] (diffusers' output_type "pt").</summary>
    public float[] Frames { get; }

    public int FrameCount { get; }

    public int Height { get; }

    public int Width { get; }

    public int[] FramesShape => [FrameCount, 3, Height, Width];

    /// <summary>The final latents, float32 [1, F_latent, C, H / 8, W / 8] in C order (before the VAE's scaling).</summary>
    public float[] Latents { get; }

    public int[] LatentShape { get; }

    public PipelineTimings Timings { get; }

    /// <summary>The most memory in use during the run (see <see cref="PeakMemoryKind"/>).</summary>
    public long PeakMemoryBytes { get; }

    /// <summary>"device" (the backend's allocator peak) or "host" (the process's peak resident memory).</summary>
    public string PeakMemoryKind { get; }

    public ResolvedGeneration Resolved { get; }

    /// <summary>The prompt as the text encoder read it; its <see cref="TokenizedPrompt.TruncatedText"/> says what was cut.</summary>
    public TokenizedPrompt Prompt { get; }

    /// <summary>The negative prompt as encoded (null without classifier-free guidance, when none is encoded).</summary>
    public TokenizedPrompt? NegativePrompt { get; }

    /// <summary>Things the user should know: frame counts off the trained ones, prompts cut at the token limit.</summary>
    public IReadOnlyList<string> Warnings { get; }
}
