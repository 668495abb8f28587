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

    public static T5Config Load(string path) => ConfigFile.Load(path, ConfigJsonContext.Default.T5Config);
}
