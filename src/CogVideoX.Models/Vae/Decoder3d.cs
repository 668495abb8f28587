using CogVideoX.Engine;
using CogVideoX.Models.Modules;
using CogVideoX.Weights;

namespace CogVideoX.Models.Vae;

/// <summary>The decoder's <see cref="FrameBatchCaches"/>: conv_in, the mid block, the up blocks, conv_out.</summary>
public sealed class DecoderCache : FrameBatchCaches
{
    internal DecoderCache(ResnetBlockCache[] mid, ResnetBlockCache[][] up)
    {
        Mid = mid;
        Up = up;
    }

    public ResnetBlockCache[] Mid { get; }

    public ResnetBlockCache[][] Up { get; }

    public override IEnumerable<CausalConvCache> All =>
        new[] { ConvIn }.Concat(Mid.SelectMany(r => r.All)).Concat(Up.SelectMany(b => b.SelectMany(r => r.All))).Append(ConvOut);
}

/// <summary>
/// diffusers' CogVideoXDecoder3D: conv_in → mid block → up blocks → norm_out → SiLU → conv_out, every norm conditioned
/// on the latents being decoded. Built from <see cref="VaeConfig"/> alone; checkpoint names under <c>decoder.</c>.
/// </summary>
public sealed class Decoder3d : Module
{
    /// <summary>diffusers' decoder mid block always has two ResNet blocks.</summary>
    public const int MidBlockLayers = 2;

    public const string UpBlockType = "CogVideoXUpBlock3D";

    /// <summary>The decoder's structure for <paramref name="config"/>; <paramref name="path"/> names it in messages.</summary>
    public Decoder3d(VaeConfig config, string source, string path = "decoder")
    {
        Validate(config, source);
        var activation = ActivationOf(config.ActFn, source);
        var channels = config.BlockOutChannels.Reverse().ToArray();
        int latent = config.LatentChannels, groups = config.NormNumGroups;
        LatentChannels = latent;
        OutChannels = config.OutChannels;

        ConvIn = Child("conv_in", new CausalConv3d(latent, channels[0], 3));
        MidBlock = Child("mid_block", new MidBlock3d($"{path}.mid_block", channels[0], MidBlockLayers, latent, groups, activation));

        int temporalLevels = TemporalLevels(config.TemporalCompressionRatio);
        var blocks = new UpBlock3d[config.UpBlockTypes.Length];
        int previous = channels[0];
        for (int i = 0; i < blocks.Length; i++)
        {
            bool last = i == config.BlockOutChannels.Length - 1;
            blocks[i] = Child($"up_blocks.{i}", new UpBlock3d($"{path}.up_blocks.{i}", previous, channels[i], config.LayersPerBlock + 1, latent, groups,
                activation, addUpsample: !last, compressTime: i < temporalLevels));
            previous = channels[i];
        }
        UpBlocks = blocks;

        NormOut = Child("norm_out", new SpatialNorm3d($"{path}.norm_out", channels[^1], latent, groups));
        ConvOut = Child("conv_out", new CausalConv3d(channels[^1], config.OutChannels, 3));
    }

    public int LatentChannels { get; }

    public int OutChannels { get; }

    public CausalConv3d ConvIn { get; }

    public MidBlock3d MidBlock { get; }

    public IReadOnlyList<UpBlock3d> UpBlocks { get; }

    public SpatialNorm3d NormOut { get; }

    public CausalConv3d ConvOut { get; }

    /// <summary>Spatial up-sampling factor: ×2 per up-sampler.</summary>
    public int SpatialScale => 1 << UpBlocks.Count(b => b.Upsampler is not null);

    public DecoderCache CreateCache() =>
        new(MidBlock.CreateCache(), UpBlocks.Select(b => b.CreateCache()).ToArray());

    /// <summary>Frames decoded from one frame batch of <paramref name="latentFrames"/> latent frames.</summary>
    public int OutputFrames(int latentFrames)
    {
        int frames = latentFrames;
        foreach (var b in UpBlocks) frames = b.OutputFrames(frames);
        return frames;
    }

    /// <summary>
    /// Decodes one frame batch z [B, latent, T, h, w] → [B, out, T', h·s, w·s], reading and updating the cache.
    /// z is borrowed (it also conditions every norm); the result is the caller's.
    /// </summary>
    public Tensor Forward(Tensor z, DecoderCache cache)
    {
        // The stages consume each intermediate as soon as the next exists, which bounds the working set.
        var h = ConvIn.ForwardConsuming(z.Alias(), cache.ConvIn);
        h = MidBlock.ForwardConsuming(h, z, cache.Mid);
        for (int i = 0; i < UpBlocks.Count; i++)
        {
            cache.Cancellation.ThrowIfCancellationRequested();
            h = UpBlocks[i].ForwardConsuming(h, z, cache.Up[i], cache.Cancellation);
        }
        // conv_act after norm_out is a fixed nn.SiLU in diffusers, independent of act_fn.
        h = NormOut.ForwardConsuming(h, z, Activation.Silu);
        return ConvOut.ForwardConsuming(h, cache.ConvOut);
    }

    /// <summary>floor(log2(ratio)), as diffusers' int(np.log2(temporal_compression_ratio)).</summary>
    internal static int TemporalLevels(int ratio)
    {
        int levels = 0;
        while ((2L << levels) <= ratio) levels++;
        return levels;
    }

    /// <summary>diffusers' get_activation names that the engine has a kernel for.</summary>
    internal static Activation ActivationOf(string name, string source) => name switch
    {
        "silu" or "swish" => Activation.Silu,
        "gelu" => Activation.Gelu,
        "relu" => Activation.Relu,
        _ => throw new WeightsException($"{source}: VAE act_fn \"{name}\" is not supported (supported: silu, swish, gelu, relu)"),
    };

    internal static void Validate(VaeConfig config, string source)
    {
        if (config.BlockOutChannels.Length == 0 || config.BlockOutChannels.Any(c => c < 1))
            throw new WeightsException($"{source}: VAE block_out_channels must list at least one positive channel count");
        if (config.UpBlockTypes.Length != config.BlockOutChannels.Length)
            throw new WeightsException($"{source}: VAE up_block_types has {config.UpBlockTypes.Length} entries but block_out_channels has {config.BlockOutChannels.Length}; they must match");
        foreach (var t in config.UpBlockTypes)
            if (t != UpBlockType)
                throw new WeightsException($"{source}: VAE up block type \"{t}\" is not supported; CogVideoX uses \"{UpBlockType}\"");
        if (config.LatentChannels < 1 || config.OutChannels < 1 || config.LayersPerBlock < 0)
            throw new WeightsException($"{source}: VAE latent_channels and out_channels must be positive and layers_per_block not negative");
        if (config.TemporalCompressionRatio < 1)
            throw new WeightsException($"{source}: VAE temporal_compression_ratio must be at least 1, got {config.TemporalCompressionRatio}");
        if (config.NormNumGroups < 1)
            throw new WeightsException($"{source}: VAE norm_num_groups must be positive, got {config.NormNumGroups}");
    }
}
