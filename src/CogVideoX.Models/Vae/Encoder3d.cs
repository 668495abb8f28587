using CogVideoX.Engine;
using CogVideoX.Models.Modules;
using CogVideoX.Weights;

namespace CogVideoX.Models.Vae;

/// <summary>The encoder's <see cref="FrameBatchCaches"/>: conv_in, the down blocks, the mid block, conv_out.</summary>
public sealed class EncoderCache : FrameBatchCaches
{
    internal EncoderCache(ResnetBlockCache[][] down, ResnetBlockCache[] mid)
    {
        Down = down;
        Mid = mid;
    }

    public ResnetBlockCache[][] Down { get; }

    public ResnetBlockCache[] Mid { get; }

    /// <summary>
    /// How many frames of the widest activation (conv_in's output at the batch's size) one convolution chunk may use for
    /// its window and its output together (<see cref="VaeEncodeOptions.ConvolutionWindowFrames"/>); 0: whole convolutions.
    /// </summary>
    public int WindowFrames { get; set; } = VaeEncodeOptions.DefaultConvolutionWindowFrames;

    public override IEnumerable<CausalConvCache> All =>
        new[] { ConvIn }.Concat(Down.SelectMany(b => b.SelectMany(r => r.All))).Concat(Mid.SelectMany(r => r.All)).Append(ConvOut);

    /// <summary>Marks the next frame batch as the video's last: the convolutions release their carried frames as they go.</summary>
    public void MarkFinal()
    {
        foreach (var c in All) c.Final = true;
    }
}

/// <summary>
/// diffusers' CogVideoXEncoder3D: conv_in → down blocks → mid block → norm_out → SiLU → conv_out, giving the mean and
/// log-variance of the latents stacked on the channel axis (2 × latent_channels). Built from <see cref="VaeConfig"/>
/// alone; checkpoint names under <c>encoder.</c>.
/// </summary>
public sealed class Encoder3d : Module
{
    /// <summary>diffusers' encoder mid block always has two ResNet blocks.</summary>
    public const int MidBlockLayers = 2;

    public const string DownBlockType = "CogVideoXDownBlock3D";

    /// <summary>diffusers builds norm_out with a fixed eps of 1e-6, whatever the config's norm_eps.</summary>
    public const float NormOutEpsilon = 1e-6f;

    private readonly Parameter _normOutWeight;
    private readonly Parameter _normOutBias;

    /// <summary>The encoder's structure for <paramref name="config"/>; <paramref name="path"/> names it in messages.</summary>
    public Encoder3d(VaeConfig config, string source, string path = "encoder")
    {
        Validate(config, source);
        var activation = Decoder3d.ActivationOf(config.ActFn, source);
        var channels = config.BlockOutChannels;
        int groups = config.NormNumGroups;
        float eps = (float)config.NormEps;
        InChannels = config.InChannels;
        LatentChannels = config.LatentChannels;
        Groups = groups;

        ConvIn = Child("conv_in", new CausalConv3d(config.InChannels, channels[0], 3));
        int temporalLevels = Decoder3d.TemporalLevels(config.TemporalCompressionRatio);
        var blocks = new DownBlock3d[config.DownBlockTypes.Length];
        int previous = channels[0];
        for (int i = 0; i < blocks.Length; i++)
        {
            bool last = i == channels.Length - 1;
            blocks[i] = Child($"down_blocks.{i}", new DownBlock3d($"{path}.down_blocks.{i}", previous, channels[i], config.LayersPerBlock, groups, eps,
                activation, addDownsample: !last, compressTime: i < temporalLevels));
            previous = channels[i];
        }
        DownBlocks = blocks;
        MidBlock = Child("mid_block", new EncoderMidBlock3d($"{path}.mid_block", channels[^1], MidBlockLayers, groups, eps, activation));
        if (channels[^1] % groups != 0)
            throw new WeightsException($"{path}.norm_out: {channels[^1]} channels do not split into norm_num_groups = {groups} groups");
        _normOutWeight = Weight("norm_out.weight", channels[^1]);
        _normOutBias = Weight("norm_out.bias", channels[^1]);
        ConvOut = Child("conv_out", new CausalConv3d(channels[^1], 2 * config.LatentChannels, 3));
    }

    public int InChannels { get; }

    public int LatentChannels { get; }

    public int Groups { get; }

    public CausalConv3d ConvIn { get; }

    public IReadOnlyList<DownBlock3d> DownBlocks { get; }

    public EncoderMidBlock3d MidBlock { get; }

    public CausalConv3d ConvOut { get; }

    /// <summary>Spatial down-sampling factor: ×2 per down-sampler.</summary>
    public int SpatialScale => 1 << DownBlocks.Count(b => b.Downsampler is not null);

