using System.Globalization;
using CogVideoX.Engine;
using CogVideoX.Models.Transformer;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>
/// Device bytes a run needs at the peak of each stage in one memory mode (weights present then, plus the stage's
/// working memory). An estimate from the component configs and the video size, for choosing a mode before a run and
/// for saying which mode fits after an out-of-memory error; the allocator's measured peak is the real figure.
/// </summary>
public sealed record MemoryEstimate(string Mode, long TextEncoderStage, long DenoiseStage, long DecodeStage)
{
    public long Peak => Math.Max(TextEncoderStage, Math.Max(DenoiseStage, DecodeStage));

    /// <summary>"≈ 6.6 GiB (text encoder 1.2, denoise 4.7, decode 6.6)".</summary>
    public override string ToString() =>
        $"≈ {MemorySizes.Format(Peak)} (text encoder {MemorySizes.Gib(TextEncoderStage)}, denoise {MemorySizes.Gib(DenoiseStage)}, decode {MemorySizes.Gib(DecodeStage)})";
}

/// <summary>
/// The byte sizes the estimate is built from: each component's weights in the compute dtype (split into the repeated
/// blocks and the rest, for streaming), and the working memory of each stage for one video size.
/// </summary>
public sealed record ModelMemory
{
    public long TextEncoderBlock { get; init; }

    public int TextEncoderBlocks { get; init; }

    public long TextEncoderRest { get; init; }

    public long TransformerBlock { get; init; }

    public int TransformerBlocks { get; init; }

    public long TransformerRest { get; init; }

    public long VaeDecoder { get; init; }

    public long TextEncoderWorking { get; init; }

    public long DenoiseWorking { get; init; }

    /// <summary>VAE decode working memory, whole frames and with the default tiles.</summary>
    public long DecodeWorking { get; init; }

    public long DecodeWorkingTiled { get; init; }

    public long TextEncoder => TextEncoderRest + TextEncoderBlock * TextEncoderBlocks;

    public long Transformer => TransformerRest + TransformerBlock * TransformerBlocks;
}

/// <summary>Estimates per mode (see <see cref="MemoryEstimate"/>).</summary>
public static class MemoryEstimator
{
    /// <summary>
    /// Room for what the formulas leave out: the GEMM workspace, attention scratch (at most 256 MiB), the latents and
    /// small tensors, the allocator's rounding.
    /// </summary>
    public const long Margin = 384L << 20;

    /// <summary>
    /// The VAE decoder's working memory measured for the CogVideoX-2b config decoding 13 latent frames into 49 frames of
    /// 480×720 in float32 (see <see cref="CogVideoXVae"/>): 5.2 GiB of convolution caches and 7.3 GiB inside resnet 0 of
    /// the last up block. Both scale with the pixels of a frame (or a tile) and the dtype's size, not the frame count.
    /// </summary>
    private const double DecodeReferenceBytes = 12.5 * (1L << 30);

    private const double DecodeReferencePixels = 480.0 * 720.0;

    /// <summary>Sizes for a model folder in <paramref name="dtype"/> at a video size.</summary>
    public static ModelMemory Measure(ModelFolder model, DType dtype, int frames, int height, int width, bool classifierFreeGuidance, int textLength)
    {
        int s = dtype.SizeOf();
        var t5 = model.TextEncoder;
        bool keepWoFloat32 = dtype == DType.F16;
        long d = t5.DModel, inner = (long)t5.NumHeads * t5.DKv, ff = t5.DFf;
        // wo stays in the checkpoint's half type (published T5 weights are F16/BF16) and is widened for one layer at a time.
        long t5Block = (4 * d * inner + (t5.Gated ? 2 : 1) * d * ff) * s + d * ff * s
            + 2 * d * s + (keepWoFloat32 ? 2 * d * 4 : 0);
        long t5Rest = (long)t5.VocabSize * d * s + d * s + (keepWoFloat32 ? d * 4 : 0) + (long)t5.RelativeAttentionNumBuckets * t5.NumHeads * s;
        int length = Math.Max(textLength, 1);
        // The residual stream (float32 under F16), a norm, the projections, the gated feed-forward and the position bias.
        long t5Working = length * (3 * d * 4 + 4 * inner * s + 3 * ff * s) + (long)t5.NumHeads * length * length * s
            + 3L * 2 * length * d * s + (keepWoFloat32 ? d * ff * 4 : 0);

        var tc = model.Transformer;
        var shapes = CogVideoXTransformer.ParameterShapes(tc);
        long blockElements = 0, restElements = 0;
        foreach (var (name, shape) in shapes)
        {
            long n = shape.Aggregate(1L, (a, b) => a * b);
            if (name.StartsWith("transformer_blocks.0.", StringComparison.Ordinal)) blockElements += n;
            else if (!name.StartsWith("transformer_blocks.", StringComparison.Ordinal)) restElements += n;
        }
        int latentFrames = GenerationRules.LatentFrames(frames, model.Vae.TemporalCompressionRatio);
        int spatial = model.Vae.SpatialCompressionRatio, p = tc.PatchSize;
        long tokens = textLength + (long)latentFrames * (height / spatial / p) * (width / spatial / p);
        int batch = classifierFreeGuidance ? 2 : 1;
        // Inside a block at its peak (the attention): the hidden state, its norm, q/k/v (3), normed q and k, the merged
        // heads and to_out's result — 9 hidden-sized tensors — plus one for the rotary copy (5b style).
        long hiddenBytes = batch * tokens * tc.InnerDim * s;
        long denoiseWorking = hiddenBytes * (tc.UseRotaryPositionalEmbeddings ? 10 : 9) + 2L * batch * textLength * tc.TextEmbedDim * s;

        var vae = model.Vae;
        long output = (long)GenerationRules.DecodedFrames(latentFrames, vae.TemporalCompressionRatio) * vae.OutChannels * height * width * s;
        double scale = vae.BlockOutChannels[0] / 128.0 * s / 4.0;
        long decodeWorking = (long)(DecodeReferenceBytes * scale * (height * (double)width / DecodeReferencePixels)) + output;
        var tiles = VaeTiling.ForConfig(vae);
        int tileHeight = Math.Min(height, tiles.TileSampleMinHeight), tileWidth = Math.Min(width, tiles.TileSampleMinWidth);
        int columns = (int)Math.Ceiling(width / (tiles.TileSampleMinWidth * (1 - tiles.OverlapFactorWidth)));
        // Tiled: the caches and working memory of one tile, two rows of decoded tiles, the output.
        long tileOutputs = 2L * Math.Max(columns, 1) * (output / ((long)height * width) * tileHeight * tileWidth);
        long decodeTiled = (long)(DecodeReferenceBytes * scale * (tileHeight * (double)tileWidth / DecodeReferencePixels)) + tileOutputs + output;

        return new ModelMemory
        {
            TextEncoderBlock = t5Block,
            TextEncoderBlocks = t5.NumLayers,
            TextEncoderRest = t5Rest,
            TransformerBlock = blockElements * s,
            TransformerBlocks = tc.NumLayers,
            TransformerRest = restElements * s,
            VaeDecoder = CogVideoXVae.DecoderParameterShapes(vae).Sum(e => e.Shape.Aggregate(1L, (a, b) => a * b)) * s,
            TextEncoderWorking = t5Working,
            DenoiseWorking = denoiseWorking,
            DecodeWorking = decodeWorking,
            DecodeWorkingTiled = Math.Min(decodeTiled, decodeWorking),
        };
    }

