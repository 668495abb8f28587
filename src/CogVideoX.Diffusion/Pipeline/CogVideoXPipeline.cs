using System.Diagnostics;
using CogVideoX.Engine;
using CogVideoX.Models.Blocks;
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
/// stay loaded for the next video and whether their blocks stream from host memory (see <see cref="MemoryPolicies"/>);
/// <c>auto</c> is chosen per run from the free device memory. A device out-of-memory error becomes a
/// <see cref="CogVideoXException"/> naming the mode that fits. One run at a time per instance.
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
    private HostBlocks<T5Block>? _textEncoderHost;
    private HostBlocks<TransformerBlock>? _transformerHost;
    private string? _activeMode;
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

    /// <summary>How weights stream from host memory in the balanced and low modes (null: they load whole instead).</summary>
    public IWeightStreaming? Streaming => Options.WeightStreaming ?? Backend as IWeightStreaming;

    /// <summary>Bytes of block weights held in host memory for streaming (kept from one video to the next).</summary>
    public long HostBlockBytes => (_textEncoderHost?.Bytes ?? 0) + (_transformerHost?.Bytes ?? 0);

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

    /// <summary>Releases a component's device weights now (it is loaded again when next needed; host images stay).</summary>
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
        var memory = ResolveMemory(request, cfg);
        warnings.AddRange(memory.Warnings);
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
            LatentShape = [1, latentFrames, Model.Transformer.InChannels, request.Height / spatial, request.Width / spatial],
            DecodedFrames = GenerationRules.DecodedFrames(latentFrames, TemporalCompression),
            VaeTiling = VaeTilingFor(memory.Policy) is not null,
        };
        return (resolved, warnings);
    }

    /// <summary>The mode a run uses, why, and its estimate.</summary>
    private sealed record MemoryChoice(IMemoryPolicy Policy, IReadOnlyList<string> Notes, IReadOnlyList<string> Warnings, MemoryEstimate? Estimate);

    /// <summary>
    /// The requested mode, or for auto the fastest one whose estimated peak fits in the device memory this process can
    /// have (free + its own cache + the models it holds), with a note saying why. On a backend without device memory
    /// figures (the CPU), auto keeps the models loaded when their weights take at most half the memory the process
    /// may use. Modes that stream fall back to loading whole where the backend cannot stream, and say so.
    /// </summary>
    private MemoryChoice ResolveMemory(GenerationRequest request, bool cfg)
    {
        bool streams = Streaming is not null;
        bool tiling = Options.VaeTiling is not null;
        var requested = Options.MemoryPolicy;
        var notes = new List<string>();
        var warnings = new List<string>();
        if (Backend is not IDeviceMemoryInfo device)
        {
            var policy = requested;
            if (MemoryPolicies.IsAuto(requested))
            {
                long bytes = 0;
                foreach (var component in new[] { PipelineComponents.TextEncoder, PipelineComponents.Transformer, PipelineComponents.Vae })
                    bytes += (Model.FindWeights(component)?.Summarize().Parameters ?? 0) * Options.DType.SizeOf();
                long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
                bool fits = available > 0 && bytes <= available / 2;
                policy = fits ? MemoryPolicies.Full : MemoryPolicies.Balanced;
                notes.Add($"memory: {policy.Name} (auto: the weights take {MemorySizes.Format(bytes)} in {Options.DType.Name()} of {MemorySizes.Format(available)} of memory; " +
                    (fits ? "all stay loaded for the next video)" : "each model is released after its stage)"));
            }
            else if (!streams && StreamsBlocksEveryPass(policy))
            {
                notes.Add($"memory: {policy.Name} runs as balanced on {Backend.Device}: this backend does not stream weights from host memory " +
                    "(each model is loaded whole for its stage and released after it)");
            }
            return new MemoryChoice(policy, notes, warnings, null);
        }

        var sizes = MemoryEstimator.Measure(Model, Options.DType, request.Frames, request.Height, request.Width, cfg, Options.MaxSequenceLength);
        long held = (IsLoaded(ModelComponent.TextEncoder) ? sizes.TextEncoder : 0) + (IsLoaded(ModelComponent.Transformer) ? sizes.Transformer : 0)
            + (IsLoaded(ModelComponent.Vae) ? sizes.VaeDecoder : 0);
        long usable = device.FreeBytes + device.CachedBytes + held;
        var (choice, estimates) = MemoryEstimator.Choose(sizes, usable, streams, tiling);
        if (!MemoryPolicies.IsAuto(requested))
        {
            if (!streams && StreamsBlocksEveryPass(requested))
                notes.Add($"memory: {requested.Name} runs as balanced on {Backend.Device}: this backend does not stream weights from host memory");
            var own = estimates.FirstOrDefault(e => e.Mode == requested.Name);
            notes.Add($"memory: {requested.Name} needs {own?.ToString() ?? "an unknown amount"} of device memory (estimate; {MemorySizes.Format(usable)} available)");
            if (own is not null && own.Peak > usable)
                warnings.Add($"memory: {requested.Name} needs ≈ {MemorySizes.Format(own.Peak)} of device memory and {MemorySizes.Format(usable)} is available on {Backend.Device}; " +
                    (choice is null ? "no mode is likely to fit: free other GPU processes or make the video smaller" : $"--memory {choice.Name} would fit (≈ {MemorySizes.Format(estimates.First(e => e.Mode == choice.Name).Peak)})"));
            return new MemoryChoice(requested, notes, warnings, own);
        }
        string figures = string.Join(", ", estimates.Select(e => $"{e.Mode} ≈ {MemorySizes.Format(e.Peak)}"));
        if (choice is null)
        {
            choice = MemoryPolicies.Low;
            warnings.Add($"memory: even the low mode needs ≈ {MemorySizes.Format(estimates[^1].Peak)} of device memory and {MemorySizes.Format(usable)} is available " +
                $"on {Backend.Device}; the run is likely to fail: free other GPU processes or make the video smaller (frames, height, width)");
        }
        notes.Add($"memory: {choice.Name} (auto: {MemorySizes.Format(usable)} of device memory available on {Backend.Device}; needs {figures})");
        return new MemoryChoice(choice, notes, warnings, estimates.First(e => e.Mode == choice.Name));
    }

    /// <summary>
    /// Whether a mode is more than "each model on the device only for its stage" (low: blocks streamed every pass, VAE
    /// tiles), which a backend without streaming turns into balanced.
    /// </summary>
    private static bool StreamsBlocksEveryPass(IMemoryPolicy policy) =>
        policy.TilesVae || policy.Residency(ModelComponent.Transformer) == WeightResidency.Streamed;

    private static readonly ModelComponent[] Components = [ModelComponent.TextEncoder, ModelComponent.Transformer, ModelComponent.Vae];

    /// <summary>Where a component's weights go under a policy on this backend (loaded whole where it cannot stream).</summary>
    private WeightResidency ResidencyOf(IMemoryPolicy policy, ModelComponent component) =>
        Streaming is null ? WeightResidency.Loaded : policy.Residency(component);

    /// <summary>The tiling asked for, else the model's default tiles when the mode tiles and the backend streams.</summary>
    private VaeTiling? VaeTilingFor(IMemoryPolicy policy) =>
        Options.VaeTiling ?? (policy.TilesVae && Streaming is not null ? VaeTiling.ForConfig(Model.Vae) : null);

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
        var policy = MemoryPolicies.IsAuto(Options.MemoryPolicy) ? MemoryPolicies.Parse(resolved.MemoryPolicy) : Options.MemoryPolicy;
        SwitchMode(policy);
        var meter = PeakMemoryMeter.Start(Backend);
        var clock = Stopwatch.StartNew();
        var timings = new PipelineTimings();
        bool cfg = resolved.ClassifierFreeGuidance;
        string stage = PipelineStages.LoadTextEncoder;
        var warnings = planWarnings.ToList();

        // Tokens: the prompt, and under guidance the negative prompt (diffusers encodes None as "").
        var prompt = Tokenizer.Tokenize(request.Prompt, Options.MaxSequenceLength);
        var negative = cfg ? Tokenizer.Tokenize(request.NegativePrompt ?? "", Options.MaxSequenceLength) : null;

        Tensor? embeddings = null;
        Tensor? latents = null;
        try
        {
            // 1. Text encoder → [1 or 2, L, d_model], negative first; both prompts in one pass through the blocks.
            var encoder = AcquireTextEncoder(policy, progress, clock, ref timings);
            CheckPinned(_textEncoderHost, warnings);
            stage = PipelineStages.TextEncoder;
            var watch = Begin(PipelineStages.TextEncoder, progress, clock);
            var encoded = encoder.Encode(negative is null ? [prompt] : [prompt, negative]);
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
            timings = timings with { TextEncoder = End(PipelineStages.TextEncoder, watch, progress, clock) };
            AfterStage(ModelComponent.TextEncoder, policy);
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
            stage = PipelineStages.LoadTransformer;
            var transformer = AcquireTransformer(policy, progress, clock, ref timings);
            CheckPinned(_transformerHost, warnings);
            stage = PipelineStages.Denoise;
            watch = Begin(PipelineStages.Denoise, progress, clock, request.Steps);
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
                    progress?.Report(new PipelineProgress(PipelineStages.Denoise, i + 1, request.Steps, watch.Elapsed, clock.Elapsed, stepClock.Elapsed, t));
                }
            }
            timings = timings with { Denoise = watch.Elapsed, Steps = stepTimes };
            embeddings.Dispose();
            embeddings = null;
            AfterStage(ModelComponent.Transformer, policy);
            cancellation.ThrowIfCancellationRequested();

            // 4. Decode: [B, F, C, h, w] → [B, C, F, h, w] / scaling_factor → VAE → (x / 2 + 0.5) clamped to [0, 1].
            stage = PipelineStages.LoadVae;
            var vae = AcquireVae(progress, clock, ref timings);
            stage = PipelineStages.VaeDecode;
            watch = Begin(PipelineStages.VaeDecode, progress, clock);
            float[] frames;
            int frameCount, height, width;
            using (var permuted = latents.Permute(0, 2, 1, 3, 4))
            using (var z = permuted.Scale((float)(1.0 / vae.Config.ScalingFactor)))
            {
                observer?.Tensor("vae_input", z);
                // Progress per batch of latent frames, so the decode has a bar and an estimate like the denoising.
                var decodeWatch = watch;
                Action<int, int>? decodeProgress = progress is null ? null
                    : (done, total) => progress.Report(new PipelineProgress(PipelineStages.VaeDecode, done, total, decodeWatch.Elapsed, clock.Elapsed, TimeSpan.Zero, -1));
                using var decoded = vae.Decode(z, new VaeDecodeOptions { Tiling = VaeTilingFor(policy), Slicing = Options.VaeSlicing, Progress = decodeProgress });
                observer?.Tensor("vae_decoded", decoded);
                using var shifted = decoded.Affine(0.5f, 0.5f);
                using var clamped = shifted.Clamp(0f, 1f);
                using var first = clamped.Select(0, 0);
                using var video = first.Permute(1, 0, 2, 3);
                frames = video.ToFloatArray();
                (frameCount, height, width) = (video.Dim(0), video.Dim(2), video.Dim(3));
            }
            timings = timings with { VaeDecode = End(PipelineStages.VaeDecode, watch, progress, clock) };
            AfterStage(ModelComponent.Vae, policy);

            var finalLatents = latents.ToFloatArray();
            timings = timings with { Total = clock.Elapsed };
            return new GenerationResult(frames, frameCount, height, width, finalLatents, shape, timings,
                meter.PeakBytes, meter.Kind, resolved with { DecodedFrames = frameCount }, prompt, negative, warnings);
        }
        catch (Exception e) when (e is IDeviceOutOfMemory oom)
        {
            // Nothing of this run is kept: the memory goes back, so the process can go on (another mode, another job).
            embeddings?.Dispose();
            embeddings = null;
            latents?.Dispose();
            latents = null;
            foreach (var component in Components) Release(component);
            TrimCache();
            throw new CogVideoXException(OutOfMemoryMessage(oom, policy, stage, request, cfg), e);
        }
        finally
        {
            embeddings?.Dispose();
            latents?.Dispose();
            // A failed or cancelled run releases what the policy would have released after its stage.
            foreach (var component in Components)
                if (!policy.KeepAfterUse(component)) Release(component);
        }
    }

    /// <summary>Says so when host images could not all be page-locked (their copies then do not overlap the compute).</summary>
    private void CheckPinned<TBlock>(HostBlocks<TBlock>? host, List<string> warnings) where TBlock : class, IStreamableBlock<TBlock>, IDisposable
    {
        if (host is null || host.IsPinned || Streaming is null) return;
        string warning = $"memory: the {host.Name} ({MemorySizes.Format(host.Bytes)}) could not all be page-locked in host memory; " +
            "they stream from ordinary memory, slower (free host memory or use --memory full or balanced)";
        if (!warnings.Contains(warning)) warnings.Add(warning);
    }

    /// <summary>Releases a component after its stage when the policy says so, and gives its memory back to the device.</summary>
    private void AfterStage(ModelComponent component, IMemoryPolicy policy)
    {
        if (policy.KeepAfterUse(component)) return;
        Release(component);
        TrimCache();
    }

    private void TrimCache() => (Backend as IDeviceMemoryInfo)?.TrimCache();

    /// <summary>
    /// A run in another mode than the last one starts from nothing on the device (the models were placed for the old
    /// mode); host images stay when the new mode streams too.
    /// </summary>
    private void SwitchMode(IMemoryPolicy policy)
    {
        if (_activeMode == policy.Name) return;
        foreach (var component in Components) Release(component);
        if (ResidencyOf(policy, ModelComponent.TextEncoder) == WeightResidency.Loaded)
        {
            _textEncoderHost?.Dispose();
            _textEncoderHost = null;
        }
        if (ResidencyOf(policy, ModelComponent.Transformer) == WeightResidency.Loaded)
        {
            _transformerHost?.Dispose();
            _transformerHost = null;
        }
        TrimCache();
        _activeMode = policy.Name;
    }

    /// <summary>
    /// "out of GPU memory in mode full while …; this mode needs ≈ X, Y available; balanced needs ≈ …, low ≈ …: use
    /// memory mode …": what failed, what each mode needs for this video, and which one fits.
    /// </summary>
    private string OutOfMemoryMessage(IDeviceOutOfMemory oom, IMemoryPolicy policy, string stage, GenerationRequest request, bool cfg)
    {
        long available = oom.FreeBytes + oom.HeldBytes;
        string what = $"out of GPU memory on {Backend.Device} in memory mode {policy.Name} while {Describe(stage)}: " +
            $"an allocation of {MemorySizes.Format(oom.RequestedBytes)} failed with {MemorySizes.Format(oom.HeldBytes)} held by this process and " +
            $"{MemorySizes.Format(oom.FreeBytes)} of {MemorySizes.Format(oom.TotalBytes)} free";
        ModelMemory sizes;
        try
        {
            sizes = MemoryEstimator.Measure(Model, Options.DType, request.Frames, request.Height, request.Width, cfg, Options.MaxSequenceLength);
        }
        catch (CogVideoXException)
        {
            return what + ". Try --memory balanced or --memory low (the weights stream from host memory).";
        }
        var (_, estimates) = MemoryEstimator.Choose(sizes, available, Streaming is not null, Options.VaeTiling is not null);
        string needs = string.Join(", ", estimates.Select(e => $"{e.Mode} ≈ {MemorySizes.Format(e.Peak)}"));
        // Only the modes that need less than the one that failed are candidates (full, balanced, low in that order).
        int current = estimates.Select(e => e.Mode).ToList().IndexOf(policy.Name);
        var fits = estimates.Skip(current + 1).FirstOrDefault(e => e.Peak <= available * MemoryEstimator.UsableFraction);
        string advice = fits is not null
            ? $"use --memory {fits.Mode} (needs ≈ {MemorySizes.Format(fits.Peak)})"
            : $"even --memory low needs ≈ {MemorySizes.Format(estimates[^1].Peak)}; free other GPU processes or make the video smaller (--frames, --height, --width)";
        return $"{what}. For this video ({request.Frames} frames of {request.Width}×{request.Height}) the memory modes need: {needs}, " +
            $"with ≈ {MemorySizes.Format(available)} of device memory available to this process: {advice}.";
    }

    private static string Describe(string stage) => PipelineStages.Describe(stage);

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

    private T5Encoder AcquireTextEncoder(IMemoryPolicy policy, IProgress<PipelineProgress>? progress, Stopwatch clock, ref PipelineTimings timings) =>
        _textEncoder ??= Load(ModelComponent.TextEncoder, progress, clock, ref timings, () =>
        {
            var folder = Model.ComponentPath(PipelineComponents.TextEncoder);
            var residency = ResidencyOf(policy, ModelComponent.TextEncoder);
            if (residency == WeightResidency.Loaded) return T5Encoder.Load(folder, Backend, Options.DType);
            _textEncoderHost ??= T5Encoder.LoadHostBlocks(folder, Options.DType, Streaming);
            return T5Encoder.Load(folder, Backend, Options.DType, Stream(_textEncoderHost, residency));
        });

    private CogVideoXTransformer AcquireTransformer(IMemoryPolicy policy, IProgress<PipelineProgress>? progress, Stopwatch clock, ref PipelineTimings timings) =>
        _transformer ??= Load(ModelComponent.Transformer, progress, clock, ref timings, () =>
        {
            var folder = Model.ComponentPath(PipelineComponents.Transformer);
            var residency = ResidencyOf(policy, ModelComponent.Transformer);
            if (residency == WeightResidency.Loaded) return CogVideoXTransformer.Load(folder, Backend, Options.DType);
            _transformerHost ??= CogVideoXTransformer.LoadHostBlocks(folder, Options.DType, Streaming);
            return CogVideoXTransformer.Load(folder, Backend, Options.DType, Stream(_transformerHost, residency));
        });

    /// <summary>A block source over host images: two device slots when streaming, one per block when uploading once.</summary>
    private StreamedBlocks<TBlock> Stream<TBlock>(HostBlocks<TBlock> host, WeightResidency residency)
        where TBlock : class, IStreamableBlock<TBlock>, IDisposable =>
        new(host, Backend, Streaming!.CreateCopyStream(), residency == WeightResidency.Streamed ? 2 : host.Count);

    private CogVideoXVae AcquireVae(IProgress<PipelineProgress>? progress, Stopwatch clock, ref PipelineTimings timings) =>
        _vae ??= Load(ModelComponent.Vae, progress, clock, ref timings,
            () => CogVideoXVae.Load(Model.ComponentPath(PipelineComponents.Vae), Backend, CogVideoXVae.DecodeDType(Options.DType)));

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
            _textEncoderHost?.Dispose();
            _textEncoderHost = null;
            _transformerHost?.Dispose();
            _transformerHost = null;
        }
    }
}
