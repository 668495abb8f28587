namespace CogVideoX.Weights;

/// <summary><c>text_encoder/config.json</c> (transformers' T5Config, encoder side); defaults are transformers'.</summary>
public sealed record T5Config
{
    public int VocabSize { get; init; } = 32128;
    public int DModel { get; init; } = 512;
    public int DKv { get; init; } = 64;
    public int DFf { get; init; } = 2048;
    public int NumLayers { get; init; } = 6;
    public int NumHeads { get; init; } = 8;
    public int RelativeAttentionNumBuckets { get; init; } = 32;
    public int RelativeAttentionMaxDistance { get; init; } = 128;
    public double LayerNormEpsilon { get; init; } = 1e-6;
    public string FeedForwardProj { get; init; } = "relu";
    public string? DenseActFn { get; init; }
    public bool? IsGatedAct { get; init; }
    public int PadTokenId { get; init; }
    public int EosTokenId { get; init; } = 1;

    /// <summary>"gated-gelu" → gated; as transformers derives it from feed_forward_proj.</summary>
    public bool Gated => IsGatedAct ?? FeedForwardProj.StartsWith("gated-", StringComparison.Ordinal);

    /// <summary>The feed-forward activation: "gelu_new" (tanh GELU) for gated-gelu, else the proj's own.</summary>
    public string Activation => DenseActFn ?? (FeedForwardProj == "gated-gelu" ? "gelu_new" : FeedForwardProj.Replace("gated-", "", StringComparison.Ordinal));

    public static T5Config Load(string path) =>
        ConfigFile.Load(path, ConfigJsonContext.Default.T5Config, static (config, limits) => config.CheckLimits(limits));

    /// <summary>Refuses values no T5 encoder has, before any tensor list or buffer is sized from them.</summary>
    private void CheckLimits(ConfigLimits limits)
    {
        limits.Range("vocab_size", VocabSize, 1, 1 << 20, "32,128");
        limits.Range("d_model", DModel, 1, 65536, "4,096");
        limits.Range("d_kv", DKv, 1, 4096, "64");
        limits.Range("d_ff", DFf, 1, 1 << 18, "10,240");
        limits.Range("num_layers", NumLayers, 1, 1024, "24");
        limits.Range("num_heads", NumHeads, 1, 1024, "64");
        limits.Product("num_heads × d_kv", (long)NumHeads * DKv, 65536, "4,096");
        limits.Range("relative_attention_num_buckets", RelativeAttentionNumBuckets, 1, 4096, "32");
        limits.Range("relative_attention_max_distance", RelativeAttentionMaxDistance, 1, 1 << 20, "128");
        limits.Positive("layer_norm_epsilon", LayerNormEpsilon, "1e-6");
    }
}
