using CogVideoX.Engine;
using CogVideoX.Models.Modules;
using CogVideoX.Weights;

namespace CogVideoX.Models.Vae;

/// <summary>
/// The decoding half of diffusers' AutoencoderKLCogVideoX: latents [B, C, F, h, w] (already divided by the scaling
/// factor) → video [B, 3, F', h·8, w·8]. The latent frames are decoded in batches of two with the convolution caches
/// carried between batches (the first batch takes the odd frame), so the working memory is that of one frame batch
/// (of one tile when tiling) plus the caches and the output, whatever the length of the video. For the 2b config
/// at 13 → 49 frames of 480×720 in float32 that is 12.7 GiB at the peak (5.2 GiB of caches, 7.3 GiB in resnet 0
/// of the last up block, 0.19 GiB of output), about 3.5 GiB with the default tiles.
/// </summary>
public sealed class CogVideoXVae : IDisposable
{
    /// <summary>
    /// Latent frames per decoder call (diffusers' num_latent_frames_batch_size). The VAE was trained this way: other
    /// values change the result, which is why it is not an option.
    /// </summary>
    public const int LatentFramesPerBatch = 2;

    /// <summary>
    /// The VAE decoder's working memory measured for the CogVideoX-2b config decoding 13 latent frames into 49 frames of
    /// 480×720 in float32: 5.2 GiB of convolution caches and 7.3 GiB inside resnet 0 of the last up block. Both scale
    /// with the pixels of a frame (or a tile), the width of the decoder and the dtype's size, not the frame count.
    /// </summary>
    private const double DecodeReferenceBytes = 12.5 * (1L << 30);

    private const double DecodeReferencePixels = 480.0 * 720.0;

    private readonly VaeDecoderModule _module;

    /// <summary>Builds the decoder from a VAE checkpoint (only <c>decoder.*</c> and, when used, <c>post_quant_conv.*</c> are read).</summary>
    public CogVideoXVae(VaeConfig config, WeightScope weights)
    {
        Config = config;
        _module = new VaeDecoderModule(config, weights.Checkpoint.Source);
        _module.Load(weights);
        Backend = weights.Backend;
        DType = weights.DType;
    }

    /// <summary>
    /// The dtype the decoder computes in for a pipeline computing in <paramref name="pipelineDType"/>: BF16 pipelines
    /// (the published 5b) decode in F16. bf16's 8-bit mantissa in the stored activations put the golden decodes at up
    /// to 1.8× the GPU tolerance (on the CPU backend as on the GPU), F16 at 0.23×; the 2b pipeline has always decoded
    /// this VAE in F16 (in diffusers too), so its weights and activations fit F16's range. diffusers decodes the 5b in
    /// bf16; this gives the more accurate frames at the same memory and speed.
    /// </summary>
    public static DType DecodeDType(DType pipelineDType) => pipelineDType == DType.BF16 ? DType.F16 : pipelineDType;

    /// <summary>Loads <c>config.json</c> and the safetensors weights of a VAE folder (e.g. <c>THUDM/CogVideoX-2b/vae</c>).</summary>
    public static CogVideoXVae Load(string folder, IBackend backend, DType dtype)
    {
        var config = VaeConfig.Load(Path.Combine(folder, "config.json"));
        using var checkpoint = Checkpoint.Open(folder);
        return new CogVideoXVae(config, checkpoint.Scope(backend, dtype));
    }

    /// <summary>
    /// Loads the encoding half from the same VAE folder (<see cref="CogVideoXVaeEncoder"/>): a separate object, so
    /// runs that never encode do not hold the encoder's weights.
    /// </summary>
    public static CogVideoXVaeEncoder LoadEncoder(string folder, IBackend backend, DType dtype) => CogVideoXVaeEncoder.Load(folder, backend, dtype);

    /// <summary>Every checkpoint tensor the decoding half reads (decoder, and post_quant_conv when used), with its shape.</summary>
    public static IReadOnlyList<(string Name, int[] Shape)> DecoderParameterShapes(VaeConfig config)
    {
        using var tree = new VaeDecoderModule(config, "VAE config");
        return tree.CheckpointTensors;
    }

    /// <summary>
    /// Device bytes of the decoding half in <paramref name="dtype"/> for a video of <paramref name="decodedFrames"/>
    /// frames of <paramref name="height"/>×<paramref name="width"/>: its weights (no repeated blocks), and the working
    /// memory of a decode — whole frames, or with the config's default tiles when <paramref name="tiled"/> (never more
    /// than whole frames). The output video is included.
    /// </summary>
    public static ComponentMemory EstimateMemory(VaeConfig config, DType dtype, int decodedFrames, int height, int width, bool tiled) =>
        EstimateMemory(config, dtype, decodedFrames, height, width, tiled ? VaeTiling.ForConfig(config) : null);