    /// <summary>The estimate for one mode. <paramref name="streams"/>: whether the backend streams weights (else blocks load whole).</summary>
    public static MemoryEstimate Estimate(ModelMemory m, IMemoryPolicy policy, bool streams, bool tiling)
    {
        long text = Weights(policy, ModelComponent.TextEncoder, streams, m.TextEncoderRest, m.TextEncoderBlock, m.TextEncoderBlocks);
        long transformer = Weights(policy, ModelComponent.Transformer, streams, m.TransformerRest, m.TransformerBlock, m.TransformerBlocks);
        bool keep = policy.KeepAfterUse(ModelComponent.TextEncoder);
        // Kept components are all resident from the second video on, at every stage.
        long resident = keep ? text + transformer + m.VaeDecoder : 0;
        long decode = (tiling || (policy.TilesVae && streams)) ? m.DecodeWorkingTiled : m.DecodeWorking;
        return new MemoryEstimate(policy.Name,
            (keep ? resident : text) + m.TextEncoderWorking + Margin,
            (keep ? resident : transformer) + m.DenoiseWorking + Margin,
            (keep ? resident : m.VaeDecoder) + decode + Margin);
    }

    /// <summary>The share of the usable memory a mode may plan to fill (the rest is headroom for fragmentation and other processes).</summary>
    public const double UsableFraction = 0.9;

    /// <summary>
    /// Every mode's estimate, and the fastest mode (full, balanced, low in that order) whose peak fits in
    /// <paramref name="usable"/> bytes with headroom — null when none does.
    /// </summary>
    public static (IMemoryPolicy? Choice, IReadOnlyList<MemoryEstimate> Estimates) Choose(ModelMemory sizes, long usable, bool streams, bool tiling)
    {
        var estimates = MemoryPolicies.Concrete.Select(p => Estimate(sizes, p, streams, tiling)).ToList();
        int fits = estimates.FindIndex(e => e.Peak <= usable * UsableFraction);
        return (fits < 0 ? null : MemoryPolicies.Concrete[fits], estimates);
    }

    private static long Weights(IMemoryPolicy policy, ModelComponent component, bool streams, long rest, long block, int blocks)
    {
        var residency = streams ? policy.Residency(component) : WeightResidency.Loaded;
        return rest + block * (residency == WeightResidency.Streamed ? Math.Min(2, blocks) : blocks);
    }
}

/// <summary>Byte counts as people read them.</summary>
public static class MemorySizes
{
    /// <summary>"6.62 GiB", "412.0 MiB".</summary>
    public static string Format(long bytes) => bytes >= 1L << 30
        ? $"{(bytes / (double)(1L << 30)).ToString("0.00", CultureInfo.InvariantCulture)} GiB"
        : $"{(bytes / (double)(1L << 20)).ToString("0.0", CultureInfo.InvariantCulture)} MiB";

    /// <summary>GiB with one decimal, no unit ("6.6").</summary>
    public static string Gib(long bytes) => (bytes / (double)(1L << 30)).ToString("0.0", CultureInfo.InvariantCulture);
}
