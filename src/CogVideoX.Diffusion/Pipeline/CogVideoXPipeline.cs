using CogVideoX.Engine;
using CogVideoX.Models.Text;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>
/// A CogVideoX pipeline (1.0 and 1.5), as diffusers' CogVideoX pipelines run it: encode the prompt (and the negative
/// prompt under guidance), let the task's conditioning prepare the latents (text-to-video: a CPU generator seeded as
/// torch's; CogVideoX 1.5 draws them padded in front to whole temporal patches), denoise them in the shared
/// <see cref="DenoisingLoop"/>, trim the padding, decode them with the VAE and map the video to [0, 1]. Which
/// task runs follows the folder's model_index.json class (<see cref="PipelineTasks"/>); where the components live —
/// memory modes, loading, out-of-memory advice — is the <see cref="ComponentManager"/>'s business. A device
/// out-of-memory error becomes a <see cref="CogVideoXException"/> naming the mode that fits. One run at a time per
/// instance.
/// </summary>
public sealed class CogVideoXPipeline : IDisposable
{
    /// <summary>The model_index.json class of text-to-video CogVideoX folders.</summary>
    public const string PipelineClass = "CogVideoXPipeline";

    private readonly object _gate = new();
    private readonly ComponentManager _components;
    private bool _disposed;

    /// <summary>
    /// Prepares a pipeline over a model folder; reads its configs and checks they fit together (no weights yet). The
    /// task is the one the folder's pipeline class names unless <paramref name="task"/> gives another for that class.
    /// </summary>
    public CogVideoXPipeline(ModelFolder model, PipelineOptions? options = null, PipelineTask? task = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        Model = model;
        Options = options ?? new PipelineOptions();
        Backend = Options.Backend ?? CpuBackend.Instance;
        if (!Options.DType.IsFloat())
            throw new CogVideoXException($"the pipeline computes in a float dtype (F32, F16, BF16), not {Options.DType.Name()}");
        if (Options.MaxSequenceLength < 1)
            throw new CogVideoXException($"the maximum prompt length must be at least 1 token, got {Options.MaxSequenceLength}");
        Task = task ?? PipelineTasks.ForModel(model);
        CheckModel(model, Task);
        _components = new ComponentManager(model, Options, Backend);
    }

    public ModelFolder Model { get; }

    public PipelineOptions Options { get; }

    public IBackend Backend { get; }

    /// <summary>What this pipeline does (text-to-video for the published 2b and 5b folders).</summary>
    public PipelineTask Task { get; }

    /// <summary>Where the components live and when they load.</summary>
    public ComponentManager Components => _components;

    /// <summary>How weights stream from host memory in the balanced and low modes (null: they load whole instead).</summary>
    public IWeightStreaming? Streaming => _components.Streaming;

    /// <summary>Bytes of block weights held in host memory for streaming (kept from one video to the next).</summary>
    public long HostBlockBytes => _components.HostBlockBytes;

    /// <summary>Frames per latent frame (the VAE's temporal compression, 4).</summary>
    public int TemporalCompression => Model.Vae.TemporalCompressionRatio;

    /// <summary>Height and width must be multiples of this: the VAE's spatial compression times the patch size (16).</summary>
    public int SizeMultiple => Model.Vae.SpatialCompressionRatio * Model.Transformer.PatchSize;

    /// <summary>The model generation's defaults and limits (CogVideoX 1.0 or 1.5).</summary>
    public ModelDefaults Defaults => ModelDefaults.For(Model.Transformer);

    /// <summary>The model's tokenizer (read on first use; it holds no weights).</summary>
    public T5Tokenizer Tokenizer => _components.Tokenizer;

    /// <summary>Whether a component's weights are loaded now.</summary>
    public bool IsLoaded(ModelComponent component) => _components.IsLoaded(component);

    /// <summary>Releases a component's device weights now (it is loaded again when next needed; host images stay).</summary>
    public void Release(ModelComponent component) => _components.Release(component);

