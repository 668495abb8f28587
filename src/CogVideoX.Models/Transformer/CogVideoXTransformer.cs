using CogVideoX.Engine;
using CogVideoX.Models.Blocks;
using CogVideoX.Models.Lora;
using CogVideoX.Models.Modules;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>
/// The CogVideoX denoising transformer (diffusers' <c>CogVideoXTransformer3DModel</c>: the 1.0 2b style with sincos
/// positions, the 5b style with 3D rotary positions, and 1.5 with temporal patches of <c>patch_size_t</c> latent
/// frames, rotary positions over the patched grid and — 1.5-I2V — the <c>ofs</c> embedding), configured only from
/// its <c>config.json</c>. The module tree mirrors the checkpoint names: <c>patch_embed</c>, <c>time_embedding</c>,
/// <c>ofs_embedding</c> (1.5-I2V),
/// <c>transformer_blocks.{i}</c>, <c>norm_final</c>, <c>norm_out</c>, <c>proj_out</c>. One forward at a time per
/// instance (it caches the positional table of the last grid size). The blocks come from an
/// <see cref="IBlockSource{TBlock}"/>: resident on the backend (loaded with the rest), or streamed from host images
/// (<see cref="LoadHostBlocks"/>) while the forward runs — the forward code is the same.
/// </summary>
public sealed class CogVideoXTransformer : IDisposable
{
    private readonly CogVideoXTransformerModule _module;
    private readonly IBlockSource<TransformerBlock> _blocks;
    private bool _disposed;

    /// <summary>Builds the model from weights under <paramref name="weights"/> (checkpoint names relative to it).</summary>
    public CogVideoXTransformer(TransformerConfig config, WeightScope weights, string configSource = "transformer config")
        : this(config, weights, blocks: null, configSource)
    {
    }

    /// <summary>
    /// Builds the model with its blocks taken from <paramref name="blocks"/> (which it then owns) instead of loaded
    /// from <paramref name="weights"/>; null loads them onto the backend with the rest, their projections held as
    /// <paramref name="projections"/> says (FP8 only: quantized on the backend as each is read, see
    /// <see cref="ProjectionWeights.Fp8"/>; streamed blocks are held as their host images were made).
    /// </summary>
    public CogVideoXTransformer(TransformerConfig config, WeightScope weights, IBlockSource<TransformerBlock>? blocks, string configSource = "transformer config",
        ProjectionWeights projections = ProjectionWeights.Exact)
    {
        TransformerConfigCheck.Validate(config, configSource);
        Config = config;
        Backend = weights.Backend;
        DType = weights.DType;
        CheckNames(config, weights, configSource);
        if (blocks is not null && blocks.Count != config.NumLayers)
            throw new ArgumentException($"{blocks.Count} blocks given for a transformer of {config.NumLayers} layers", nameof(blocks));
        if (blocks is null && projections == ProjectionWeights.Fp8 && Ops.Fp8Unavailable(Backend) is { } why)
            throw new CogVideoXException($"--linear fp8: {why}");
        _module = new CogVideoXTransformerModule(config, configSource, residentBlocks: blocks is null, projections);
        // A source given by the caller stays the caller's when loading fails (Load releases what it bound).
        _module.Load(weights);
        _blocks = blocks ?? new ResidentBlocks<TransformerBlock>(_module.Blocks);
    }

    /// <summary>
    /// Loads a diffusers <c>transformer/</c> folder: <c>config.json</c> and the safetensors weights (single file or
    /// sharded with an index), converted to <paramref name="dtype"/> on <paramref name="backend"/>, with
    /// <paramref name="lora"/>'s adapters fused into the weights they adapt (checked against the config first).
    /// </summary>
    /// <remarks>
    /// <paramref name="projections"/>: <see cref="ProjectionWeights.Fp8"/> quantizes the blocks' projections as they
    /// are read (after the LoRA is fused) and keeps only their FP8 codes and scales on <paramref name="backend"/>.
    /// </remarks>
    public static CogVideoXTransformer Load(string folder, IBackend backend, DType dtype, LoraSet? lora = null,
        ProjectionWeights projections = ProjectionWeights.Exact)
    {
        if (!Directory.Exists(folder))
            throw new WeightsException($"{folder}: transformer folder not found (expected config.json and *.safetensors)");
        var configPath = Path.Combine(folder, "config.json");
        var config = TransformerConfig.Load(configPath);
        var patch = CheckLora(lora, config, configPath);
        using var checkpoint = Checkpoint.Open(folder);
        return new CogVideoXTransformer(config, checkpoint.Scope(backend, dtype, patch), blocks: null, configPath, projections);
    }

