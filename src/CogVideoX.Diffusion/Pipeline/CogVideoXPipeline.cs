using System.Diagnostics;
using CogVideoX.Engine;
using CogVideoX.Models.Text;
using CogVideoX.Models.Transformer;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>
/// Text to video with a CogVideoX 1.0 model, as diffusers' <c>CogVideoXPipeline</c> does it: encode the prompt (and
/// the negative prompt under guidance), draw the latents from a CPU generator seeded as torch's, denoise them with the
/// transformer under classifier-free (optionally dynamic) guidance and the scheduler, decode them with the VAE and map
/// the video to [0, 1]. The components are loaded when a stage first needs them; the memory policy says whether they
/// stay loaded for the next video. One run at a time per instance.
/// </summary>
public sealed class CogVideoXPipeline : IDisposable
{
    /// <summary>The model_index.json class of text-to-video CogVideoX folders.</summary>
    public const string PipelineClass = "CogVideoXPipeline";

    private readonly object _gate = new();
    private T5Tokenizer? _tokenizer;
    private T5Encoder? _textEncoder;
    private CogVideoXTransformer? _transformer;
    private CogVideoXVae? _vae;
    private bool _disposed;

    /// <summary>Prepares a pipeline over a model folder; reads its configs and checks they fit together (no weights yet).</summary>
    public CogVideoXPipeline(ModelFolder model, PipelineOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        Model = model;
        Options = options ?? new PipelineOptions();
        Backend = Options.Backend ?? CpuBackend.Instance;
        if (!Options.DType.IsFloat())
            throw new CogVideoXException($"the pipeline computes in a float dtype (F32, F16, BF16), not {Options.DType.Name()}");
        if (Options.MaxSequenceLength < 1)
            throw new CogVideoXException($"the maximum prompt length must be at least 1 token, got {Options.MaxSequenceLength}");
        CheckModel(model);
    }

    public ModelFolder Model { get; }

    public PipelineOptions Options { get; }

    public IBackend Backend { get; }

    /// <summary>Frames per latent frame (the VAE's temporal compression, 4).</summary>
    public int TemporalCompression => Model.Vae.TemporalCompressionRatio;

    /// <summary>Height and width must be multiples of this: the VAE's spatial compression times the patch size (16).</summary>
    public int SizeMultiple => Model.Vae.SpatialCompressionRatio * Model.Transformer.PatchSize;

    /// <summary>The model's tokenizer (read on first use; it holds no weights).</summary>
    public T5Tokenizer Tokenizer => _tokenizer ??= T5Tokenizer.Load(Model.ComponentPath(PipelineComponents.Tokenizer));

    /// <summary>Whether a component's weights are loaded now.</summary>
    public bool IsLoaded(ModelComponent component) => component switch
    {
        ModelComponent.TextEncoder => _textEncoder is not null,
        ModelComponent.Transformer => _transformer is not null,
        ModelComponent.Vae => _vae is not null,
        _ => throw new ArgumentOutOfRangeException(nameof(component), component, null),
    };