    public EncoderCache CreateCache() =>
        new(DownBlocks.Select(b => b.CreateCache()).ToArray(), MidBlock.CreateCache());

    /// <summary>Latent frames from one frame batch of <paramref name="frames"/> frames.</summary>
    public int OutputFrames(int frames)
    {
        foreach (var b in DownBlocks) frames = b.OutputFrames(frames);
        return frames;
    }

    /// <summary>Latent height or width for <paramref name="size"/> pixels (⌊size / 8⌋ for the published configs; 0 when too small).</summary>
    public int OutputSize(int size)
    {
        foreach (var b in DownBlocks) size = size < 1 ? 0 : b.OutputSize(size);
        return size;
    }

    /// <summary>
    /// Encodes one frame batch x [B, in, T, H, W] → [B, 2 · latent, T', H', W'], reading and updating the cache.
    /// x is borrowed; the result is the caller's.
    /// </summary>
    public Tensor Forward(Tensor x, EncoderCache cache)
    {
        // The stages consume each intermediate as soon as the next exists, which bounds the working set.
        var h = ConvIn.ForwardConsuming(x.Alias(), cache.ConvIn);
        long window = WindowBytes(h, cache.WindowFrames);
        for (int i = 0; i < DownBlocks.Count; i++)
        {
            cache.Cancellation.ThrowIfCancellationRequested();
            h = DownBlocks[i].ForwardConsuming(h, cache.Down[i], cache.Cancellation, window);
        }
        cache.Cancellation.ThrowIfCancellationRequested();
        h = MidBlock.ForwardConsuming(h, cache.Mid, window);
        // conv_act after norm_out is a fixed nn.SiLU in diffusers, independent of act_fn.
        Tensor normed;
        using (h) normed = h.GroupNorm(Groups, _normOutWeight.Value, _normOutBias.Value, NormOutEpsilon, Activation.Silu);
        return ConvOut.ForwardConsuming(normed, cache.ConvOut);
    }

    /// <summary>The chunk budget: <paramref name="frames"/> frames of conv_in's output <paramref name="h"/> (unbounded for 0).</summary>
    internal static long WindowBytes(Tensor h, int frames) =>
        frames <= 0 ? long.MaxValue : (long)frames * h.Dim(0) * h.Dim(1) * h.Dim(3) * h.Dim(4) * h.DType.SizeOf();

    internal static void Validate(VaeConfig config, string source)
    {
        if (config.BlockOutChannels.Length == 0 || config.BlockOutChannels.Any(c => c < 1))
            throw new WeightsException($"{source}: VAE block_out_channels must list at least one positive channel count");
        if (config.DownBlockTypes.Length != config.BlockOutChannels.Length)
            throw new WeightsException($"{source}: VAE down_block_types has {config.DownBlockTypes.Length} entries but block_out_channels has {config.BlockOutChannels.Length}; they must match");
        foreach (var t in config.DownBlockTypes)
            if (t != DownBlockType)
                throw new WeightsException($"{source}: VAE down block type \"{t}\" is not supported; CogVideoX uses \"{DownBlockType}\"");
        if (config.InChannels < 1 || config.LatentChannels < 1 || config.LayersPerBlock < 0)
            throw new WeightsException($"{source}: VAE in_channels and latent_channels must be positive and layers_per_block not negative");
        if (config.TemporalCompressionRatio < 1)
            throw new WeightsException($"{source}: VAE temporal_compression_ratio must be at least 1, got {config.TemporalCompressionRatio}");
        if (config.NormNumGroups < 1)
            throw new WeightsException($"{source}: VAE norm_num_groups must be positive, got {config.NormNumGroups}");
    }
}

/// <summary>diffusers' CogVideoXMidBlock3D in the encoder: ResNet blocks with plain GroupNorms at the latent resolution. Checkpoint names: <c>resnets.{i}.*</c>.</summary>
public sealed class EncoderMidBlock3d : Module
{
    public EncoderMidBlock3d(string path, int channels, int layers, int groups, float eps, Activation activation)
    {
        Resnets = Enumerable.Range(0, layers)
            .Select(i => Child($"resnets.{i}", ResnetBlock3d.WithGroupNorm($"{path}.resnets.{i}", channels, channels, groups, eps, activation)))
            .ToArray();
    }

    public IReadOnlyList<ResnetBlock3d> Resnets { get; }

    public ResnetBlockCache[] CreateCache() => Resnets.Select(r => r.CreateCache()).ToArray();

    /// <summary>Consumes <paramref name="x"/>.</summary>
    public Tensor ForwardConsuming(Tensor x, ResnetBlockCache[] cache, long windowBytes = long.MaxValue)
    {
        for (int i = 0; i < Resnets.Count; i++) x = Resnets[i].ForwardConsuming(x, null, cache[i], windowBytes);
        return x;
    }
}
