using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;

namespace CogVideoX.Lab;

/// <summary>
/// The settings of a job turned into what the pipeline runs: the model folder, the backend, the dtype, the memory
/// policy and the request, with a note for every default that was filled in. Resolving loads no weights.
/// </summary>
public sealed record RenderPlan
{
    public required GenerationSettings Settings { get; init; }

    public required ModelFolder Model { get; init; }

    public required IBackend Backend { get; init; }

    public required PipelineOptions Options { get; init; }

    public required GenerationRequest Request { get; init; }

    /// <summary>How defaults were chosen ("dtype: F32 — …"), for the user.</summary>
    public required IReadOnlyList<string> Notes { get; init; }

    /// <summary>Settings that run but deserve a second look (frame counts off the trained ones, F16 for 5b).</summary>
    public required IReadOnlyList<string> Warnings { get; init; }

    /// <summary>Checks the settings that need no model (sizes, counts, names, the prompt); throws the first error, returns warnings.</summary>
    public static IReadOnlyList<string> Check(GenerationSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        if (string.IsNullOrWhiteSpace(s.Prompt))
            throw new CogVideoXException("the prompt is empty; give one with --prompt TEXT or --prompt-file NAME", GenerationRules.UsageExitCode);
        if (string.IsNullOrWhiteSpace(s.Model))
            throw new CogVideoXException("no model given; use 2b, 5b, a model folder or a Hugging Face repo id", GenerationRules.UsageExitCode);
        GenerationRules.CheckFps(s.Fps);
        var request = ToRequest(s, scheduler: null);
        var warnings = GenerationRules.Check(request);
        CheckInputs(s);
        StepCaching.Check(request); // its warnings come with the run's (the pipeline resolves the request)
        if (s.Scheduler is not null) Usage(() => SchedulerRegistry.Parse(s.Scheduler));
        if (s.DType is not null) ParseDType(s.DType);
        ParseMemory(s.Memory);
        ParseGpu(s);
        Models.Lora.LoraSpec.ParseList(s.Lora);
        if (DeviceSelection.IsAuto(s.Device)) return warnings; // chosen when the plan is resolved
        if (!Device.TryParse(s.Device, out var device))
            throw new CogVideoXException($"unknown device '{s.Device}': use auto (the GPU when one works, else the CPU), cpu, cuda or cuda:N (N = 0 for the first GPU)",
                GenerationRules.UsageExitCode);
        if (!Backends.IsRegistered(device.Kind))
            throw new CogVideoXException(
                $"device {device} is not available in this build (no {device.Kind} backend is registered); use --device cpu", GenerationRules.UsageExitCode);
        return warnings;
    }

    /// <summary>The model's generation defaults, or null when its configs cannot be read (the pipeline then says why).</summary>
    private static ModelDefaults? ModelDefaultsOf(ModelFolder model)
    {
        try
        {
            _ = model.Vae;
            return ModelDefaults.For(model.Transformer);
        }
        catch (CogVideoXException)
        {
            return null;
        }
    }

    /// <summary>The settings' GPU choices as the backend's typed options (the CPU ignores them).</summary>
    public static GpuOptions ParseGpu(GenerationSettings s)
    {
        ArgumentNullException.ThrowIfNull(s);
        return Usage(() => GpuOptions.Parse(s.Attention, s.Cudnn, s.CudnnSdpa));
    }