    /// <summary>Releases a component's weights now (it is loaded again when next needed).</summary>
    public void Release(ModelComponent component)
    {
        switch (component)
        {
            case ModelComponent.TextEncoder:
                _textEncoder?.Dispose();
                _textEncoder = null;
                break;
            case ModelComponent.Transformer:
                _transformer?.Dispose();
                _transformer = null;
                break;
            case ModelComponent.Vae:
                _vae?.Dispose();
                _vae = null;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(component), component, null);
        }
    }

    /// <summary>
    /// The request as this model will run it — scheduler, timesteps, dynamic CFG, latent shape, decoded frames — and
    /// the warnings (a prompt cut at the token limit among them); throws a <see cref="CogVideoXException"/> for a
    /// request the model cannot run. Loads no weights, only the tokenizer.
    /// </summary>
    public (ResolvedGeneration Resolved, IReadOnlyList<string> Warnings) Resolve(GenerationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.Prompt);
        var warnings = GenerationRules.Check(request, TemporalCompression, SizeMultiple).ToList();
        var choice = SchedulerSelection.Resolve(Model.Scheduler, Model.Transformer, request.Scheduler);
        var scheduler = choice.Create();
        scheduler.SetTimesteps(request.Steps);
        bool dynamic = request.DynamicCfg ?? choice.Kind == SchedulerKind.Dpm;
        bool cfg = Guidance.IsEnabled(request.Guidance);
        if (Tokenizer.Tokenize(request.Prompt, Options.MaxSequenceLength).TruncationMessage is { } cut)
            warnings.Add(cut);
        if (cfg && request.NegativePrompt is { } negativePrompt
            && Tokenizer.Tokenize(negativePrompt, Options.MaxSequenceLength).TruncationMessage is { } negativeCut)
            warnings.Add("negative prompt: " + negativeCut);
        if (request.DynamicCfg == true && !cfg)
            warnings.Add($"dynamic CFG has no effect at guidance {request.Guidance}: guidance ≤ 1 runs without classifier-free guidance.");
        else if (request.DynamicCfg == true && choice.Kind == SchedulerKind.Ddim)
            warnings.Add("dynamic CFG is meant for the DPM scheduler (THUDM's demo turns it off for DDIM); the result may be worse than with a fixed scale.");
        int spatial = Model.Vae.SpatialCompressionRatio;
        int latentFrames = GenerationRules.LatentFrames(request.Frames, TemporalCompression);
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
            MemoryPolicy = Options.MemoryPolicy.Name,
            LatentShape = [1, latentFrames, Model.Transformer.InChannels, request.Height / spatial, request.Width / spatial],
            DecodedFrames = GenerationRules.DecodedFrames(latentFrames, TemporalCompression),
            VaeTiling = Options.VaeTiling is not null,
        };
        return (resolved, warnings);
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
        var (resolved, planWarnings) = Resolve(request);
        cancellation.ThrowIfCancellationRequested();
        var meter = PeakMemoryMeter.Start(Backend);
        var clock = Stopwatch.StartNew();
        var timings = new PipelineTimings();
        var policy = Options.MemoryPolicy;
        bool cfg = resolved.ClassifierFreeGuidance;

        // Tokens: the prompt, and under guidance the negative prompt (diffusers encodes None as "").
        var prompt = Tokenizer.Tokenize(request.Prompt, Options.MaxSequenceLength);
        var negative = cfg ? Tokenizer.Tokenize(request.NegativePrompt ?? "", Options.MaxSequenceLength) : null;

        Tensor? embeddings = null;
        Tensor? latents = null;
        try
        {
            // 1. Text encoder → [1 or 2, L, d_model], negative first.
            var encoder = AcquireTextEncoder(progress, clock, ref timings);
            var stage = Begin(PipelineStages.TextEncoder, progress, clock);
            using (var positive = encoder.Encode(prompt))
            {
                observer?.Tensor("prompt_embeds", positive);
                if (negative is null)
                {
                    embeddings = positive.Alias();
                }
                else
                {
                    using var negativeEmbeds = encoder.Encode(negative);
                    observer?.Tensor("negative_embeds", negativeEmbeds);
                    embeddings = Ops.Concat(0, negativeEmbeds, positive);
                }
            }
            timings = timings with { TextEncoder = End(PipelineStages.TextEncoder, stage, progress, clock) };
            if (!policy.KeepAfterUse(ModelComponent.TextEncoder)) Release(ModelComponent.TextEncoder);
            cancellation.ThrowIfCancellationRequested();

            // 2. Latents: the generator's first draw, times the scheduler's initial sigma, in the compute dtype.
            var shape = resolved.LatentShape.ToArray();
            var generator = new TorchGenerator(request.Seed);
            var scheduler = SchedulerSelection.Resolve(Model.Scheduler, Model.Transformer, resolved.Scheduler).Create();
            scheduler.SetTimesteps(request.Steps);
            var initial = generator.Randn(shape);
            if (scheduler.InitNoiseSigma != 1f)
                for (int i = 0; i < initial.Length; i++) initial[i] *= scheduler.InitNoiseSigma;
            latents = Tensor.FromArray(initial, shape, Backend, Options.DType);
            observer?.Tensor("initial_latents", latents);

            // 3. Denoising loop.
            var transformer = AcquireTransformer(progress, clock, ref timings);
            stage = Begin(PipelineStages.Denoise, progress, clock, request.Steps);
            var stepTimes = new List<TimeSpan>(request.Steps);
            using (var rotary = transformer.Config.UseRotaryPositionalEmbeddings
                       ? transformer.BuildRotaryTables(shape[1], shape[3], shape[4])
                       : null)
            {
                for (int i = 0; i < scheduler.Timesteps.Count; i++)
                {
                    cancellation.ThrowIfCancellationRequested();
                    var stepClock = Stopwatch.StartNew();
                    int t = scheduler.Timesteps[i];
                    var next = Step(transformer, scheduler, generator, request, resolved, rotary, embeddings, latents, i, t, observer);
                    latents.Dispose();
                    latents = next;
                    observer?.Tensor($"latents_after_step{i}", latents);
                    Backend.Synchronize();
                    stepTimes.Add(stepClock.Elapsed);
                    progress?.Report(new PipelineProgress(PipelineStages.Denoise, i + 1, request.Steps, stage.Elapsed, clock.Elapsed, stepClock.Elapsed, t));
                }
            }
            timings = timings with { Denoise = stage.Elapsed, Steps = stepTimes };
            embeddings.Dispose();
            embeddings = null;
            if (!policy.KeepAfterUse(ModelComponent.Transformer)) Release(ModelComponent.Transformer);
            cancellation.ThrowIfCancellationRequested();

            // 4. Decode: [B, F, C, h, w] → [B, C, F, h, w] / scaling_factor → VAE → (x / 2 + 0.5) clamped to [0, 1].
            var vae = AcquireVae(progress, clock, ref timings);
            stage = Begin(PipelineStages.VaeDecode, progress, clock);
            float[] frames;
            int frameCount, height, width;
            using (var permuted = latents.Permute(0, 2, 1, 3, 4))
            using (var z = permuted.Scale((float)(1.0 / vae.Config.ScalingFactor)))
            {
                observer?.Tensor("vae_input", z);
                using var decoded = vae.Decode(z, new VaeDecodeOptions { Tiling = Options.VaeTiling, Slicing = Options.VaeSlicing });
                observer?.Tensor("vae_decoded", decoded);
                using var shifted = decoded.Affine(0.5f, 0.5f);
                using var clamped = shifted.Clamp(0f, 1f);
                using var first = clamped.Select(0, 0);
                using var video = first.Permute(1, 0, 2, 3);
                frames = video.ToFloatArray();
                (frameCount, height, width) = (video.Dim(0), video.Dim(2), video.Dim(3));
            }
            timings = timings with { VaeDecode = End(PipelineStages.VaeDecode, stage, progress, clock) };
            if (!policy.KeepAfterUse(ModelComponent.Vae)) Release(ModelComponent.Vae);

            var finalLatents = latents.ToFloatArray();
            timings = timings with { Total = clock.Elapsed };
            return new GenerationResult(frames, frameCount, height, width, finalLatents, shape, timings,
                meter.PeakBytes, meter.Kind, resolved with { DecodedFrames = frameCount }, prompt, negative, planWarnings);
        }
        finally
        {
            embeddings?.Dispose();
            latents?.Dispose();
            // A failed or cancelled run releases what the policy would have released after its stage.
            foreach (var component in new[] { ModelComponent.TextEncoder, ModelComponent.Transformer, ModelComponent.Vae })
                if (!policy.KeepAfterUse(component)) Release(component);
        }
    }

    /// <summary>
    /// One denoising step: the transformer on [latents; latents] under guidance (the latents alone without), the
    /// prediction in float32, guided, then the scheduler's update; the next latents come back in the compute dtype.
    /// </summary>
    private Tensor Step(CogVideoXTransformer transformer, IScheduler scheduler, TorchGenerator generator,
        GenerationRequest request, ResolvedGeneration resolved, RotaryTables? rotary, Tensor embeddings, Tensor latents,
        int index, int timestep, IPipelineObserver? observer)
    {
        bool cfg = resolved.ClassifierFreeGuidance;
        using var input = cfg ? Ops.Concat(0, latents, latents) : latents.Alias();
        using var prediction = transformer.Forward(input, embeddings, [timestep], rotary);
        observer?.Tensor($"transformer_out_step{index}", prediction);
        double scale = Guidance.ScaleAt(request.Guidance, resolved.DynamicCfg, index, timestep, request.Steps, resolved.DynamicCfgSchedule);
        using var guided = cfg ? Guidance.Apply(prediction, scale) : prediction.To(DType.F32);
        using var updated = scheduler.Step(index, guided, latents, generator);
        return updated.To(Options.DType);
    }

    private T5Encoder AcquireTextEncoder(IProgress<PipelineProgress>? progress, Stopwatch clock, ref PipelineTimings timings) =>
        _textEncoder ??= Load(ModelComponent.TextEncoder, progress, clock, ref timings,
            () => T5Encoder.Load(Model.ComponentPath(PipelineComponents.TextEncoder), Backend, Options.DType));

    private CogVideoXTransformer AcquireTransformer(IProgress<PipelineProgress>? progress, Stopwatch clock, ref PipelineTimings timings) =>
        _transformer ??= Load(ModelComponent.Transformer, progress, clock, ref timings,
            () => CogVideoXTransformer.Load(Model.ComponentPath(PipelineComponents.Transformer), Backend, Options.DType));

    private CogVideoXVae AcquireVae(IProgress<PipelineProgress>? progress, Stopwatch clock, ref PipelineTimings timings) =>
        _vae ??= Load(ModelComponent.Vae, progress, clock, ref timings,
            () => CogVideoXVae.Load(Model.ComponentPath(PipelineComponents.Vae), Backend, Options.DType));

    private T Load<T>(ModelComponent component, IProgress<PipelineProgress>? progress, Stopwatch clock, ref PipelineTimings timings, Func<T> load)
    {
        string name = PipelineStages.Load(component);
        var stage = Begin(name, progress, clock);
        var loaded = load();
        var elapsed = End(name, stage, progress, clock);
        timings = component switch
        {
            ModelComponent.TextEncoder => timings with { LoadTextEncoder = timings.LoadTextEncoder + elapsed },
            ModelComponent.Transformer => timings with { LoadTransformer = timings.LoadTransformer + elapsed },
            _ => timings with { LoadVae = timings.LoadVae + elapsed },
        };
        return loaded;
    }

    private static Stopwatch Begin(string stage, IProgress<PipelineProgress>? progress, Stopwatch clock, int totalSteps = 1)
    {
        progress?.Report(new PipelineProgress(stage, 0, totalSteps, TimeSpan.Zero, clock.Elapsed, TimeSpan.Zero, -1));
        return Stopwatch.StartNew();
    }

    private TimeSpan End(string stage, Stopwatch watch, IProgress<PipelineProgress>? progress, Stopwatch clock)
    {
        Backend.Synchronize();
        var elapsed = watch.Elapsed;
        progress?.Report(new PipelineProgress(stage, 1, 1, elapsed, clock.Elapsed, elapsed, -1));
        return elapsed;
    }

    /// <summary>Refuses folders this pipeline cannot run, before anything is loaded.</summary>
    private static void CheckModel(ModelFolder model)
    {
        if (model.PipelineClass != PipelineClass)
            throw new CogVideoXException(
                $"{model.Path}: model_index.json names {model.PipelineClass}; this pipeline runs text-to-video CogVideoX models " +
                $"({PipelineClass}: THUDM/CogVideoX-2b, THUDM/CogVideoX-5b)");
        foreach (var component in new[] { PipelineComponents.Tokenizer, PipelineComponents.TextEncoder, PipelineComponents.Transformer, PipelineComponents.Vae, PipelineComponents.Scheduler })
            if (!model.HasComponent(component))
                throw new WeightsException($"{model.ComponentPath(component)}: component folder not found; a CogVideoX pipeline folder has tokenizer/, text_encoder/, transformer/, vae/ and scheduler/");
        var transformer = model.Transformer;
        var vae = model.Vae;
        var text = model.TextEncoder;
        if (transformer.InChannels != vae.LatentChannels || transformer.OutputChannels != vae.LatentChannels)
            throw new WeightsException(
                $"{model.Path}: the transformer takes {transformer.InChannels} latent channels and returns {transformer.OutputChannels}, " +
                $"but the VAE's latents have {vae.LatentChannels}; the components come from different models");
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
            Release(ModelComponent.TextEncoder);
            Release(ModelComponent.Transformer);
            Release(ModelComponent.Vae);
        }
    }
}
