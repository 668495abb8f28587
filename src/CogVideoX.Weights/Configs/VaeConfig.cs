namespace CogVideoX.Weights;

/// <summary><c>vae/config.json</c> (diffusers' AutoencoderKLCogVideoX); defaults are diffusers' constructor defaults.</summary>
public sealed record VaeConfig
{
    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public string[] DownBlockTypes { get; init; } = ["CogVideoXDownBlock3D", "CogVideoXDownBlock3D", "CogVideoXDownBlock3D", "CogVideoXDownBlock3D"];
    public string[] UpBlockTypes { get; init; } = ["CogVideoXUpBlock3D", "CogVideoXUpBlock3D", "CogVideoXUpBlock3D", "CogVideoXUpBlock3D"];
    public int[] BlockOutChannels { get; init; } = [128, 256, 256, 512];
    public int LatentChannels { get; init; } = 16;
    public int LayersPerBlock { get; init; } = 3;
    public string ActFn { get; init; } = "silu";
    public double NormEps { get; init; } = 1e-6;
    public int NormNumGroups { get; init; } = 32;
    public int TemporalCompressionRatio { get; init; } = 4;
    public int SampleHeight { get; init; } = 480;
    public int SampleWidth { get; init; } = 720;
    public double ScalingFactor { get; init; } = 1.15258426;
    public double? ShiftFactor { get; init; }
    public double[]? LatentsMean { get; init; }
    public double[]? LatentsStd { get; init; }
    public bool ForceUpcast { get; init; } = true;
    public bool UseQuantConv { get; init; }
    public bool UsePostQuantConv { get; init; }
    public bool InvertScaleLatents { get; init; }

    /// <summary>Spatial down-sampling factor of the latents: 2^(blocks − 1).</summary>
    public int SpatialCompressionRatio => 1 << (BlockOutChannels.Length - 1);

    public static VaeConfig Load(string path) =>
        ConfigFile.Load(path, ConfigJsonContext.Default.VaeConfig, static (config, limits) => config.CheckLimits(limits));

    /// <summary>Refuses values no CogVideoX VAE has, before any layer or compression ratio is derived from them.</summary>
    private void CheckLimits(ConfigLimits limits)
    {
        // 2^(blocks − 1) is the spatial compression: more than 8 blocks would compress each side over 128×.
        limits.List("block_out_channels", BlockOutChannels, 8, 1, 8192, "[128, 256, 256, 512]");
        limits.Range("layers_per_block", LayersPerBlock, 0, 64, "3");
        limits.Range("in_channels", InChannels, 1, 64, "3");
        limits.Range("out_channels", OutChannels, 1, 64, "3");
        limits.Range("latent_channels", LatentChannels, 1, 1024, "16");
        limits.Range("norm_num_groups", NormNumGroups, 1, 8192, "32");
        limits.Range("temporal_compression_ratio", TemporalCompressionRatio, 1, 64, "4");
        limits.Range("sample_height", SampleHeight, 1, 65536, "480");
        limits.Range("sample_width", SampleWidth, 1, 65536, "720");
        limits.Positive("norm_eps", NormEps, "1e-6");
        // The latents are divided by it before decoding.
        limits.Positive("scaling_factor", ScalingFactor, "1.15258426 (2b) and 0.7 (5b)");
    }
}
