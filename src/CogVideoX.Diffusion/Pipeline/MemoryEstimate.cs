using System.Globalization;
using CogVideoX.Engine;
using CogVideoX.Models.Modules;
using CogVideoX.Models.Text;
using CogVideoX.Models.Transformer;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>
/// Device bytes a run needs at the peak of each stage in one memory mode (weights present then, plus the stage's
/// working memory). An estimate from the component configs and the video size, for choosing a mode before a run and
/// for saying which mode fits after an out-of-memory error; the allocator's measured peak is the real figure.
/// </summary>
/// <remarks><see cref="EncodeStage"/>: the VAE encoder's stage of image- and video-to-video (0 for text-to-video).</remarks>
public sealed record MemoryEstimate(string Mode, long TextEncoderStage, long DenoiseStage, long DecodeStage, long EncodeStage = 0)
{
    public long Peak => Math.Max(Math.Max(TextEncoderStage, EncodeStage), Math.Max(DenoiseStage, DecodeStage));

    /// <summary>"≈ 6.6 GiB (text encoder 1.2, denoise 4.7, decode 6.6)", with "encode 3.9" after the text encoder when there is one.</summary>
    public override string ToString() =>
        $"≈ {MemorySizes.Format(Peak)} (text encoder {MemorySizes.Gib(TextEncoderStage)}, " + (EncodeStage > 0 ? $"encode {MemorySizes.Gib(EncodeStage)}, " : "") +
        $"denoise {MemorySizes.Gib(DenoiseStage)}, decode {MemorySizes.Gib(DecodeStage)})";
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

    /// <summary>Frames the VAE encoder encodes (1 for image-to-video, the video's for video-to-video; 0: none, text-to-video).</summary>
    public int EncodedFrames { get; init; }

    /// <summary>The VAE encoder's weights (image- and video-to-video; 0 otherwise). It is loaded and released with the decoder.</summary>
    public long VaeEncoder { get; init; }

    /// <summary>VAE encode working memory, whole frames and with the default tiles (0 without an encode).</summary>
    public long EncodeWorking { get; init; }

    public long EncodeWorkingTiled { get; init; }

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
    /// Sizes for a model folder in <paramref name="dtype"/> at a video size: each component sizes itself (weights from
    /// its module tree, working memory from its own formula); this only works out the latent size and combines them.
    /// </summary>
    /// <remarks>
    /// <paramref name="encodedFrames"/>: the frames the VAE encoder takes first (image-to-video 1, video-to-video the
    /// video's frames; 0 for text-to-video): its weights and working memory then count too. <paramref name="linears"/>
    /// and <paramref name="projections"/>: the transformer blocks' projections (FP8 linears: their working memory; FP8-only
    /// projections: codes and scales instead of the exact weights; exact projections under FP8 linears: FP8 copies beside).
    /// </remarks>
    public static ModelMemory Measure(ModelFolder model, DType dtype, int frames, int height, int width, bool classifierFreeGuidance, int textLength,
        int encodedFrames = 0, LinearMode linears = LinearMode.Exact, ProjectionWeights projections = ProjectionWeights.Exact)
    {
        var vae = model.Vae;
        int latentFrames = GenerationRules.LatentFrames(frames, vae.TemporalCompressionRatio);
        int spatial = vae.SpatialCompressionRatio;
        var text = T5Encoder.EstimateMemory(model.TextEncoder, dtype, textLength);
        // CogVideoX 1.5 denoises the latents padded to whole temporal patches and decodes them trimmed.
        int padded = latentFrames + ModelDefaults.For(model.Transformer).LatentPadding(latentFrames);
        var transformer = CogVideoXTransformer.EstimateMemory(model.Transformer, dtype, classifierFreeGuidance ? 2 : 1, textLength,
            padded, height / spatial, width / spatial, linears, projections);
        int decodedFrames = GenerationRules.DecodedFrames(latentFrames, vae.TemporalCompressionRatio);
        var decode = CogVideoXVae.EstimateMemory(vae, dtype, decodedFrames, height, width, tiled: false);
        var decodeTiled = CogVideoXVae.EstimateMemory(vae, dtype, decodedFrames, height, width, tiled: true);
        ComponentMemory? encode = null, encodeTiled = null;
        if (encodedFrames > 0)
        {
            // The encoder runs in the decoder's dtype (CogVideoXVaeEncoder.EncodeDType).
            var encodeDType = CogVideoXVaeEncoder.EncodeDType(dtype);
            encode = CogVideoXVaeEncoder.EstimateMemory(vae, encodeDType, encodedFrames, height, width, tiled: false);
            encodeTiled = CogVideoXVaeEncoder.EstimateMemory(vae, encodeDType, encodedFrames, height, width, tiled: true);
        }
        return new ModelMemory
        {
            EncodedFrames = Math.Max(0, encodedFrames),
            VaeEncoder = encode?.WeightBytes ?? 0,
            EncodeWorking = encode?.WorkingBytes ?? 0,
            EncodeWorkingTiled = encodeTiled?.WorkingBytes ?? 0,
            TextEncoderBlock = text.BlockBytes,
            TextEncoderBlocks = text.Blocks,
            TextEncoderRest = text.RestBytes,
            TransformerBlock = transformer.BlockBytes,
            TransformerBlocks = transformer.Blocks,
            TransformerRest = transformer.RestBytes,
            VaeDecoder = decode.WeightBytes,
            TextEncoderWorking = text.WorkingBytes,
            DenoiseWorking = transformer.WorkingBytes,
            DecodeWorking = decode.WorkingBytes,
            DecodeWorkingTiled = decodeTiled.WorkingBytes,
        };
    }

    /// <summary>The estimate for one mode. <paramref name="streams"/>: whether the backend streams weights (else blocks load whole).</summary>
    public static MemoryEstimate Estimate(ModelMemory m, IMemoryPolicy policy, bool streams, bool tiling)
    {
        long text = Weights(policy, ModelComponent.TextEncoder, streams, m.TextEncoderRest, m.TextEncoderBlock, m.TextEncoderBlocks);
        long transformer = Weights(policy, ModelComponent.Transformer, streams, m.TransformerRest, m.TransformerBlock, m.TransformerBlocks);
        bool keep = policy.KeepAfterUse(ModelComponent.TextEncoder);
        // Kept components are all resident from the second video on, at every stage.
        // Kept, the VAE's encoding half (image- and video-to-video) stays with the decoder; otherwise it goes after its stage.
        long resident = keep ? text + transformer + m.VaeDecoder + m.VaeEncoder : 0;
        bool tiles = tiling || (policy.TilesVae && streams);
        long decode = tiles ? m.DecodeWorkingTiled : m.DecodeWorking;
        // The encode comes after the text encoder's stage (released by then unless kept) and loads the encoder alone.
        long encode = m.EncodedFrames > 0 ? (keep ? resident : m.VaeEncoder) + (tiles ? m.EncodeWorkingTiled : m.EncodeWorking) + Margin : 0;
        return new MemoryEstimate(policy.Name,
            (keep ? resident : text) + m.TextEncoderWorking + Margin,
            (keep ? resident : transformer) + m.DenoiseWorking + Margin,
            (keep ? resident : m.VaeDecoder) + decode + Margin,
            encode);
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
