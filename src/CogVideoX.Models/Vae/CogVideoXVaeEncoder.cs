using CogVideoX.Engine;
using CogVideoX.Models.Modules;
using CogVideoX.Weights;

namespace CogVideoX.Models.Vae;

/// <summary>
/// The encoding half of diffusers' AutoencoderKLCogVideoX (<c>vae.encode(video).latent_dist</c>): video
/// [B, 3, F, H, W] with values in [−1, 1] → a <see cref="LatentDistribution"/> over latents [B, C, F', H/8, W/8]
/// (not yet multiplied by the scaling factor). The frames are encoded in batches of eight (the first also taking the
/// remainder: 49 → 9, 8, 8, 8, 8, 8) with the convolution caches carried between batches, so the working memory is
/// that of one frame batch (of one tile when tiling) plus the caches, whatever the length of the video. Loaded on its
/// own from the VAE folder (only <c>encoder.*</c> and, when used, <c>quant_conv.*</c> are read), so text-to-video,
/// which never encodes, pays nothing for it.
/// </summary>
public sealed class CogVideoXVaeEncoder : IDisposable
{
    /// <summary>
    /// Video frames per encoder call (diffusers' num_sample_frames_batch_size). The VAE was trained this way: other
    /// values change the result, which is why it is not an option.
    /// </summary>
    public const int FramesPerBatch = 8;

    private readonly VaeEncoderModule _module;

    /// <summary>Builds the encoder from a VAE checkpoint (only <c>encoder.*</c> and, when used, <c>quant_conv.*</c> are read).</summary>
    public CogVideoXVaeEncoder(VaeConfig config, WeightScope weights)
    {
        Config = config;
        _module = new VaeEncoderModule(config, weights.Checkpoint.Source);
        _module.Load(weights);
        Backend = weights.Backend;
        DType = weights.DType;
    }

    /// <summary>
    /// The dtype the encoder computes in for a pipeline computing in <paramref name="pipelineDType"/>: as the decoder
    /// (<see cref="CogVideoXVae.DecodeDType"/>), BF16 pipelines encode in F16. Measured on the encoder's reference cases
    /// (CPU backend, which stores activations in the dtype as a GPU does): bf16 reaches 1.39× the GPU tolerance (the
    /// 49-frame mean), f16 0.17×. diffusers encodes the 5b in bf16; this gives the more accurate latents at the same
    /// memory and speed.
    /// </summary>
    public static DType EncodeDType(DType pipelineDType) => CogVideoXVae.DecodeDType(pipelineDType);

    /// <summary>Loads <c>config.json</c> and the encoder's weights from a VAE folder (e.g. <c>THUDM/CogVideoX-5b-I2V/vae</c>).</summary>
    public static CogVideoXVaeEncoder Load(string folder, IBackend backend, DType dtype)
    {
        var config = VaeConfig.Load(Path.Combine(folder, "config.json"));
        using var checkpoint = Checkpoint.Open(folder);
        return new CogVideoXVaeEncoder(config, checkpoint.Scope(backend, dtype));
    }

    /// <summary>Every checkpoint tensor the encoding half reads (encoder, and quant_conv when used), with its shape.</summary>
    public static IReadOnlyList<(string Name, int[] Shape)> EncoderParameterShapes(VaeConfig config)
    {
        using var tree = new VaeEncoderModule(config, "VAE config");
        return tree.CheckpointTensors;
    }