    /// <summary>
    /// Checks LoRA adapters against a transformer config (every adapted layer must be one of its linear layers, of
    /// the LoRA's sizes); returns the patch to load through (null when there is nothing to fuse).
    /// </summary>
    public static LoraSet? CheckLora(LoraSet? lora, TransformerConfig config, string configSource = "transformer config")
    {
        if (lora is null || lora.IsEmpty) return null;
        lora.Validate(ParameterShapes(config, configSource),
            $"this transformer ({config.NumLayers} blocks, {config.NumAttentionHeads * config.AttentionHeadDim} wide)");
        return lora;
    }

    /// <summary>
    /// Loads a <c>transformer/</c> folder onto <paramref name="backend"/> except its blocks, which come from
    /// <paramref name="blocks"/> (taken over by the model; disposed with it, also when loading fails).
    /// </summary>
    public static CogVideoXTransformer Load(string folder, IBackend backend, DType dtype, IBlockSource<TransformerBlock> blocks, LoraSet? lora = null)
    {
        try
        {
            var configPath = Path.Combine(CheckFolder(folder), "config.json");
            var config = TransformerConfig.Load(configPath);
            var patch = CheckLora(lora, config, configPath);
            using var checkpoint = Checkpoint.Open(folder);
            return new CogVideoXTransformer(config, checkpoint.Scope(backend, dtype, patch), blocks, configPath);
        }
        catch
        {
            blocks.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The blocks of a <c>transformer/</c> folder packed into host memory in <paramref name="dtype"/> (pinned through
    /// <paramref name="pinned"/> when given), for <see cref="StreamedBlocks{TBlock}"/>. Read one block at a time, with
    /// <paramref name="lora"/> fused into the images once (every upload of a streamed block then carries it). With
    /// <see cref="ProjectionWeights.Fp8"/> the projections are quantized on the CPU as they are read and the images
    /// hold their FP8 codes and scales only, so every upload moves about half the bytes.
    /// </summary>
    public static HostBlocks<TransformerBlock> LoadHostBlocks(string folder, DType dtype, IWeightStreaming? pinned, LoraSet? lora = null,
        ProjectionWeights projections = ProjectionWeights.Exact)
    {
        var configPath = Path.Combine(CheckFolder(folder), "config.json");
        var config = TransformerConfig.Load(configPath);
        TransformerConfigCheck.Validate(config, configPath);
        var activation = TransformerConfigCheck.FeedForwardActivation(config, configPath);
        var patch = CheckLora(lora, config, configPath);
        using var checkpoint = Checkpoint.Open(folder);
        var scope = checkpoint.Scope(CpuBackend.Instance, dtype, patch);
        CheckNames(config, scope, configPath);
        var blocks = scope.Scope("transformer_blocks");
        return HostBlocks<TransformerBlock>.Load("transformer blocks", config.NumLayers,
            () => new TransformerBlock(config, activation, projections), blocks.Scope, pinned);
    }

    private static string CheckFolder(string folder) => Directory.Exists(folder) ? folder
        : throw new WeightsException($"{folder}: transformer folder not found (expected config.json and *.safetensors)");

    public TransformerConfig Config { get; }

    public IBackend Backend { get; }

    /// <summary>The dtype weights and activations are held in.</summary>
    public DType DType { get; }

    /// <summary>Where the blocks come from while a forward runs.</summary>
    public IBlockSource<TransformerBlock> Blocks => _blocks;

    /// <summary>Bytes of weights held on the backend (streamed blocks: their device slots).</summary>
    public long WeightBytes => _module.BoundBytes + (_blocks is StreamedBlocks<TransformerBlock> streamed ? streamed.DeviceBytes : 0);

    /// <summary>Every checkpoint tensor a model of this config reads, with its shape.</summary>
    public static IReadOnlyList<(string Name, int[] Shape)> ParameterShapes(TransformerConfig config) =>
        ParameterShapes(config, "transformer config");

    private static IReadOnlyList<(string Name, int[] Shape)> ParameterShapes(TransformerConfig config, string configSource)
    {
        TransformerConfigCheck.Validate(config, configSource);
        using var tree = new CogVideoXTransformerModule(config, configSource, residentBlocks: true);
        return tree.CheckpointTensors;
    }

    /// <summary>
    /// Device bytes of the model in <paramref name="dtype"/> for one call on a batch of <paramref name="batch"/> with
    /// <paramref name="textLength"/> text tokens and latents of the given size: one block's weights (they may stream),
    /// the rest, and the working memory at the peak of a block (its attention, or under FP8 linears the feed-forward's
    /// first projection when that is larger).
    /// </summary>
    /// <remarks>
    /// <paramref name="linears"/> and <paramref name="projections"/>: how the blocks' projections run and are held.
    /// FP8-only projections (<see cref="ProjectionWeights.Fp8"/>) count their codes and scales instead of the exact
    /// weights; FP8 linears on exact projections count the FP8 copies made beside them.
    /// </remarks>
    public static ComponentMemory EstimateMemory(TransformerConfig config, DType dtype, int batch, int textLength, int latentFrames, int latentHeight, int latentWidth,
        LinearMode linears = LinearMode.Exact, ProjectionWeights projections = ProjectionWeights.Exact)
    {
        TransformerConfigCheck.Validate(config, "transformer config");
        using var tree = new CogVideoXTransformerModule(config, "transformer config", residentBlocks: true, projections);
        long held = tree.Blocks[0].Bytes(dtype);
        long block = held + (linears == LinearMode.Fp8 && projections == ProjectionWeights.Exact ? TransformerBlock.Fp8BytesFor(config) : 0);
        int s = dtype.SizeOf(), p = config.PatchSize, pt = config.PatchSizeT ?? 1;
        long tokens = textLength + (long)((latentFrames + pt - 1) / pt) * (latentHeight / p) * (latentWidth / p);
        // Inside a block at its peak (the attention): the hidden state, its norm, q/k/v (3), normed q and k, the merged
        // heads and to_out's result — 9 hidden-sized tensors — plus one for the rotary copy (5b style).
        long rows = batch * tokens, d = config.InnerDim;
        long hiddenBytes = rows * d * s;
        long text = 2L * batch * textLength * config.TextEmbedDim * s;
        long working = hiddenBytes * (config.UseRotaryPositionalEmbeddings ? 10 : 9) + text;
        if (linears == LinearMode.Fp8)
        {
            // The FP8 feed-forward's first projection: the hidden state, the norm's codes [rows, d] and scales (the norm
            // writes them directly: no half-type norm), the float32 accumulator [rows, 4d] and the result [rows, 4d]
            // (the largest FP8 linear).
            long feedForward = hiddenBytes + rows * d + 4 * rows + rows * 4 * d * 4 + 4 * hiddenBytes + text;
            working = Math.Max(working, feedForward);
        }
        return new ComponentMemory(block, config.NumLayers, tree.Bytes(dtype) - held * config.NumLayers, working);
    }

    /// <summary>
    /// Device bytes of all of the model's weights in <paramref name="dtype"/> (every block resident, the full memory mode)
    /// with the blocks' projections held as <paramref name="projections"/> says.
    /// </summary>
    public static long EstimateWeightBytes(TransformerConfig config, DType dtype, ProjectionWeights projections = ProjectionWeights.Exact) =>
        EstimateMemory(config, dtype, 1, 0, config.PatchSizeT ?? 1, config.PatchSize, config.PatchSize,
            projections == ProjectionWeights.Fp8 ? LinearMode.Fp8 : LinearMode.Exact, projections).WeightBytes;

    /// <summary>
    /// How the blocks' self-attention is computed in the next calls: exactly (the default) or in 8 bits
    /// (<see cref="AttentionMode.Sage8"/>); a denoising loop sets it per step (its exact steps run exactly).
    /// </summary>
    public AttentionMode AttentionMode { get; set; }

    /// <summary>
    /// How the blocks' attention and feed-forward projections run from the next <see cref="Forward(Tensor, Tensor, ReadOnlySpan{float}, RotaryTables?, float?, CancellationToken, StepCache?)"/>
    /// on: exact (the default) or FP8 (<see cref="LinearMode.Fp8"/>; the denoising loop switches per step to keep the
    /// first and last steps exact). The embeddings, the adaptive norms' linears and proj_out always stay exact.
    /// </summary>
    public LinearMode Linears { get; set; }

    /// <summary>
    /// Quantizes the exact projections of every resident block to FP8 now (before the first step), beside the exact
    /// weights; streamed blocks are quantized as they arrive. Nothing to do for FP8-only projections (quantized at load).
    /// Throws a <see cref="CogVideoXException"/> when the backend cannot run FP8 linears.
    /// </summary>
    public void PrepareFp8()
    {
        if (Ops.Fp8Unavailable(Backend) is { } why) throw new CogVideoXException($"--linear fp8: {why}");
        if (_blocks is ResidentBlocks<TransformerBlock> resident)
            foreach (var block in resident.Blocks) block.PrepareFp8();
    }

    /// <summary>Releases the blocks' FP8 weights (an exact run after an FP8 one gives their memory back).</summary>
    public void ReleaseFp8()
    {
        if (_blocks is ResidentBlocks<TransformerBlock> resident)
            foreach (var block in resident.Blocks) block.ReleaseFp8();
    }

    /// <summary>Bytes of FP8 copies the blocks hold now beside their exact weights (FP8-only projections count in <see cref="WeightBytes"/>).</summary>
    public long Fp8Bytes => _blocks is ResidentBlocks<TransformerBlock> resident ? resident.Blocks.Sum(b => b.Fp8Bytes) : 0;

    /// <summary>Bytes the FP8 projections of all blocks take (memory estimates).</summary>
    public static long EstimateFp8Bytes(TransformerConfig config) => config.NumLayers * TransformerBlock.Fp8BytesFor(config);

    /// <summary>
    /// How the resident blocks hold their projections (<see cref="ProjectionWeights.Fp8"/>: codes and scales only, so only
    /// FP8 linears run); null for streamed blocks, which are held as their host images were made.
    /// </summary>
    public ProjectionWeights? Projections => _blocks is ResidentBlocks<TransformerBlock> resident ? resident.Blocks[0].Projections : null;

    /// <summary>
    /// The rotary tables for latents of this size on this model's backend and dtype (5b style and 1.5; for 1.5 the
    /// latent frames are the padded count, a multiple of patch_size_t).
    /// </summary>
    public RotaryTables BuildRotaryTables(int latentFrames, int latentHeight, int latentWidth) =>
        RotaryTables.Build(Config, latentFrames, latentHeight, latentWidth, Backend, DType);

    /// <summary>
    /// One denoising call: <paramref name="latents"/> [B, F, C, H, W], <paramref name="textEmbeddings"/>
    /// [B, T, text_embed_dim] (for classifier-free guidance, [negative; positive]), one timestep per batch item (or
    /// one for all), and — 5b style — the run's <paramref name="rotary"/> tables. Returns the prediction
    /// [B, F, out_channels, H, W] in the model's dtype. A <paramref name="stepCache"/> may take the blocks' work of
    /// this call from an earlier one (before block 0, or after it); without one every block runs.
    /// </summary>
    public Tensor Forward(Tensor latents, Tensor textEmbeddings, ReadOnlySpan<float> timesteps, RotaryTables? rotary = null,
        CancellationToken cancellation = default, StepCache? stepCache = null) =>
        Forward(latents, textEmbeddings, timesteps, rotary, ofs: null, cancellation, stepCache);

    /// <summary>
    /// <see cref="Forward(Tensor, Tensor, ReadOnlySpan{float}, RotaryTables?, CancellationToken, StepCache?)"/> with the
    /// <paramref name="ofs"/> value of CogVideoX 1.5-I2V (its pipeline passes 2.0; the same for every batch item):
    /// required by a model with an <c>ofs_embed_dim</c>, refused by one without.
    /// </summary>
    public Tensor Forward(Tensor latents, Tensor textEmbeddings, ReadOnlySpan<float> timesteps, RotaryTables? rotary, float? ofs,
        CancellationToken cancellation = default, StepCache? stepCache = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var c = Config;
        CheckInputs(latents, textEmbeddings, timesteps, rotary, ofs);
        int b = latents.Dim(0), f = latents.Dim(1), h = latents.Dim(3), w = latents.Dim(4), p = c.PatchSize;
        int pt = c.PatchSizeT ?? 1;
        int textLength = textEmbeddings.Dim(1), videoLength = f / pt * (h / p) * (w / p);
        var perItem = new float[b];
        for (int i = 0; i < b; i++) perItem[i] = timesteps.Length == 1 ? timesteps[0] : timesteps[i];

        using var scope = new TensorScope();
        // A streaming source starts copying block 0 now, beside the embeddings' compute.
        _blocks.BeginPass();
        var x = latents.To(DType);
        var text = textEmbeddings.To(DType);
        var embedding = _module.TimeEmbedding.Forward(perItem);
        if (_module.OfsEmbedding is { } ofsEmbedding)
        {
            var ofsPerItem = new float[b];
            Array.Fill(ofsPerItem, ofs!.Value);
            embedding = embedding.Add(ofsEmbedding.Forward(ofsPerItem));
        }
        // Every adaptive norm takes SiLU(embedding); it is the same for all of them.
        var activated = embedding.Silu();

        var hidden = _module.PatchEmbed.Forward(x, text);
        bool reused = stepCache?.BeforeBlocks(embedding, hidden, textLength) ?? false;
        for (int i = 0; i < _blocks.Count && !reused; i++)
        {
            // A full-size step on the CPU takes minutes; a signal is honoured at the next layer, not the next step.
            cancellation.ThrowIfCancellationRequested();
            var block = _blocks.Acquire(i);
            block.Forward(hidden, textLength, activated, rotary, AttentionMode, Linears);
            // A streamed block's slot gets another block's weights next: its FP8 weights are made again for each use.
            if (_blocks is not ResidentBlocks<TransformerBlock>) block.ReleaseFp8();
            _blocks.Release(i);
            if (i == 0 && stepCache is not null) reused = stepCache.AfterFirstBlock(hidden, textLength);
        }
        if (!reused) stepCache?.AfterBlocks(hidden, textLength);

        var video = hidden.Narrow(1, textLength, videoLength);
        var normed = video.LayerNorm(_module.NormFinalWeight?.Value, _module.NormFinalBias?.Value, (float)c.NormEps);
        var modulated = _module.NormOut.Forward(normed, activated);
        var projected = modulated.Linear(_module.ProjOutWeight.Value, _module.ProjOutBias.Value);
        // Unpatchify: [B, F, h, w, C, p, p] → [B, F, C, h, p, w, p] → [B, F, C, H, W]; with temporal patches
        // [B, F/p_t, h, w, C, p_t, p, p] → [B, F/p_t, p_t, C, h, p, w, p] → [B, F, C, H, W].
        var output = c.PatchSizeT is null
            ? projected.Reshape(b, f, h / p, w / p, c.OutputChannels, p, p)
                .Permute(0, 1, 4, 2, 5, 3, 6)
                .Reshape(b, f, c.OutputChannels, h, w)
            : projected.Reshape(b, f / pt, h / p, w / p, c.OutputChannels, pt, p, p)
                .Permute(0, 1, 5, 4, 2, 6, 3, 7)
                .Reshape(b, f, c.OutputChannels, h, w);
        return scope.Keep(output);
    }

    private void CheckInputs(Tensor latents, Tensor text, ReadOnlySpan<float> timesteps, RotaryTables? rotary, float? ofs)
    {
        var c = Config;
        if (latents.Rank != 5 || latents.Dim(2) != c.InChannels)
            throw new CogVideoXException(
                $"transformer: latents must be [batch, frames, {c.InChannels}, height, width], got {latents.ShapeString}");
        int b = latents.Dim(0);
        if (b < 1) throw new CogVideoXException("transformer: the batch is empty");
        TransformerConfigCheck.LatentSize(c, latents.Dim(1), latents.Dim(3), latents.Dim(4));
        TransformerConfigCheck.LearnedTableSize(c, latents.Dim(3), latents.Dim(4));
        if (text.Rank != 3 || text.Dim(0) != b || text.Dim(2) != c.TextEmbedDim)
            throw new CogVideoXException(
                $"transformer: text embeddings must be [{b}, tokens, {c.TextEmbedDim}] for latents {latents.ShapeString}, got {text.ShapeString}");
        if ((!c.UseRotaryPositionalEmbeddings || c.UseLearnedPositionalEmbeddings) && text.Dim(1) != c.MaxTextSeqLength)
            throw new CogVideoXException(
                $"transformer: this model's positional table has room for exactly {c.MaxTextSeqLength} text tokens " +
                $"(max_text_seq_length), got {text.Dim(1)}; pad or truncate the prompt to {c.MaxTextSeqLength} tokens");
        if (timesteps.Length != b && timesteps.Length != 1)
            throw new CogVideoXException($"transformer: {timesteps.Length} timesteps for a batch of {b}; give one per batch item or one for all");
        if (!ReferenceEquals(latents.Backend, Backend) || !ReferenceEquals(text.Backend, Backend))
            throw new CogVideoXException(
                $"transformer: inputs must be on the model's device ({Backend.Device}); latents are on {latents.Device}, text on {text.Device}");
        if (c.OfsEmbedDim is > 0 && ofs is null)
            throw new CogVideoXException(
                $"transformer: this model has an ofs embedding (ofs_embed_dim {c.OfsEmbedDim}, CogVideoX 1.5 image-to-video) and needs an ofs value with every call; its pipeline passes 2.0");
        if (c.OfsEmbedDim is not > 0 && ofs is not null)
            throw new CogVideoXException(
                "transformer: this model has no ofs embedding (ofs_embed_dim is null; only CogVideoX 1.5 image-to-video has one); call it without an ofs value");
        if (ofs is { } o && !float.IsFinite(o))
            throw new CogVideoXException($"transformer: the ofs value must be a finite number (the pipeline passes 2.0), got {o}");
        if (c.UseRotaryPositionalEmbeddings)
        {
            int p = c.PatchSize;
            int f = latents.Dim(1) / (c.PatchSizeT ?? 1), gh = latents.Dim(3) / p, gw = latents.Dim(4) / p;
            if (rotary is null)
                throw new CogVideoXException(
                    "transformer: this model uses 3D rotary positions (use_rotary_positional_embeddings); build them with BuildRotaryTables for the run's latent size and pass them to every call");
            if (rotary.Frames != f || rotary.Height != gh || rotary.Width != gw)
                throw new CogVideoXException(
                    $"transformer: rotary tables were built for a {rotary.Frames}×{rotary.Height}×{rotary.Width} patch grid, the latents make {f}×{gh}×{gw}; rebuild them for this size");
            if (rotary.Cos.Dim(1) != c.AttentionHeadDim || !ReferenceEquals(rotary.Cos.Backend, Backend) || rotary.Cos.DType != DType)
                throw new CogVideoXException(
                    $"transformer: rotary tables must be [{rotary.Tokens}, {c.AttentionHeadDim}] {DType.Name()} on {Backend.Device}, got {rotary.Cos}; build them with BuildRotaryTables");
        }
        else if (rotary is not null)
        {
            throw new CogVideoXException(
                "transformer: this model uses sincos positional embeddings (use_rotary_positional_embeddings is false) and takes no rotary tables");
        }
    }

    /// <summary>Refuses a checkpoint that lacks tensors this config needs or holds tensors it would ignore.</summary>
    private static void CheckNames(TransformerConfig config, WeightScope weights, string configSource)
    {
        string prefix = weights.Prefix.Length == 0 ? "" : weights.Prefix + ".";
        var present = weights.Checkpoint.Names.Where(n => n.StartsWith(prefix, StringComparison.Ordinal))
            .Select(n => n[prefix.Length..]).ToHashSet(StringComparer.Ordinal);
        // The layer count comes from the config alone: a config that needs far more tensors than the checkpoint holds
        // is refused before a name list num_layers long is built; nearer counts get the itemised comparison below.
        int perBlock = ParameterShapes(config with { NumLayers = 1 }, configSource)
            .Count(e => e.Name.StartsWith("transformer_blocks.0.", StringComparison.Ordinal));
        long blockTensors = (long)perBlock * config.NumLayers;
        if (blockTensors > 2L * present.Count)
            throw new WeightsException(
                $"{weights.Checkpoint.Source}: the transformer config's num_layers {config.NumLayers} needs {blockTensors} block tensors " +
                $"({perBlock} per layer), but the checkpoint holds {present.Count} tensors in all. " +
                "Use the config.json that came with these weights.");
        var expected = ParameterShapes(config, configSource).Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
        var missing = expected.Where(n => !present.Contains(n)).OrderBy(n => n, StringComparer.Ordinal).ToList();
        var unexpected = present.Where(n => !expected.Contains(n)).OrderBy(n => n, StringComparer.Ordinal).ToList();
        if (missing.Count == 0 && unexpected.Count == 0) return;
        var problems = new List<string>();
        if (missing.Count > 0) problems.Add($"{missing.Count} missing ({Sample(missing, prefix)})");
        if (unexpected.Count > 0) problems.Add($"{unexpected.Count} not used by this config ({Sample(unexpected, prefix)})");
        throw new WeightsException(
            $"{weights.Checkpoint.Source}: the weights do not match the transformer config (num_layers {config.NumLayers}, " +
            $"{config.NumAttentionHeads} heads × {config.AttentionHeadDim}): tensors {string.Join("; ", problems)}. " +
            "Use the config.json that came with these weights.");
    }

    private static string Sample(List<string> names, string prefix) =>
        string.Join(", ", names.Take(4).Select(n => $"'{prefix}{n}'")) + (names.Count > 4 ? ", …" : "");

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _blocks.Dispose();
        _module.Dispose();
    }
}

/// <summary>
/// The transformer's module tree: <c>patch_embed</c>, <c>time_embedding</c>, <c>transformer_blocks.{i}</c> (when
/// resident), <c>norm_final</c>, <c>norm_out</c>, <c>proj_out</c>.
/// </summary>
internal sealed class CogVideoXTransformerModule : Module
{
    public CogVideoXTransformerModule(TransformerConfig config, string configSource, bool residentBlocks, ProjectionWeights projections = ProjectionWeights.Exact)
    {
        var ffActivation = TransformerConfigCheck.FeedForwardActivation(config, configSource);
        var timeActivation = TransformerConfigCheck.TimestepActivation(config, configSource);
        PatchEmbed = Child("patch_embed", new PatchEmbedding(config));
        TimeEmbedding = Child("time_embedding", new TimestepEmbedding(config, timeActivation));
        // CogVideoX 1.5-I2V: ofs_proj (no weights) + ofs_embedding, ofs_embed_dim wide on both sides.
        if (config.OfsEmbedDim is { } ofsDim && ofsDim > 0)
            OfsEmbedding = Child("ofs_embedding", new TimestepEmbedding(ofsDim, ofsDim, config.FlipSinToCos, config.FreqShift, timeActivation));
        if (residentBlocks)
        {
            var blocks = new TransformerBlock[config.NumLayers];
            for (int i = 0; i < blocks.Length; i++) blocks[i] = Child($"transformer_blocks.{i}", new TransformerBlock(config, ffActivation, projections));
            Blocks = blocks;
        }
        if (config.NormElementwiseAffine)
        {
            NormFinalWeight = Weight("norm_final.weight", config.InnerDim);
            NormFinalBias = Weight("norm_final.bias", config.InnerDim);
        }
        NormOut = Child("norm_out", new AdaLayerNorm(config));
        int outFeatures = config.PatchSize * config.PatchSize * (config.PatchSizeT ?? 1) * config.OutputChannels;
        ProjOutWeight = Weight("proj_out.weight", outFeatures, config.InnerDim);
        ProjOutBias = Weight("proj_out.bias", outFeatures);
    }

    public PatchEmbedding PatchEmbed { get; }

    public TimestepEmbedding TimeEmbedding { get; }

    /// <summary>The ofs embedding of CogVideoX 1.5-I2V; null for every other model.</summary>
    public TimestepEmbedding? OfsEmbedding { get; }

    public IReadOnlyList<TransformerBlock> Blocks { get; } = [];

    public Parameter? NormFinalWeight { get; }

    public Parameter? NormFinalBias { get; }

    public AdaLayerNorm NormOut { get; }

    public Parameter ProjOutWeight { get; }

    public Parameter ProjOutBias { get; }
}