    /// <summary>
    /// <see cref="EstimateMemory(VaeConfig, DType, int, int, int, bool)"/> with the given <paramref name="tiling"/>
    /// (null: whole frames).
    /// </summary>
    public static ComponentMemory EstimateMemory(VaeConfig config, DType dtype, int decodedFrames, int height, int width, VaeTiling? tiling)
    {
        using var tree = new VaeDecoderModule(config, "VAE config");
        int s = dtype.SizeOf();
        long output = (long)decodedFrames * config.OutChannels * height * width * s;
        double scale = config.BlockOutChannels[0] / 128.0 * s / 4.0;
        long whole = (long)(DecodeReferenceBytes * scale * (height * (double)width / DecodeReferencePixels)) + output;
        long working = whole;
        if (tiling is { } tiles)
        {
            int tileHeight = Math.Min(height, tiles.TileSampleMinHeight), tileWidth = Math.Min(width, tiles.TileSampleMinWidth);
            int columns = (int)Math.Ceiling(width / (tiles.TileSampleMinWidth * (1 - tiles.OverlapFactorWidth)));
            // The caches and working memory of one tile, two rows of decoded tiles, the output.
            long tileOutputs = 2L * Math.Max(columns, 1) * (output / ((long)height * width) * tileHeight * tileWidth);
            long decodeTiled = (long)(DecodeReferenceBytes * scale * (tileHeight * (double)tileWidth / DecodeReferencePixels)) + tileOutputs + output;
            working = Math.Min(decodeTiled, whole);
        }
        return new ComponentMemory(0, 0, tree.Bytes(dtype), working);
    }

    /// <summary>
    /// The fewest full-height column tiles (<see cref="VaeTiling.Columns"/>) whose decode of a video of this size
    /// is estimated within <paramref name="budgetBytes"/> (weights, working memory and output together), or null when
    /// the whole frames already fit; the default tiles when no number of columns does.
    /// </summary>
    public static VaeTiling? FitTiling(VaeConfig config, DType dtype, int decodedFrames, int height, int width, long budgetBytes)
    {
        int scale = 1 << (config.BlockOutChannels.Length - 1);
        var whole = EstimateMemory(config, dtype, decodedFrames, height, width, tiling: null);
        if (whole.RestBytes + whole.WorkingBytes <= budgetBytes) return null;
        for (int columns = 2; columns <= Math.Max(2, width / scale / 16); columns++)
        {
            var tiling = VaeTiling.Columns(height, width, columns, scale);
            var estimate = EstimateMemory(config, dtype, decodedFrames, height, width, tiling);
            if (estimate.RestBytes + estimate.WorkingBytes <= budgetBytes) return tiling;
        }
        return VaeTiling.ForConfig(config);
    }

    public VaeConfig Config { get; }

    public Decoder3d Decoder => _module.Decoder;

    public IBackend Backend { get; }

    public DType DType { get; }

    /// <summary>Output pixels per latent pixel.</summary>
    public int SpatialScale => Decoder.SpatialScale;

    /// <summary>Frames decoded from <paramref name="latentFrames"/> latent frames (49 from 13; 16 from 4, as diffusers).</summary>
    public int OutputFrames(int latentFrames)
    {
        int total = 0;
        foreach (var (start, count) in FrameBatches(latentFrames)) total += Decoder.OutputFrames(count);
        return total;
    }

    /// <summary>
    /// diffusers' frame batches: max(F / 2, 1) batches of two frames, the first also taking the odd frame
    /// (13 → 3, 2, 2, 2, 2, 2; 4 → 2, 2; 1 → 1).
    /// </summary>
    public static IEnumerable<(int Start, int Count)> FrameBatches(int latentFrames) => Frames.Batches(latentFrames, LatentFramesPerBatch);

    /// <summary>
    /// Decodes latents z [B, latent_channels, F, h, w] into [B, out_channels, F', h·8, w·8] on this model's backend
    /// and dtype (z is converted when it lives elsewhere). z is not modified or released.
    /// </summary>
    public Tensor Decode(Tensor z, VaeDecodeOptions? options = null)
    {
        options ??= new VaeDecodeOptions();
        CheckLatents(z);
        var plan = options.Tiling?.Plan(SpatialScale);
        using var scope = new TensorScope();
        using var latents = ReferenceEquals(z.Backend, Backend) && z.DType == DType ? z.Alias() : ToModel(z);
        int b = latents.Dim(0), frames = latents.Dim(2), h = latents.Dim(3), w = latents.Dim(4);
        bool tiled = plan is { } p && p.Cuts(h, w);
        var (outHeight, outWidth) = tiled ? plan!.Value.OutputSize(h, w, (_, n) => n * SpatialScale, (_, n) => n * SpatialScale) : (h * SpatialScale, w * SpatialScale);
        var output = Tensor.Empty(Backend, DType, b, Decoder.OutChannels, OutputFrames(frames), outHeight, outWidth);
        int tiles = tiled ? plan!.Value.Count(h, w) : 1;
        var progress = new BatchCounter(options.Progress, FrameBatches(frames).Count() * tiles * (options.Slicing && b > 1 ? b : 1));
        if (options.Slicing && b > 1)
        {
            for (int i = 0; i < b; i++)
            {
                using var item = latents.Narrow(0, i, 1);
                using var destination = output.Narrow(0, i, 1);
                DecodeInto(item, destination, tiled ? plan : null, progress, options.Cancellation);
            }
        }
        else
        {
            DecodeInto(latents, output, tiled ? plan : null, progress, options.Cancellation);
        }
        return scope.Keep(output);
    }