    /// <summary>
    /// Device bytes of the encoding half in <paramref name="dtype"/> for a video of <paramref name="frames"/> frames of
    /// <paramref name="height"/>×<paramref name="width"/>: its weights, and the working memory of an encode — whole
    /// frames, or with the config's default tiles when <paramref name="tiled"/> (never more than whole frames). The
    /// latents (mean and log-variance) are included; the input video, which the caller holds, is not.
    /// </summary>
    /// <remarks>
    /// At the peak (a causal convolution of the first down block, at full resolution with block_out_channels[0]
    /// channels), besides the frame batch's input: the block's input kept for the residual and the one tensor the block
    /// works in (each a frame batch's frames), the chunk's window and output (<see cref="VaeEncodeOptions.ConvolutionWindowFrames"/>;
    /// whole convolutions instead hold a time-padded copy, two frames longer, and a separate output), plus every
    /// convolution cache (two frames of its input each; none when the video is one frame batch, as the last batch keeps
    /// none) and the latents. A GPU adds the convolution's workspace, counted as one more copy of its input (window or
    /// padded copy): cuDNN's fastest algorithms for channels-first half-precision input transpose the input there
    /// (measured on the H200: 5.05 GiB against 4.09 GiB estimated without it, whole convolutions, 49×480×720).
    /// Measured on a metering backend (which has no workspace): the tiny fixture VAE and the 5b config at full size stay
    /// within this figure.
    /// </remarks>
    public static ComponentMemory EstimateMemory(VaeConfig config, DType dtype, int frames, int height, int width, bool tiled,
        int windowFrames = VaeEncodeOptions.DefaultConvolutionWindowFrames)
    {
        using var tree = new VaeEncoderModule(config, "VAE config");
        long whole = WorkingBytes(tree.Encoder, dtype, frames, height, width, windowFrames);
        long working = whole;
        if (tiled)
        {
            var plan = VaeTiling.ForConfig(config).EncodePlan(tree.Encoder.SpatialScale);
            // Where a tile would be under one latent pixel, tiled encoding is refused: whole frames are the estimate.
            if (plan.Cuts(height, width) && TilesFit(tree.Encoder, plan, height, width))
            {
                int tileHeight = Math.Min(height, plan.TileHeight), tileWidth = Math.Min(width, plan.TileWidth);
                int columns = TilePlan.Starts(width, plan.StrideWidth).Count();
                // One tile's working set (its latents included), two rows of encoded tiles (moments: twice the latents of
                // a tile), and the blended result, whose size is that of the kept parts (larger than untiled latents when
                // the tiles overlap by more than the blend).
                long tileMoments = 2 * LatentBytes(tree.Encoder, dtype, frames, tileHeight, tileWidth);
                var (latentHeight, latentWidth) = TiledSize(tree.Encoder, plan, height, width);
                long latents = LatentFrameBytes(tree.Encoder, dtype, frames) * latentHeight * latentWidth;
                long tiledBytes = WorkingBytes(tree.Encoder, dtype, frames, tileHeight, tileWidth, windowFrames) + 2L * columns * tileMoments + 3 * latents;
                working = Math.Min(tiledBytes, whole);
            }
        }
        return new ComponentMemory(0, 0, tree.Bytes(dtype), working);
    }

    private static long WorkingBytes(Encoder3d encoder, DType dtype, int frames, int height, int width, int windowFrames)
    {
        int s = dtype.SizeOf();
        int batchFrames = FrameBatches(frames).Max(b => b.Count);
        long pixels = (long)height * width;
        int channels = encoder.ConvIn.OutChannels;
        int pad = encoder.ConvIn.TimePadding;
        // Frames (of the widest activation) besides the batch's input: the residual, then either the work tensor and a
        // chunk's window and output, or the time-padded copy and the output; and the workspace, a copy of the conv's input.
        int chunk = windowFrames <= 0 ? batchFrames : Math.Clamp((windowFrames - pad) / 2, 1, batchFrames);
        long activationFrames = chunk >= batchFrames
            ? 3L * batchFrames + pad + (batchFrames + pad)
            : 2L * batchFrames + 2L * chunk + pad + (chunk + pad);
        long peak = ((long)encoder.InChannels * batchFrames + activationFrames * channels) * pixels * s;
        // The last batch keeps no cache: a one-batch video (an image) holds none.
        long caches = FrameBatches(frames).Count() > 1 ? CacheBytes(encoder, dtype, height, width) : 0;
        return peak + caches + 3 * LatentBytes(encoder, dtype, frames, height, width);
    }

