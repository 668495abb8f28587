using CogVideoX.Engine;
using CogVideoX.Models.Blocks;
using CogVideoX.Models.Lora;
using CogVideoX.Models.Modules;
using CogVideoX.Models.Text;
using CogVideoX.Models.Transformer;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>The mode a run uses, why, and its estimate.</summary>
public sealed record MemoryChoice(IMemoryPolicy Policy, IReadOnlyList<string> Notes, IReadOnlyList<string> Warnings, MemoryEstimate? Estimate);

/// <summary>
/// Owns where a pipeline's components live: loads the tokenizer, text encoder, transformer and VAE when a stage first
/// needs them, holds their host images for streaming, chooses the memory mode (auto from the free device memory),
/// switches between modes, releases components after their stage as the mode says, and turns a device
/// out-of-memory error into advice naming the mode that fits. The tasks and the denoising loop only ask it for a
/// component; they never decide residency. Not thread-safe: the pipeline runs one video at a time.
/// </summary>
public sealed class ComponentManager : IDisposable
{
    private static readonly ModelComponent[] Components = [ModelComponent.TextEncoder, ModelComponent.Transformer, ModelComponent.Vae];

    private T5Tokenizer? _tokenizer;
    private T5Encoder? _textEncoder;
    private CogVideoXTransformer? _transformer;
    private CogVideoXVae? _vae;
    private CogVideoXVaeEncoder? _vaeEncoder;
    private HostBlocks<T5Block>? _textEncoderHost;
    private HostBlocks<TransformerBlock>? _transformerHost;
    private string? _activeMode;

    // LoRA: the adapters the next transformer load fuses, and those the loaded transformer (and its host images) carry.
    private readonly Dictionary<string, (long Length, DateTime Written, LoraAdapter Adapter)> _loraFiles = new(StringComparer.Ordinal);
    private LoraSet? _lora;
    private string _loraKey = "";

    // How the next transformer load holds its blocks' projections (FP8 only under --linear fp8 with no exact step).
    private ProjectionWeights _projections;

    // What the loaded transformer (and its host images) were made with: the LoRA key and the projections.
    private string _transformerLoraKey = "";
    private ProjectionWeights _transformerProjections;

    public ComponentManager(ModelFolder model, PipelineOptions options, IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(backend);
        Model = model;
        Options = options;
        Backend = backend;
    }

    public ModelFolder Model { get; }

    public PipelineOptions Options { get; }

    public IBackend Backend { get; }

    /// <summary>How weights stream from host memory in the balanced and low modes (null: they load whole instead).</summary>
    public IWeightStreaming? Streaming => Options.WeightStreaming ?? Backend as IWeightStreaming;

    /// <summary>Bytes of block weights held in host memory for streaming (kept from one video to the next).</summary>
    public long HostBlockBytes => (_textEncoderHost?.Bytes ?? 0) + (_transformerHost?.Bytes ?? 0);

    /// <summary>The model's tokenizer (read on first use; it holds no weights).</summary>
    public T5Tokenizer Tokenizer => _tokenizer ??= T5Tokenizer.Load(Model.ComponentPath(PipelineComponents.Tokenizer));

