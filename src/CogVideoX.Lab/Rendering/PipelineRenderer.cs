using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Media;

namespace CogVideoX.Lab;

/// <summary>A message for the user while a job is prepared or runs.</summary>
public readonly record struct RenderNote(bool IsWarning, string Text);

/// <summary>A finished render: what <see cref="IVideoRenderer"/> returns, plus the pipeline's own result and plan.</summary>
public sealed record PipelineRenderResult(RenderResult Render, GenerationResult Generation, RenderPlan Plan);

/// <summary>
/// CogVideoX itself as an <see cref="IVideoRenderer"/>: settings → <see cref="RenderPlan"/> → <see cref="CogVideoXPipeline"/>
/// → MP4 (H.264, yuv420p) and JSON sidecar, written and verified as a pair by <see cref="VideoOutput"/>. One instance keeps its pipeline — and, under the full memory policy, the loaded models — from job to job, so
/// a sweep over prompts, seeds or guidance loads the weights once; a job for another model, device, dtype, memory
/// mode or VAE tiling replaces it. <c>generate</c> and the experiment runner both render through this class.
/// </summary>
public sealed class PipelineRenderer : IVideoRenderer, IDisposable
{
    /// <summary>"ffmpeg version 5.1.9-…", without the copyright that follows on the same line.</summary>
    private static readonly Lazy<string?> s_ffmpegVersion = new(() => WithoutCopyright(Ffmpeg.Version()));

    private readonly object _gate = new();
    private readonly Func<string, string?>? _environment;
    private CogVideoXPipeline? _pipeline;
    private PipelineKey? _key;
    private bool _disposed;

    /// <param name="environment">Reads environment variables when resolving models in the Hugging Face cache (tests pass their own).</param>
    public PipelineRenderer(Func<string, string?>? environment = null) => _environment = environment;

    /// <summary>The tool's version, as recorded in sidecars.</summary>
    public static string ToolVersion =>
        typeof(PipelineRenderer).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";

    public RenderResult Render(VideoJob job, IProgress<RenderProgress>? progress, CancellationToken cancellation) =>
        Render(job, progress, cancellation, log: null).Render;