    /// <summary>Bytes of every convolution cache: two frames of each causal convolution's input at its resolution.</summary>
    private static long CacheBytes(Encoder3d encoder, DType dtype, int height, int width)
    {
        long total = (long)encoder.ConvIn.TimePadding * encoder.ConvIn.InChannels * height * width;
        int h = height, w = width;
        foreach (var block in encoder.DownBlocks)
        {
            foreach (var r in block.Resnets)
                total += (long)(r.Conv1.TimePadding * r.Conv1.InChannels + r.Conv2.TimePadding * r.Conv2.InChannels) * h * w;
            h = block.OutputSize(h);
            w = block.OutputSize(w);
        }
        foreach (var r in encoder.MidBlock.Resnets)
            total += (long)(r.Conv1.TimePadding * r.Conv1.InChannels + r.Conv2.TimePadding * r.Conv2.InChannels) * h * w;
        total += (long)encoder.ConvOut.TimePadding * encoder.ConvOut.InChannels * h * w;
        return total * dtype.SizeOf();
    }

    /// <summary>Bytes of the mean (or the log-variance) of a video's latents (height and width in video pixels).</summary>
    private static long LatentBytes(Encoder3d encoder, DType dtype, int frames, int height, int width) =>
        LatentFrameBytes(encoder, dtype, frames) * encoder.OutputSize(height) * encoder.OutputSize(width);

    /// <summary>Bytes of the mean's values at one latent pixel, over all latent frames and channels.</summary>
    private static long LatentFrameBytes(Encoder3d encoder, DType dtype, int frames) =>
        (long)encoder.LatentChannels * FrameBatches(frames).Sum(b => encoder.OutputFrames(b.Count)) * dtype.SizeOf();

    public VaeConfig Config { get; }

    public Encoder3d Encoder => _module.Encoder;

    public IBackend Backend { get; }

    public DType DType { get; }

    /// <summary>Bytes of the encoder's weights as loaded.</summary>
    public long WeightBytes => _module.BoundBytes;

    /// <summary>Video pixels per latent pixel.</summary>
    public int SpatialScale => Encoder.SpatialScale;

    /// <summary>diffusers' frame batches for a video of <paramref name="frames"/> frames (49 → 9, 8, 8, 8, 8, 8; 13 → 13).</summary>
    public static IEnumerable<(int Start, int Count)> FrameBatches(int frames) => Frames.Batches(frames, FramesPerBatch);

    /// <summary>Latent frames for a video of <paramref name="frames"/> frames (13 from 49, 1 from 1, as diffusers).</summary>
    public int LatentFrames(int frames) => FrameBatches(frames).Sum(b => Encoder.OutputFrames(b.Count));