    /// <summary>Whether a component's weights are loaded now.</summary>
    public bool IsLoaded(ModelComponent component) => component switch
    {
        ModelComponent.TextEncoder => _textEncoder is not null,
        ModelComponent.Transformer => _transformer is not null,
        ModelComponent.Vae => _vae is not null || _vaeEncoder is not null,
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
                _vaeEncoder?.Dispose(); // the encoding half (image- and video-to-video) goes with the decoder
                _vaeEncoder = null;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(component), component, null);
        }
    }

    // ---- the memory mode ----

    /// <summary>
    /// The requested mode, or for auto the fastest one whose estimated peak fits in the device memory this process can
    /// have (free + its own cache + the models it holds), with a note saying why. On a backend without device memory
    /// figures (the CPU), auto keeps the models loaded when their weights take at most half the memory the process
    /// may use. Modes that stream fall back to loading whole where the backend cannot stream, and say so.
    /// </summary>
    public MemoryChoice ResolveMemory(GenerationRequest request, bool cfg)
    {
        ArgumentNullException.ThrowIfNull(request);
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
                // FP8-only projections: each block holds their codes and scales instead of the exact weights.
                if (LinearModes.Projections(request) == ProjectionWeights.Fp8)
                    bytes -= Model.Transformer.NumLayers * (TransformerBlock.BytesFor(Model.Transformer, Options.DType, ProjectionWeights.Exact)
                        - TransformerBlock.BytesFor(Model.Transformer, Options.DType, ProjectionWeights.Fp8));
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

        var sizes = Measure(request, cfg);
        long held = (IsLoaded(ModelComponent.TextEncoder) ? sizes.TextEncoder : 0) + (IsLoaded(ModelComponent.Transformer) ? sizes.Transformer : 0)
            + (IsLoaded(ModelComponent.Vae) ? sizes.VaeDecoder : 0) + (_vaeEncoder is not null ? sizes.VaeEncoder : 0);
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

    /// <summary>The estimate's sizes for a request: the model at the video's size, its blocks' projections as the request runs and holds them.</summary>
    private ModelMemory Measure(GenerationRequest request, bool cfg) =>
        MemoryEstimator.Measure(Model, Options.DType, request.Frames, request.Height, request.Width, cfg, Options.MaxSequenceLength,
            EncodedFrames(request), request.Linears, LinearModes.Projections(request));

    /// <summary>
    /// Whether a mode is more than "each model on the device only for its stage" (low: blocks streamed every pass, VAE
    /// tiles), which a backend without streaming turns into balanced.
    /// </summary>
    private static bool StreamsBlocksEveryPass(IMemoryPolicy policy) =>
        policy.TilesVae || policy.Residency(ModelComponent.Transformer) == WeightResidency.Streamed;

    /// <summary>Where a component's weights go under a policy on this backend (loaded whole where it cannot stream).</summary>
    private WeightResidency ResidencyOf(IMemoryPolicy policy, ModelComponent component) =>
        Streaming is null ? WeightResidency.Loaded : policy.Residency(component);

    /// <summary>Frames the VAE encoder takes before denoising: the image (1), the input video's frames, or none (text-to-video).</summary>
    public static int EncodedFrames(GenerationRequest request) =>
        request.Image is not null ? 1 : request.Video is not null ? request.Frames : 0;

    /// <summary>The tiling asked for, else the model's default tiles when the mode tiles and the backend streams.</summary>
    public VaeTiling? VaeTilingFor(IMemoryPolicy policy) =>
        Options.VaeTiling ?? (policy.TilesVae && Streaming is not null ? VaeTiling.ForConfig(Model.Vae) : null);

    /// <summary>
    /// Starts a run in <paramref name="policy"/>: a run in another mode than the last one starts from nothing on the
    /// device (the models were placed for the old mode); host images stay when the new mode streams too.
    /// </summary>
    public void SwitchMode(IMemoryPolicy policy)
    {
        if (_activeMode == policy.Name) return;
        ReleaseAll();
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

    /// <summary>Releases a component after its stage when the policy says so, and gives its memory back to the device.</summary>
    public void AfterStage(ModelComponent component, IMemoryPolicy policy)
    {
        if (policy.KeepAfterUse(component)) return;
        Release(component);
        TrimCache();
    }

    /// <summary>After a run, successful or not: releases what the policy would have released after each stage.</summary>
    public void AfterRun(IMemoryPolicy policy)
    {
        foreach (var component in Components)
            if (!policy.KeepAfterUse(component)) Release(component);
    }

    /// <summary>After a device out-of-memory error: nothing stays, so the process can go on (another mode, another job).</summary>
    public void ReleaseAfterOutOfMemory()
    {
        ReleaseAll();
        TrimCache();
    }

    private void ReleaseAll()
    {
        foreach (var component in Components) Release(component);
    }

    private void TrimCache() => (Backend as IDeviceMemoryInfo)?.TrimCache();

    /// <summary>
    /// "out of GPU memory in mode full while …; this mode needs ≈ X, Y available; balanced needs ≈ …, low ≈ …: use
    /// memory mode …": what failed, what each mode needs for this video, and which one fits.
    /// </summary>
    public string OutOfMemoryMessage(IDeviceOutOfMemory oom, IMemoryPolicy policy, string stage, GenerationRequest request, bool cfg)
    {
        long available = oom.FreeBytes + oom.HeldBytes;
        string what = $"out of GPU memory on {Backend.Device} in memory mode {policy.Name} while {PipelineStages.Describe(stage)}: " +
            $"an allocation of {MemorySizes.Format(oom.RequestedBytes)} failed with {MemorySizes.Format(oom.HeldBytes)} held by this process and " +
            $"{MemorySizes.Format(oom.FreeBytes)} of {MemorySizes.Format(oom.TotalBytes)} free";
        ModelMemory sizes;
        try
        {
            sizes = Measure(request, cfg);
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

    // ---- the components, loaded on first use ----

    /// <summary>The text encoder, placed as <paramref name="policy"/> says (its load timed on <paramref name="clock"/>).</summary>
    public T5Encoder TextEncoder(IMemoryPolicy policy, StageClock clock, List<string> warnings)
    {
        _textEncoder ??= Load(ModelComponent.TextEncoder, clock, () =>
        {
            var folder = Model.ComponentPath(PipelineComponents.TextEncoder);
            var residency = ResidencyOf(policy, ModelComponent.TextEncoder);
            if (residency == WeightResidency.Loaded) return T5Encoder.Load(folder, Backend, Options.DType);
            _textEncoderHost ??= T5Encoder.LoadHostBlocks(folder, Options.DType, Streaming);
            return T5Encoder.Load(folder, Backend, Options.DType, Stream(_textEncoderHost, residency));
        });
        CheckPinned(_textEncoderHost, warnings);
        return _textEncoder;
    }

    /// <summary>
    /// Reads and checks the LoRA files of a request against the transformer's config (each file read once while it is
    /// unchanged on disk) and makes them the adapters the transformer is loaded with; a transformer loaded with other
    /// adapters or strengths is loaded again when next needed. Returns what will be applied, for the sidecar.
    /// </summary>
    public IReadOnlyList<LoraRecord> UseLora(IReadOnlyList<LoraSpec> specs)
    {
        ArgumentNullException.ThrowIfNull(specs);
        var applied = specs.Select(s => new AppliedLora(LoraFile(s.File), s.Strength)).ToList();
        var set = applied.Count == 0 ? null : new LoraSet(applied);
        var configPath = Path.Combine(Model.ComponentPath(PipelineComponents.Transformer), "config.json");
        CogVideoXTransformer.CheckLora(set, Model.Transformer, configPath);
        _lora = set;
        _loraKey = string.Join("|", applied.Select(a => $"{a.Adapter.Sha256}:{a.Strength.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}"));
        return applied.Select(a => new LoraRecord(a.Adapter.Path, a.Adapter.Sha256, a.Strength, a.Adapter.Layers.Count)).ToList();
    }

    private LoraAdapter LoraFile(string file)
    {
        string full = Path.GetFullPath(file);
        var info = new FileInfo(full);
        if (info.Exists && _loraFiles.TryGetValue(full, out var known) && known.Length == info.Length && known.Written == info.LastWriteTimeUtc)
            return known.Adapter;
        var adapter = LoraAdapter.Open(full);
        _loraFiles[full] = (info.Length, info.LastWriteTimeUtc, adapter);
        return adapter;
    }

    /// <summary>
    /// Makes <paramref name="request"/>'s projections (<see cref="LinearModes.Projections"/>) the ones the transformer is
    /// loaded with: a transformer (or host images) holding the other kind is loaded again when next needed — an exact
    /// video after an FP8-only one needs the exact weights back, an FP8-only video after an exact one drops them.
    /// </summary>
    public void UseLinears(GenerationRequest request) => _projections = LinearModes.Projections(request);

    /// <summary>How the loaded transformer's blocks hold their projections (null when none is loaded).</summary>
    public ProjectionWeights? TransformerProjections => _transformer is null ? null : _transformerProjections;

    /// <summary>The transformer, placed as <paramref name="policy"/> says (its load timed on <paramref name="clock"/>).</summary>
    public CogVideoXTransformer Transformer(IMemoryPolicy policy, StageClock clock, List<string> warnings)
    {
        if (_transformerLoraKey != _loraKey || _transformerProjections != _projections)
        {
            // Loaded with other adapters or other projections: the fused (or quantized) weights and host images are not these.
            Release(ModelComponent.Transformer);
            _transformerHost?.Dispose();
            _transformerHost = null;
            TrimCache();
        }
        _transformer ??= Load(ModelComponent.Transformer, clock, () =>
        {
            var folder = Model.ComponentPath(PipelineComponents.Transformer);
            var residency = ResidencyOf(policy, ModelComponent.Transformer);
            (_transformerLoraKey, _transformerProjections) = (_loraKey, _projections);
            if (residency == WeightResidency.Loaded) return CogVideoXTransformer.Load(folder, Backend, Options.DType, _lora, _projections);
            _transformerHost ??= CogVideoXTransformer.LoadHostBlocks(folder, Options.DType, Streaming, _lora, _projections);
            return CogVideoXTransformer.Load(folder, Backend, Options.DType, Stream(_transformerHost, residency), _lora);
        });
        CheckPinned(_transformerHost, warnings);
        return _transformer;
    }

    /// <summary>The VAE, loaded whole in its decode dtype (its load timed on <paramref name="clock"/>).</summary>
    public CogVideoXVae Vae(StageClock clock) =>
        _vae ??= Load(ModelComponent.Vae, clock,
            () => CogVideoXVae.Load(Model.ComponentPath(PipelineComponents.Vae), Backend, CogVideoXVae.DecodeDType(Options.DType)));

    /// <summary>
    /// The VAE's encoding half (image- and video-to-video), loaded apart from the decoder in the decoder's dtype; its
    /// load is timed as the VAE's and it is released with the VAE.
    /// </summary>
    public CogVideoXVaeEncoder VaeEncoder(StageClock clock) =>
        _vaeEncoder ??= Load(ModelComponent.Vae, clock,
            () => CogVideoXVae.LoadEncoder(Model.ComponentPath(PipelineComponents.Vae), Backend, CogVideoXVae.DecodeDType(Options.DType)));

    /// <summary>A block source over host images: two device slots when streaming, one per block when uploading once.</summary>
    private StreamedBlocks<TBlock> Stream<TBlock>(HostBlocks<TBlock> host, WeightResidency residency)
        where TBlock : Module =>
        new(host, Backend, Streaming!.CreateCopyStream(), residency == WeightResidency.Streamed ? 2 : host.Count);

    /// <summary>Says so when host images could not all be page-locked (their copies then do not overlap the compute).</summary>
    private void CheckPinned<TBlock>(HostBlocks<TBlock>? host, List<string> warnings) where TBlock : Module
    {
        if (host is null || host.IsPinned || Streaming is null) return;
        string warning = $"memory: the {host.Name} ({MemorySizes.Format(host.Bytes)}) could not all be page-locked in host memory; " +
            "they stream from ordinary memory, slower (free host memory or use --memory full or balanced)";
        if (!warnings.Contains(warning)) warnings.Add(warning);
    }

    private static T Load<T>(ModelComponent component, StageClock clock, Func<T> load)
    {
        string name = PipelineStages.Load(component);
        var stage = clock.Begin(name);
        var loaded = load();
        var elapsed = clock.End(name, stage);
        var timings = clock.Timings;
        clock.Timings = component switch
        {
            ModelComponent.TextEncoder => timings with { LoadTextEncoder = timings.LoadTextEncoder + elapsed },
            ModelComponent.Transformer => timings with { LoadTransformer = timings.LoadTransformer + elapsed },
            _ => timings with { LoadVae = timings.LoadVae + elapsed },
        };
        return loaded;
    }

    public void Dispose()
    {
        ReleaseAll();
        _textEncoderHost?.Dispose();
        _textEncoderHost = null;
        _transformerHost?.Dispose();
        _transformerHost = null;
    }
}