    /// <summary>
    /// Renders a job. <paramref name="log"/> hears how defaults were resolved and every warning before compute starts.
    /// Everything that can be checked without computing — the settings, ffmpeg, the model folder, the device — is
    /// checked first, so a mistake costs no time. On failure or cancellation neither file is left half-written.
    /// </summary>
    public PipelineRenderResult Render(VideoJob job, IProgress<RenderProgress>? progress, CancellationToken cancellation, Action<RenderNote>? log)
    {
        ArgumentNullException.ThrowIfNull(job);
        RenderPlan.Check(job.Settings);
        _ = Ffmpeg.FfmpegPath; // a missing ffmpeg is found before any weights are read
        VideoOutput.Check(job); // so is an output that cannot be written
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var plan = RenderPlan.Resolve(job.Settings, _environment);
            var pipeline = PipelineFor(plan);
            var (resolved, warnings) = pipeline.Resolve(plan.Request);
            if (log is not null)
            {
                foreach (var note in plan.Notes.Concat(resolved.MemoryNotes)) log(new RenderNote(false, note));
                foreach (var warning in plan.Warnings.Concat(warnings).Distinct(StringComparer.Ordinal)) log(new RenderNote(true, warning));
            }
            return Run(job, plan, pipeline, progress, cancellation);
        }
    }

    private PipelineRenderResult Run(VideoJob job, RenderPlan plan, CogVideoXPipeline pipeline, IProgress<RenderProgress>? progress, CancellationToken cancellation)
    {
        var total = Stopwatch.StartNew();
        var forward = progress is null ? null : new ForwardProgress(progress, total);
        var generation = pipeline.Generate(plan.Request, forward, cancellation);
        cancellation.ThrowIfCancellationRequested();

        var frames = new VideoFrames(generation.Frames, generation.FrameCount, generation.Height, generation.Width);
        progress?.Report(new RenderProgress(PipelineStages.EncodeVideo, 0, frames.Count, total.Elapsed));
        var sidecar = VideoOutput.Write(job, frames, video =>
        {
            var timings = generation.Timings.ToSeconds();
            timings[PipelineStages.EncodeVideo] = video.EncodeSeconds;
            timings["total"] = total.Elapsed.TotalSeconds;
            return new VideoSidecar
            {
                ToolVersion = ToolVersion,
                CreatedUtc = DateTimeOffset.UtcNow,
                Settings = job.Settings,
                Resolved = Resolved(plan, generation),
                ModelIdentity = plan.Model.Identity,
                WeightsChecksum = plan.Model.WeightsChecksum ?? "",
                TimingsSeconds = timings,
                PeakMemoryBytes = generation.PeakMemoryBytes,
                PeakMemoryKind = generation.PeakMemoryKind,
                Device = plan.Backend.Device.ToString(),
                Software = Software(plan.Backend),
                TruncatedPromptText = generation.Prompt.TruncatedText,
                Lora = generation.Resolved.Lora.Count == 0 ? null
                    : generation.Resolved.Lora.Select(l => new SidecarLora { File = l.File, Sha256 = l.Sha256, Strength = l.Strength, Layers = l.Layers }).ToList(),
            };
        }, progress is null ? null : (done, all) => progress.Report(new RenderProgress(PipelineStages.EncodeVideo, done, all, total.Elapsed)));
        return new PipelineRenderResult(new RenderResult(sidecar, frames), generation, plan);
    }

    /// <summary>The pipeline for a plan: the one held when it fits, else a new one (the old one's models released first).</summary>
    private CogVideoXPipeline PipelineFor(RenderPlan plan)
    {
        var key = new PipelineKey(plan.Model.Path, plan.Backend, plan.Options.DType, plan.Options.MemoryPolicy.Name, plan.Options.VaeTiling);
        if (_pipeline is not null && _key == key) return _pipeline;
        _pipeline?.Dispose();
        _pipeline = null;
        _pipeline = new CogVideoXPipeline(plan.Model, plan.Options);
        _key = key;
        return _pipeline;
    }

    private static Dictionary<string, string> Resolved(RenderPlan plan, GenerationResult generation)
    {
        var r = generation.Resolved;
        string I(int v) => v.ToString(CultureInfo.InvariantCulture);
        return WithInputs(new Dictionary<string, string>
        {
            ["model_folder"] = plan.Model.Path,
            ["scheduler"] = SchedulerRegistry.Name(r.Scheduler),
            ["timestep_spacing"] = r.TimestepSpacing,
            ["timesteps"] = string.Join(",", r.Timesteps.Select(I)),
            ["dynamic_cfg"] = r.DynamicCfg ? "true" : "false",
            ["dynamic_cfg_schedule"] = r.DynamicCfgSchedule == DynamicCfgSchedule.DiffusersParity ? "diffusers" : "step_index",
            ["classifier_free_guidance"] = r.ClassifierFreeGuidance ? "true" : "false",
            ["dtype"] = r.DType.Name(),
            ["device"] = r.Device,
            ["backend"] = plan.Backend.Name,
            ["memory"] = r.MemoryPolicy,
            ["memory_reason"] = string.Join("; ", r.MemoryNotes),
            ["vae_tiling"] = r.VaeTiling ? "true" : "false",
            ["latent_shape"] = string.Join("x", r.LatentShape.Select(I)),
            ["frames_decoded"] = I(r.DecodedFrames),
            ["prompt_tokens"] = I(generation.Prompt.TokenCount),
            ["max_sequence_length"] = I(generation.Prompt.MaxLength),
            ["seed_generator"] = "torch.Generator(cpu).manual_seed",
            ["task"] = r.Task,
            ["cache"] = r.Cache,
            ["exact_steps"] = I(r.ExactSteps),
            ["attention"] = r.Attention,
            ["linear"] = r.Linear,
            ["cache_reused_steps"] = string.Join(",", r.ReusedSteps.Select(I)),
        }, plan.Request, r);
    }

    /// <summary>The input files of image- and video-to-video (path and SHA-256), the strength, the frames read.</summary>
    private static Dictionary<string, string> WithInputs(Dictionary<string, string> resolved, GenerationRequest request, ResolvedGeneration r)
    {
        if (request.Image is { } image)
        {
            resolved["input_image"] = image.Path;
            resolved["input_image_sha256"] = image.Sha256;
            resolved["input_image_size"] = $"{image.Width}x{image.Height}";
        }
        if (request.Video is { } video)
        {
            resolved["input_video"] = video.Path;
            resolved["input_video_sha256"] = video.Sha256;
            resolved["input_video_size"] = $"{video.Width}x{video.Height}";
            resolved["input_video_frames_used"] = request.Frames.ToString(CultureInfo.InvariantCulture);
        }
        if (r.Strength is { } strength) resolved["strength"] = strength.ToString("R", CultureInfo.InvariantCulture);
        return resolved;
    }

    private static Dictionary<string, string> Software(IBackend backend)
    {
        var software = new Dictionary<string, string>
        {
            ["cogvideox"] = ToolVersion,
            [".net"] = RuntimeInformation.FrameworkDescription,
            ["os"] = $"{RuntimeInformation.OSDescription} {RuntimeInformation.OSArchitecture}",
            ["ffmpeg"] = s_ffmpegVersion.Value ?? "unknown",
            ["backend"] = backend.Name,
        };
        if (backend is IDeviceDescription described)
            foreach (var (key, value) in described.DescribeDevice())
                software["device_" + key] = value;
        return software;
    }

    private static string? WithoutCopyright(string? version)
    {
        int at = version?.IndexOf(" Copyright", StringComparison.Ordinal) ?? -1;
        return at > 0 ? version![..at] : version;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _pipeline?.Dispose();
            _pipeline = null;
        }
    }

    /// <summary>What a held pipeline fits; the backend instance stands for the device and its GPU options.</summary>
    private sealed record PipelineKey(string ModelPath, IBackend Backend, DType DType, string Memory, Models.Vae.VaeTiling? Tiling);

    /// <summary>The pipeline's progress in the renderer's terms, timed from the start of the render.</summary>
    private sealed class ForwardProgress(IProgress<RenderProgress> target, Stopwatch total) : IProgress<PipelineProgress>
    {
        public void Report(PipelineProgress value) =>
            target.Report(new RenderProgress(value.Stage, value.Step, value.TotalSteps, total.Elapsed) { StepReused = value.StepReused });
    }
}