    /// <summary>
    /// Encodes <paramref name="video"/> [B, in_channels, F, H, W] (values in [−1, 1]) on this model's backend and dtype
    /// (the video is converted a frame batch at a time when it lives elsewhere) into the distribution of its latents.
    /// The video is not modified or released; the distribution is the caller's.
    /// </summary>
    public LatentDistribution Encode(Tensor video, VaeEncodeOptions? options = null)
    {
        options ??= new VaeEncodeOptions();
        CheckVideo(video);
        if (options.ConvolutionWindowFrames < 0)
            throw new CogVideoXException($"VAE encode: the convolution window must be 0 (whole convolutions) or a positive number of frames, got {options.ConvolutionWindowFrames}");
        var plan = options.Tiling?.EncodePlan(SpatialScale);
        int b = video.Dim(0), frames = video.Dim(2), h = video.Dim(3), w = video.Dim(4);
        bool tiled = plan is { } p && p.Cuts(h, w);
        var (latentHeight, latentWidth) = tiled ? TiledSize(Encoder, plan!.Value, h, w) : (Encoder.OutputSize(h), Encoder.OutputSize(w));
        int tiles = tiled ? plan!.Value.Count(h, w) : 1;
        var progress = new BatchCounter(options.Progress, FrameBatches(frames).Count() * tiles * (options.Slicing && b > 1 ? b : 1));
        using var scope = new TensorScope();
        using var moments = Tensor.Empty(Backend, DType, b, 2 * Encoder.LatentChannels, LatentFrames(frames), latentHeight, latentWidth);
        if (options.Slicing && b > 1)
        {
            for (int i = 0; i < b; i++)
            {
                using var item = video.Narrow(0, i, 1);
                using var destination = moments.Narrow(0, i, 1);
                EncodeInto(item, destination, tiled ? plan : null, progress, options);
            }
        }
        else
        {
            EncodeInto(video, moments, tiled ? plan : null, progress, options);
        }
        var distribution = LatentDistribution.FromMoments(moments);
        scope.Keep(distribution.Mean);
        scope.Keep(distribution.LogVar);
        return distribution;
    }

    /// <summary>
    /// Whether <paramref name="tiling"/> can encode frames of <paramref name="height"/>×<paramref name="width"/>: false
    /// when a tile (the last row or column, cut by the edge) would be smaller than one latent pixel, which diffusers'
    /// tiled_encode cannot encode either (<see cref="Encode"/> says which tile). True when the frames fit one tile.
    /// </summary>
    public bool CanTile(VaeTiling tiling, int height, int width)
    {
        var p = tiling.EncodePlan(SpatialScale);
        return !p.Cuts(height, width) || TilesFit(Encoder, p, height, width);
    }

    private static bool TilesFit(Encoder3d encoder, TilePlan p, int height, int width) =>
        TilePlan.Starts(height, p.StrideHeight).All(i => encoder.OutputSize(Math.Min(p.TileHeight, height - i)) >= 1)
        && TilePlan.Starts(width, p.StrideWidth).All(j => encoder.OutputSize(Math.Min(p.TileWidth, width - j)) >= 1);

    private void CheckVideo(Tensor video)
    {
        if (video.IsDisposed) throw new ObjectDisposedException(nameof(video), "the video passed to the VAE encoder was already disposed");
        if (video.Rank != 5 || video.Dim(1) != Config.InChannels)
            throw new CogVideoXException($"VAE encode: the video must be [batch, {Config.InChannels} channels, frames, height, width] with values in [-1, 1], got {video.ShapeString}");
        if (!video.DType.IsFloat())
            throw new CogVideoXException($"VAE encode: the video must be a float tensor (values in [-1, 1]), got {video.DType.Name()}");
        for (int d = 0; d < 5; d++)
            if (video.Dim(d) == 0)
                throw new CogVideoXException($"VAE encode: the video {video.ShapeString} is empty; every dimension must be at least 1");
        if (Encoder.OutputSize(video.Dim(3)) < 1 || Encoder.OutputSize(video.Dim(4)) < 1)
            throw new CogVideoXException($"VAE encode: {video.Dim(3)}×{video.Dim(4)} pixels is smaller than one latent pixel; frames must be at least {SpatialScale}×{SpatialScale} (CogVideoX takes 480×720)");
    }

    private void EncodeInto(Tensor video, Tensor destination, TilePlan? plan, BatchCounter progress, VaeEncodeOptions options)
    {
        if (plan is { } p) EncodeTiled(video, destination, p, progress, options);
        else EncodeFrames(video, destination, progress, options);
    }

