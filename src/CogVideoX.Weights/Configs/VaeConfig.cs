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

    public static VaeConfig Load(string path) => ConfigFile.Load(path, ConfigJsonContext.Default.VaeConfig);
}