    /// <summary>
    /// The request as this model will run it — scheduler, timesteps, dynamic CFG, latent shape, decoded frames — and
    /// the warnings (a prompt cut at the token limit among them); throws a <see cref="CogVideoXException"/> for a
    /// request the model cannot run. Loads no weights, only the tokenizer.
    /// </summary>
    public (ResolvedGeneration Resolved, IReadOnlyList<string> Warnings) Resolve(GenerationRequest request)
    {
        var (resolved, warnings, _) = Plan(request);
        return (resolved, warnings);
    }

    /// <summary><see cref="Resolve"/>, with the scheduler it chose (so a run resolves it once).</summary>
    private (ResolvedGeneration Resolved, List<string> Warnings, SchedulerChoice Scheduler) Plan(GenerationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.Prompt);
        var warnings = GenerationRules.Check(request, TemporalCompression, SizeMultiple, Defaults).ToList();
        var task = TaskFor(request);
        warnings.AddRange(InputRules.Check(request, Task, task, Model));
        var choice = SchedulerSelection.Resolve(Model.Scheduler, Model.Transformer, request.Scheduler);
        using var scheduler = choice.Create();
        SetSchedule(scheduler, request, task);
        bool dynamic = request.DynamicCfg ?? choice.Info.DynamicCfgByDefault;
        bool cfg = Guidance.IsEnabled(request.Guidance);
        if (Tokenizer.Tokenize(request.Prompt, Options.MaxSequenceLength).TruncationMessage is { } cut)
            warnings.Add(cut);
        if (cfg && request.NegativePrompt is { } negativePrompt
            && Tokenizer.Tokenize(negativePrompt, Options.MaxSequenceLength).TruncationMessage is { } negativeCut)
            warnings.Add("negative prompt: " + negativeCut);
        if (request.DynamicCfg == true && !cfg)
            warnings.Add($"dynamic CFG has no effect at guidance {request.Guidance}: guidance ≤ 1 runs without classifier-free guidance.");
        else if (request.DynamicCfg == true && !choice.Info.DynamicCfgByDefault)
            warnings.Add("dynamic CFG is meant for the DPM scheduler (THUDM's demo turns it off for DDIM); the result may be worse than with a fixed scale.");
        int spatial = Model.Vae.SpatialCompressionRatio;
        int latentFrames = GenerationRules.LatentFrames(request.Frames, TemporalCompression);
        // CogVideoX 1.5: padded in front to whole temporal patches while denoising (diffusers' additional_frames).
        int padding = Defaults.LatentPadding(latentFrames);
        warnings.AddRange(StepCaching.Check(request).Where(w => request.Linears == Models.Transformer.LinearMode.Exact || !w.StartsWith("exact steps has no effect", StringComparison.Ordinal)));
        warnings.AddRange(LinearModes.Check(request, Backend));
        var memory = _components.ResolveMemory(request, cfg);
        warnings.AddRange(memory.Warnings);
        var lora = _components.UseLora(request.Lora ?? []);
        _components.UseLinears(request);
        var resolved = new ResolvedGeneration
        {
            Scheduler = choice.Kind,
            TimestepSpacing = choice.Config.TimestepSpacing,
            Timesteps = scheduler.Timesteps.ToArray(),
            DynamicCfg = dynamic,
            DynamicCfgSchedule = request.DynamicCfgSchedule,
            ClassifierFreeGuidance = cfg,
            DType = Options.DType,
            Device = Backend.Device.ToString(),
            MemoryPolicy = memory.Policy.Name,
            MemoryNotes = memory.Notes,
            MemoryEstimate = memory.Estimate,
            LatentShape = [1, latentFrames + padding, Model.Vae.LatentChannels, request.Height / spatial, request.Width / spatial],
            DecodedFrames = GenerationRules.DecodedFrames(latentFrames, TemporalCompression),
            VaeTiling = _components.VaeTilingFor(memory.Policy) is not null,
            Lora = lora,
            Task = task.Name,
            Strength = task == PipelineTasks.VideoToVideo ? request.Strength ?? VideoToVideoConditioning.DefaultStrength : null,
            Cache = StepCaching.Describe(request, Model.Transformer),
            Attention = StepCaching.AttentionName(request.Attention),
            ExactSteps = LinearModes.ResolvedExactSteps(request),
            Linear = LinearModes.Name(request.Linears),
        };
        return (resolved, warnings, choice);
    }

    /// <summary>
    /// The task a request runs: the model's, except that a text-to-video model given a video restyles it
    /// (video-to-video runs on the text-to-video weights, as diffusers' pipeline does).
    /// </summary>
    public PipelineTask TaskFor(GenerationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return Task == PipelineTasks.TextToVideo && request.Video is not null ? PipelineTasks.VideoToVideo : Task;
    }

    /// <summary>The run's timesteps: the full schedule, or for video-to-video its tail that strength keeps.</summary>
    private static void SetSchedule(IScheduler scheduler, GenerationRequest request, PipelineTask task)
    {
        scheduler.SetTimesteps(request.Steps);
        if (task == PipelineTasks.VideoToVideo)
            scheduler.SkipSteps(VideoToVideoConditioning.SkippedSteps(request.Steps, request.Strength ?? VideoToVideoConditioning.DefaultStrength));
    }

    /// <summary>
    /// Generates one video. <paramref name="progress"/> hears each stage start and end and every denoising step;
    /// <paramref name="cancellation"/> is checked between stages and steps (an <see cref="OperationCanceledException"/>
    /// leaves the pipeline usable); <paramref name="observer"/> sees the intermediate tensors.
    /// </summary>
    public GenerationResult Generate(GenerationRequest request, IProgress<PipelineProgress>? progress = null,
        CancellationToken cancellation = default, IPipelineObserver? observer = null)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return Run(request, progress, cancellation, observer);
        }
    }

    private GenerationResult Run(GenerationRequest request, IProgress<PipelineProgress>? progress,
        CancellationToken cancellation, IPipelineObserver? observer)
    {
        var (resolved, warnings, choice) = Plan(request);
        cancellation.ThrowIfCancellationRequested();
        using var loading = LoadCancellation.Use(cancellation); // loads stop between tensors, not after the model
        var policy = MemoryPolicies.IsAuto(Options.MemoryPolicy) ? MemoryPolicies.Parse(resolved.MemoryPolicy) : Options.MemoryPolicy;
        _components.SwitchMode(policy);
        var meter = PeakMemoryMeter.Start(Backend);
        var clock = new StageClock(Backend, progress);
        bool cfg = resolved.ClassifierFreeGuidance;
        string stage = PipelineStages.LoadTextEncoder;

        // Tokens: the prompt, and under guidance the negative prompt (diffusers encodes None as "").
        var prompt = Tokenizer.Tokenize(request.Prompt, Options.MaxSequenceLength);
        var negative = cfg ? Tokenizer.Tokenize(request.NegativePrompt ?? "", Options.MaxSequenceLength) : null;

        Tensor? embeddings = null;
        Tensor? latents = null;
        IScheduler? scheduler = null;
        VideoConditioning? conditioning = null;
        void DisposeRunState()
        {
            embeddings?.Dispose();
            embeddings = null;
            latents?.Dispose();
            latents = null;
            scheduler?.Dispose();
            conditioning?.Dispose();
        }
        try
        {
            // 1. Text encoder → [1 or 2, L, d_model], negative first; both prompts in one pass through the blocks.
            var encoder = _components.TextEncoder(policy, clock, warnings);
            stage = PipelineStages.TextEncoder;
            embeddings = Encode(encoder, prompt, negative, clock, observer, cancellation);
            _components.AfterStage(ModelComponent.TextEncoder, policy);
            cancellation.ThrowIfCancellationRequested();

            // 2. Latents, as the task prepares them, from the generator the scheduler's noise continues.
            var generator = new TorchGenerator(request.Seed);
            scheduler = choice.Create();
            var task = TaskFor(request);
            SetSchedule(scheduler, request, task);
            conditioning = task.CreateConditioning(request);
            stage = task == PipelineTasks.TextToVideo ? stage : PipelineStages.VaeEncode;
            var context = new ConditioningContext(Model, Backend, Options.DType, request, resolved.LatentShape, _components, policy, clock,
                observer, cancellation);
            latents = conditioning.PrepareLatents(context, generator, scheduler);
            observer?.Tensor("initial_latents", latents);

            // 3. Denoising loop.
            stage = PipelineStages.LoadTransformer;
            var transformer = _components.Transformer(policy, clock, warnings);
            stage = PipelineStages.Denoise;
            var inputs = new DenoisingInputs(transformer, scheduler, generator, conditioning, embeddings, request, resolved, Options.DType);
            var reusedSteps = new List<int>();
            var denoised = DenoisingLoop.Run(inputs, latents, clock, cancellation, observer, reusedSteps);
            resolved = resolved with { ReusedSteps = reusedSteps };
            latents = denoised;
            embeddings.Dispose();
            embeddings = null;
            _components.AfterStage(ModelComponent.Transformer, policy);
            cancellation.ThrowIfCancellationRequested();

            // 4. Decode: [B, F, C, h, w] → [B, C, F, h, w] / scaling_factor → VAE → (x / 2 + 0.5) clamped to [0, 1].
            stage = PipelineStages.LoadVae;
            var vae = _components.Vae(clock);
            stage = PipelineStages.VaeDecode;
            var (frames, frameCount, height, width) = Decode(vae, latents, Defaults.LatentPadding(GenerationRules.LatentFrames(request.Frames, TemporalCompression)), policy, clock, observer, cancellation);
            _components.AfterStage(ModelComponent.Vae, policy);

            var finalLatents = latents.ToFloatArray();
            var timings = clock.Timings with { Total = clock.Elapsed };
            return new GenerationResult(frames, frameCount, height, width, finalLatents, resolved.LatentShape.ToArray(), timings,
                meter.PeakBytes, meter.Kind, resolved with { DecodedFrames = frameCount }, prompt, negative, warnings);
        }
        catch (Exception e) when (e is IDeviceOutOfMemory oom)
        {
            // Nothing of this run is kept: the memory goes back, so the process can go on (another mode, another job).
            DisposeRunState();
            _components.ReleaseAfterOutOfMemory();
            throw new CogVideoXException(_components.OutOfMemoryMessage(oom, policy, stage, request, cfg), e);
        }
        finally
        {
            DisposeRunState();
            // A failed or cancelled run releases what the policy would have released after its stage.
            _components.AfterRun(policy);
        }
    }

    /// <summary>The text encoder's stage: the embeddings [positive] or [negative; positive] (caller disposes).</summary>
    private static Tensor Encode(T5Encoder encoder, TokenizedPrompt prompt, TokenizedPrompt? negative, StageClock clock, IPipelineObserver? observer,
        CancellationToken cancellation)
    {
        var watch = clock.Begin(PipelineStages.TextEncoder);
        var encoded = encoder.Encode(negative is null ? [prompt] : [prompt, negative], cancellation);
        Tensor embeddings;
        using (var positive = encoded[0])
        {
            observer?.Tensor("prompt_embeds", positive);
            if (negative is null)
            {
                embeddings = positive.Alias();
            }
            else
            {
                using var negativeEmbeds = encoded[1];
                observer?.Tensor("negative_embeds", negativeEmbeds);
                embeddings = Ops.Concat(0, negativeEmbeds, positive);
            }
        }
        clock.Timings = clock.Timings with { TextEncoder = clock.End(PipelineStages.TextEncoder, watch) };
        return embeddings;
    }

    /// <summary>
    /// The VAE's stage: the video [F, 3, H, W] in [0, 1] on the host, from the latents less the
    /// <paramref name="padding"/> frames in front (CogVideoX 1.5's padding to whole temporal patches, which diffusers
    /// discards before decoding).
    /// </summary>
    private (float[] Frames, int Count, int Height, int Width) Decode(CogVideoXVae vae, Tensor latents, int padding, IMemoryPolicy policy, StageClock clock,
        IPipelineObserver? observer, CancellationToken cancellation)
    {
        var watch = clock.Begin(PipelineStages.VaeDecode);
        float[] frames;
        int count, height, width;
        using (var trimmed = latents.Narrow(1, padding, latents.Dim(1) - padding))
        using (var permuted = trimmed.Permute(0, 2, 1, 3, 4))
        using (var z = permuted.Scale((float)(1.0 / vae.Config.ScalingFactor)))
        {
            observer?.Tensor("vae_input", z);
            using var decoded = vae.Decode(z, new VaeDecodeOptions
            {
                Tiling = _components.VaeTilingFor(policy),
                Slicing = Options.VaeSlicing,
                Cancellation = cancellation,
                Progress = (done, total) => clock.Part(PipelineStages.VaeDecode, watch, done, total),
            });
            observer?.Tensor("vae_decoded", decoded);
            NonFiniteCheck.Frames(decoded); // before the clamp, which on a GPU turns NaN into 0
            using var shifted = decoded.Affine(0.5f, 0.5f);
            using var clamped = shifted.Clamp(0f, 1f);
            using var first = clamped.Select(0, 0);
            using var video = first.Permute(1, 0, 2, 3);
            frames = video.ToFloatArray();
            (count, height, width) = (video.Dim(0), video.Dim(2), video.Dim(3));
        }
        clock.Timings = clock.Timings with { VaeDecode = clock.End(PipelineStages.VaeDecode, watch) };
        return (frames, count, height, width);
    }

    /// <summary>The classes model_index.json may name for each component (those this port implements).</summary>
    private static readonly (string Component, string[] Classes)[] ComponentClasses =
    [
        (PipelineComponents.Tokenizer, ["T5Tokenizer", "T5TokenizerFast"]),
        (PipelineComponents.TextEncoder, ["T5EncoderModel"]),
        (PipelineComponents.Transformer, ["CogVideoXTransformer3DModel"]),
        (PipelineComponents.Vae, ["AutoencoderKLCogVideoX"]),
        (PipelineComponents.Scheduler, ["CogVideoXDDIMScheduler", "CogVideoXDPMScheduler"]),
    ];

    /// <summary>Refuses folders this pipeline cannot run, before anything is loaded.</summary>
    private static void CheckModel(ModelFolder model, PipelineTask task)
    {
        if (model.PipelineClass != task.PipelineClass)
            throw new CogVideoXException(
                $"{model.Path}: model_index.json names {model.PipelineClass}; the {task.Name} pipeline runs {task.PipelineClass} models ({task.Models})");
        foreach (var component in new[] { PipelineComponents.Tokenizer, PipelineComponents.TextEncoder, PipelineComponents.Transformer, PipelineComponents.Vae, PipelineComponents.Scheduler })
            if (!model.HasComponent(component))
                throw new WeightsException($"{model.ComponentPath(component)}: component folder not found; a CogVideoX pipeline folder has tokenizer/, text_encoder/, transformer/, vae/ and scheduler/");
        foreach (var (component, classes) in ComponentClasses)
            model.Index.RequireClass(model.Path, component, classes);
        var transformer = model.Transformer;
        var vae = model.Vae;
        var text = model.TextEncoder;
        int inputs = vae.LatentChannels * task.TransformerInputGroups;
        if (transformer.InChannels != inputs || transformer.OutputChannels != vae.LatentChannels)
            throw new WeightsException(
                $"{model.Path}: the transformer takes {transformer.InChannels} latent channels and returns {transformer.OutputChannels}, " +
                $"but the VAE's latents have {vae.LatentChannels}{(task.TransformerInputGroups > 1 ? $" ({inputs} in for {task.Name})" : "")}; the components come from different models");
        if (transformer.TextEmbedDim != text.DModel)
            throw new WeightsException(
                $"{model.Path}: the transformer expects text embeddings of {transformer.TextEmbedDim} values, but the text encoder " +
                $"makes {text.DModel} (d_model); the components come from different models");
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _components.Dispose();
        }
    }
}