    /// <summary>Resolves a job's settings: model folder, backend, dtype, memory policy. Throws for settings that cannot run.</summary>
    public static RenderPlan Resolve(GenerationSettings s, Func<string, string?>? environment = null, Func<GpuCheck>? gpuCheck = null)
    {
        var warnings = Check(s).ToList();
        var notes = new List<string>();
        var model = ModelLocator.Resolve(s.Model, environment);
        // The frame and size warnings of the model's generation (CogVideoX 1.5 was made for 81 frames, not 49).
        if (ModelDefaultsOf(model) is { } defaults && defaults != ModelDefaults.Version10)
            warnings = GenerationRules.Check(ToRequest(s, scheduler: null), model.Vae.TemporalCompressionRatio,
                model.Vae.SpatialCompressionRatio * model.Transformer.PatchSize, defaults).ToList();
        var choice = DeviceSelection.Resolve(s.Device, gpuCheck);
        if (choice.Reason.Length > 0) notes.Add(choice.Reason);
        var device = Backends.Parse(choice.Device);
        var gpu = ParseGpu(s);
        var backend = Backends.Get(device, gpu);
        if (!device.IsCpu && gpu.WithEnvironment(environment) is var effective && effective != gpu)
            notes.Add($"gpu: {effective} — COGVIDEOX_ATTENTION / COGVIDEOX_CUDNN / COGVIDEOX_CUDNN_SDPA override the settings' {gpu}");
        bool fiveB = model.Transformer.UseRotaryPositionalEmbeddings;
        var gpuDefault = fiveB ? DType.BF16 : DType.F16;

        DType dtype;
        if (s.DType is not null)
        {
            dtype = ParseDType(s.DType);
            if (dtype == DType.F16 && fiveB)
                warnings.Add("dtype F16 with a 5b-family model: CogVideoX-5b was trained in bfloat16 and overflows in float16 (black or noisy frames); use --dtype bf16");
        }
        else if (device.IsCpu)
        {
            dtype = DType.F32;
            notes.Add($"dtype: F32 — the CPU backend computes in float32 (this model's GPU default is {gpuDefault.Name()}; --dtype {gpuDefault.Name().ToLowerInvariant()} stores the weights in half precision)");
        }
        else
        {
            dtype = gpuDefault;
            notes.Add($"dtype: {dtype.Name()} — THUDM's recommendation for {(fiveB ? "the 5b family" : "CogVideoX-2b")}");
        }

        // auto is chosen by the pipeline per video, from the free device memory and the video's size.
        var memory = ParseMemory(s.Memory);
        var options = new PipelineOptions
        {
            Backend = backend,
            DType = dtype,
            MemoryPolicy = memory,
            VaeTiling = s.VaeTiling ? VaeTiling.ForConfig(model.Vae) : null,
        };
        SchedulerKind? scheduler = s.Scheduler is null ? null : SchedulerRegistry.Parse(s.Scheduler);
        if (scheduler is null)
        {
            var kind = SchedulerSelection.DefaultKind(model.Transformer);
            notes.Add($"scheduler: {SchedulerRegistry.Name(kind)} — the default for {(fiveB ? "the 5b family (DPM, trailing timesteps)" : "CogVideoX-2b")}");
        }
        if (s.DynamicCfg is null)
        {
            var kind = scheduler ?? SchedulerSelection.DefaultKind(model.Transformer);
            notes.Add($"dynamic CFG: {(SchedulerRegistry.Get(kind).DynamicCfgByDefault ? "on — THUDM's demo uses it with DPM" : "off — THUDM's demo uses it with DPM only")}");
        }
        return new RenderPlan
        {
            Settings = s,
            Model = model,
            Backend = backend,
            Options = options,
            Request = ToRequest(s, scheduler) with
            {
                Image = s.Image is null ? null : InputFiles.LoadImage(s.Image),
                Video = s.Video is null ? null : InputFiles.LoadVideo(s.Video, s.Frames),
            },
            Notes = notes,
            Warnings = warnings,
        };
    }

    private static GenerationRequest ToRequest(GenerationSettings s, SchedulerKind? scheduler) => new()
    {
        Prompt = s.Prompt,
        NegativePrompt = s.NegativePrompt,
        Steps = s.Steps,
        Guidance = s.Guidance,
        Frames = s.Frames,
        Height = s.Height,
        Width = s.Width,
        Seed = s.Seed,
        Scheduler = scheduler,
        DynamicCfg = s.DynamicCfg,
        Lora = Models.Lora.LoraSpec.ParseList(s.Lora),
        Strength = s.Strength,
        Cache = StepCaching.Parse(s.Cache),
        CacheThreshold = s.CacheThreshold,
        ExactSteps = s.ExactSteps,
        Attention = GpuOptions.ParseAttentionMode(s.Attention),
        Linears = LinearModes.Parse(s.Linear),
    };

    /// <summary>The input files and strength, as far as they can be checked without the model (it decides which input it takes).</summary>
    private static void CheckInputs(GenerationSettings s)
    {
        if (s.Image is not null && s.Video is not null)
            throw new CogVideoXException("both an input image and an input video given; use --image FILE (image-to-video, model 5b-i2v) or --video FILE (video-to-video, model 2b or 5b)",
                GenerationRules.UsageExitCode);
        if (s.Image is not null) InputFiles.CheckReadable(s.Image, "image");
        if (s.Video is not null) InputFiles.CheckReadable(s.Video, "video");
        if (s.Strength is { } strength)
        {
            if (!(strength > 0 && strength <= 1))
                throw new CogVideoXException($"strength: {strength.ToString("G", System.Globalization.CultureInfo.InvariantCulture)} is outside (0, 1]: it is the part of the schedule " +
                    "that runs on the noised input video (0.8 is diffusers' default; lower keeps more of the video)", GenerationRules.UsageExitCode);
            if (s.Video is null)
                throw new CogVideoXException("strength applies to video-to-video only; give --video FILE, or leave strength out", GenerationRules.UsageExitCode);
        }
    }

    /// <summary>Runs a parser whose errors are the user's to fix: they leave with the usage exit code.</summary>
    private static T Usage<T>(Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (CogVideoXException e) when (e.ExitCode != GenerationRules.UsageExitCode)
        {
            throw new CogVideoXException(e.Message, e, GenerationRules.UsageExitCode);
        }
    }

    /// <summary>"f32", "f16", "bf16" (and their usual spellings).</summary>
    public static DType ParseDType(string text)
    {
        if (DTypes.TryParse(text, out var dtype) && dtype.IsFloat()) return dtype;
        throw new CogVideoXException(
            $"unknown dtype \"{text}\"; use f32 (float32, the CPU reference), f16 (float16, CogVideoX-2b on a GPU) or bf16 (bfloat16, CogVideoX-5b on a GPU)",
            GenerationRules.UsageExitCode);
    }

    /// <summary>auto, full, balanced or low (errors name the modes and what each does).</summary>
    private static IMemoryPolicy ParseMemory(string memory) => MemoryPolicies.Parse(memory ?? "");
}