    private Tensor ToModel(Tensor z)
    {
        using var moved = z.To(Backend);
        return moved.To(DType);
    }

    private void CheckLatents(Tensor z)
    {
        if (z.IsDisposed) throw new ObjectDisposedException(nameof(z), "the latents passed to the VAE were already disposed");
        if (z.Rank != 5 || z.Dim(1) != Config.LatentChannels)
            throw new CogVideoXException($"VAE decode: latents must be [batch, {Config.LatentChannels} channels, frames, height, width], got {z.ShapeString}");
        if (!z.DType.IsFloat())
            throw new CogVideoXException($"VAE decode: latents must be a float tensor, got {z.DType.Name()}");
        for (int d = 0; d < 5; d++)
            if (z.Dim(d) == 0)
                throw new CogVideoXException($"VAE decode: latents {z.ShapeString} are empty; every dimension must be at least 1");
    }

    private void DecodeInto(Tensor z, Tensor destination, TilePlan? plan, BatchCounter progress, CancellationToken cancellation)
    {
        if (plan is { } p) DecodeTiled(z, destination, p, progress, cancellation);
        else DecodeFrames(z, destination, progress, cancellation);
    }

    /// <summary>Decodes every frame batch of z, carrying the caches, straight into destination's frames.</summary>
    private void DecodeFrames(Tensor z, Tensor destination, BatchCounter progress, CancellationToken cancellation)
    {
        using var cache = Decoder.CreateCache();
        cache.Cancellation = cancellation;
        int at = 0;
        foreach (var (start, count) in FrameBatches(z.Dim(2)))
        {
            cancellation.ThrowIfCancellationRequested();
            // Everything a batch allocates goes with its scope, except the carried frames.
            using var batch = new TensorScope();
            using var slice = z.Narrow(2, start, count);
            using var latents = PostQuant(slice);
            using var decoded = Decoder.Forward(latents, cache);
            using (var target = destination.Narrow(2, at, decoded.Dim(2))) decoded.CopyTo(target);
            at += decoded.Dim(2);
            cache.KeepFrom(batch);
            progress.Done();
        }
    }

    private Tensor PostQuant(Tensor z) => _module.PostQuantWeight is null ? z.Alias()
        : z.Conv3d(_module.PostQuantWeight.Value, _module.PostQuantBias!.Value, new Conv3dParams(1, 1, 1, 0, 0, 0));

    // ---- tiling (diffusers' tiled_decode) ----

    /// <summary>Each tile is decoded (all frames, its own caches) and placed by <see cref="TilePlan.Run"/>.</summary>
    private void DecodeTiled(Tensor z, Tensor destination, TilePlan p, BatchCounter progress, CancellationToken cancellation) =>
        p.Run(z, destination,
            (th, tw) => Tensor.Empty(Backend, DType, z.Dim(0), Decoder.OutChannels, destination.Dim(2), th * SpatialScale, tw * SpatialScale),
            (latentTile, tile) => DecodeFrames(latentTile, tile, progress, cancellation));

    public void Dispose() => _module.Dispose();
}

/// <summary>The decoding half's module tree: <c>decoder</c> and, when the config uses it, <c>post_quant_conv</c>.</summary>
internal sealed class VaeDecoderModule : Module
{
    public VaeDecoderModule(VaeConfig config, string source)
    {
        Decoder = Child("decoder", new Decoder3d(config, source));
        if (config.UsePostQuantConv)
        {
            // diffusers sizes post_quant_conv by out_channels, so it can only run when that equals latent_channels.
            if (config.OutChannels != config.LatentChannels)
                throw new WeightsException($"{source}: use_post_quant_conv needs out_channels ({config.OutChannels}) equal to latent_channels ({config.LatentChannels}), as diffusers builds it");
            PostQuantWeight = Weight("post_quant_conv.weight", config.OutChannels, config.OutChannels, 1, 1, 1);
            PostQuantBias = Weight("post_quant_conv.bias", config.OutChannels);
        }
    }

    public Decoder3d Decoder { get; }

    public Parameter? PostQuantWeight { get; }

    public Parameter? PostQuantBias { get; }
}

/// <summary>Counts finished frame batches for a decode's or an encode's progress callback.</summary>
internal sealed class BatchCounter(Action<int, int>? report, int total)
{
    private int _done;

    public void Done() => report?.Invoke(++_done, total);
}