    /// <summary>Encodes every frame batch of the video, carrying the caches, straight into destination's frames.</summary>
    private void EncodeFrames(Tensor video, Tensor destination, BatchCounter progress, VaeEncodeOptions options)
    {
        var cancellation = options.Cancellation;
        using var cache = Encoder.CreateCache();
        cache.Cancellation = cancellation;
        cache.WindowFrames = options.ConvolutionWindowFrames;
        int at = 0;
        foreach (var (start, count) in FrameBatches(video.Dim(2)))
        {
            cancellation.ThrowIfCancellationRequested();
            if (start + count == video.Dim(2)) cache.MarkFinal();
            // Everything a batch allocates goes with its scope, except the carried frames.
            using var batch = new TensorScope();
            using var slice = video.Narrow(2, start, count);
            using var input = ReferenceEquals(slice.Backend, Backend) && slice.DType == DType ? slice.Alias() : ToModel(slice);
            using var encoded = Encoder.Forward(input, cache);
            using var quantised = Quant(encoded);
            using (var target = destination.Narrow(2, at, quantised.Dim(2))) quantised.CopyTo(target);
            at += quantised.Dim(2);
            cache.KeepFrom(batch);
            progress.Done();
        }
    }

    private Tensor ToModel(Tensor x)
    {
        using var moved = x.To(Backend);
        return moved.To(DType);
    }

    private Tensor Quant(Tensor h) => _module.QuantWeight is null ? h.Alias()
        : h.Conv3d(_module.QuantWeight.Value, _module.QuantBias!.Value, new Conv3dParams(1, 1, 1, 0, 0, 0));

    // ---- tiling (diffusers' tiled_encode) ----

    /// <summary>The size of the blended latents: the kept part of each tile row and column.</summary>
    private static (int Height, int Width) TiledSize(Encoder3d encoder, TilePlan p, int h, int w) =>
        p.OutputSize(h, w, (i, pixels) => TileLatentSize(encoder, pixels, "high", i, h), (j, pixels) => TileLatentSize(encoder, pixels, "wide", j, w));

    private static int TileLatentSize(Encoder3d encoder, int pixels, string side, int start, int size)
    {
        int latent = encoder.OutputSize(pixels);
        if (latent < 1)
            throw new CogVideoXException($"VAE tiling: the tile at pixel {start} of {size} is only {pixels} pixels {side}, smaller than one latent pixel ({encoder.SpatialScale}); choose a tile size or overlap for which the last tile is at least {encoder.SpatialScale} pixels {side}, or encode untiled");
        return latent;
    }

    /// <summary>Each tile is encoded (all frames, its own caches) and placed by <see cref="TilePlan.Run"/>.</summary>
    private void EncodeTiled(Tensor video, Tensor destination, TilePlan p, BatchCounter progress, VaeEncodeOptions options) =>
        p.Run(video, destination,
            (th, tw) => Tensor.Empty(Backend, DType, destination.Dim(0), destination.Dim(1), destination.Dim(2), Encoder.OutputSize(th), Encoder.OutputSize(tw)),
            (view, tile) => EncodeFrames(view, tile, progress, options));

    public void Dispose() => _module.Dispose();
}

/// <summary>The encoding half's module tree: <c>encoder</c> and, when the config uses it, <c>quant_conv</c>.</summary>
internal sealed class VaeEncoderModule : Module
{
    public VaeEncoderModule(VaeConfig config, string source)
    {
        Encoder = Child("encoder", new Encoder3d(config, source));
        if (config.UseQuantConv)
        {
            // diffusers sizes quant_conv by 2 · out_channels, so it can only run when out_channels equals latent_channels.
            if (config.OutChannels != config.LatentChannels)
                throw new WeightsException($"{source}: use_quant_conv needs out_channels ({config.OutChannels}) equal to latent_channels ({config.LatentChannels}), as diffusers builds it");
            QuantWeight = Weight("quant_conv.weight", 2 * config.LatentChannels, 2 * config.LatentChannels, 1, 1, 1);
            QuantBias = Weight("quant_conv.bias", 2 * config.LatentChannels);
        }
    }

    public Encoder3d Encoder { get; }

    public Parameter? QuantWeight { get; }

    public Parameter? QuantBias { get; }
}
