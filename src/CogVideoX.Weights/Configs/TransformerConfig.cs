namespace CogVideoX.Weights;

/// <summary>
/// <c>transformer/config.json</c> of a CogVideoX pipeline (diffusers' CogVideoXTransformer3DModel); defaults are
/// diffusers' constructor defaults (those of CogVideoX-2b).
/// </summary>
public sealed record TransformerConfig
{
    public int NumAttentionHeads { get; init; } = 30;
    public int AttentionHeadDim { get; init; } = 64;
    public int InChannels { get; init; } = 16;
    public int? OutChannels { get; init; } = 16;
    public bool FlipSinToCos { get; init; } = true;
    public int FreqShift { get; init; }
    public int TimeEmbedDim { get; init; } = 512;
    public int? OfsEmbedDim { get; init; }
    public int TextEmbedDim { get; init; } = 4096;
    public int NumLayers { get; init; } = 30;
    public double Dropout { get; init; }
    public bool AttentionBias { get; init; } = true;
    public int SampleWidth { get; init; } = 90;
    public int SampleHeight { get; init; } = 60;
    public int SampleFrames { get; init; } = 49;
    public int PatchSize { get; init; } = 2;
    public int? PatchSizeT { get; init; }
    public int TemporalCompressionRatio { get; init; } = 4;
    public int MaxTextSeqLength { get; init; } = 226;
    public string ActivationFn { get; init; } = "gelu-approximate";
    public string TimestepActivationFn { get; init; } = "silu";
    public bool NormElementwiseAffine { get; init; } = true;
    public double NormEps { get; init; } = 1e-5;
    public double SpatialInterpolationScale { get; init; } = 1.875;
    public double TemporalInterpolationScale { get; init; } = 1.0;
    public bool UseRotaryPositionalEmbeddings { get; init; }
    public bool UseLearnedPositionalEmbeddings { get; init; }
    public bool PatchBias { get; init; } = true;

    /// <summary>Hidden size: heads × head dim.</summary>
    public int InnerDim => NumAttentionHeads * AttentionHeadDim;

    public int OutputChannels => OutChannels ?? InChannels;

    /// <summary>CogVideoX 1.5: latent frames are patched in groups of <see cref="PatchSizeT"/> (1.0 has none).</summary>
    public bool HasTemporalPatches => PatchSizeT is not null;

    /// <summary>
    /// How positions enter the model, as diffusers decides it: "sincos" (fixed 3D table added to the patch
    /// embeddings; CogVideoX-2b), "rotary" (3D rotary embeddings in attention; 5b), "rotary+learned" (rotary plus a
    /// learned table stored in the checkpoint; 5b image-to-video) or "learned".
    /// </summary>
    public string PositionalEmbedding => (UseRotaryPositionalEmbeddings, UseLearnedPositionalEmbeddings) switch
    {
        (false, false) => "sincos",
        (true, false) => "rotary",
        (true, true) => "rotary+learned",
        (false, true) => "learned",
    };

    public static TransformerConfig Load(string path) =>
        ConfigFile.Load(path, ConfigJsonContext.Default.TransformerConfig, static (config, limits) => config.CheckLimits(limits));

    /// <summary>Refuses values no CogVideoX transformer has, before any tensor list or table is sized from them.</summary>
    private void CheckLimits(ConfigLimits limits)
    {
        limits.Range("num_attention_heads", NumAttentionHeads, 1, 1024, "30 (2b) and 48 (5b)");
        limits.Range("attention_head_dim", AttentionHeadDim, 1, 4096, "64");
        limits.Product("num_attention_heads × attention_head_dim", (long)NumAttentionHeads * AttentionHeadDim, 32768, "1,920 (2b) and 3,072 (5b)");
        limits.Range("in_channels", InChannels, 1, 1024, "16");
        if (OutChannels is { } outChannels) limits.Range("out_channels", outChannels, 1, 1024, "16");
        limits.Range("time_embed_dim", TimeEmbedDim, 1, 65536, "512");
        limits.Range("text_embed_dim", TextEmbedDim, 1, 65536, "4,096");
        limits.Range("num_layers", NumLayers, 1, 1024, "30 (2b) and 42 (5b)");
        limits.Range("patch_size", PatchSize, 1, 64, "2");
        if (PatchSizeT is { } patchSizeT) limits.Range("patch_size_t", patchSizeT, 1, 64, "null (CogVideoX 1.0) and 2 (CogVideoX 1.5)");
        if (OfsEmbedDim is { } ofsEmbedDim) limits.Range("ofs_embed_dim", ofsEmbedDim, 0, 65536, "null, or 512 (CogVideoX1.5-5B-I2V)");
        limits.Range("temporal_compression_ratio", TemporalCompressionRatio, 1, 64, "4");
        limits.Range("max_text_seq_length", MaxTextSeqLength, 1, 65536, "226");
        limits.Range("sample_frames", SampleFrames, 1, 65536, "49");
        limits.Range("sample_height", SampleHeight, 1, 65536, "60");
        limits.Range("sample_width", SampleWidth, 1, 65536, "90");
        limits.Positive("norm_eps", NormEps, "1e-5");
        limits.Positive("spatial_interpolation_scale", SpatialInterpolationScale, "1.875");
        limits.Positive("temporal_interpolation_scale", TemporalInterpolationScale, "1.0");
    }
}
