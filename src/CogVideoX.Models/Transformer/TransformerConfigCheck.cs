using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>What this port of the CogVideoX 1.0 transformer accepts from a config and from a call.</summary>
internal static class TransformerConfigCheck
{
    /// <summary>Throws a <see cref="CogVideoXException"/> naming <paramref name="source"/> when the config cannot be run.</summary>
    public static void Validate(TransformerConfig c, string source)
    {
        if (c.PatchSizeT is not null)
            Fail(source, $"patch_size_t = {c.PatchSizeT} marks a CogVideoX 1.5 transformer; this port runs CogVideoX 1.0 " +
                "models (CogVideoX-2b, CogVideoX-5b), whose config has patch_size_t null");
        if (c.OfsEmbedDim is > 0)
            Fail(source, $"ofs_embed_dim = {c.OfsEmbedDim} (the ofs embedding of CogVideoX 1.5 image-to-video) is not " +
                "supported; CogVideoX 1.0 models have ofs_embed_dim null");
        if (c.UseLearnedPositionalEmbeddings && !c.UseRotaryPositionalEmbeddings)
            Fail(source, "use_learned_positional_embeddings is true but use_rotary_positional_embeddings is false: no " +
                "CogVideoX model has learned positions without rotary ones (CogVideoX-5b-I2V has both), and diffusers refuses it too");
        Positive(source, "num_attention_heads", c.NumAttentionHeads);
        Positive(source, "attention_head_dim", c.AttentionHeadDim);
        Positive(source, "in_channels", c.InChannels);
        Positive(source, "out_channels", c.OutputChannels);
        Positive(source, "time_embed_dim", c.TimeEmbedDim);
        Positive(source, "text_embed_dim", c.TextEmbedDim);
        Positive(source, "num_layers", c.NumLayers);
        Positive(source, "patch_size", c.PatchSize);
        Positive(source, "temporal_compression_ratio", c.TemporalCompressionRatio);
        Positive(source, "max_text_seq_length", c.MaxTextSeqLength);
        Positive(source, "sample_height / patch_size", c.SampleHeight / c.PatchSize);
        Positive(source, "sample_width / patch_size", c.SampleWidth / c.PatchSize);
        if (!(c.NormEps > 0))
            Fail(source, $"norm_eps must be positive, got {c.NormEps}");
        if (c.UseRotaryPositionalEmbeddings && c.AttentionHeadDim % 16 != 0)
            Fail(source, $"3D rotary embeddings split attention_head_dim into time/height/width parts and need it " +
                $"divisible by 16, got {c.AttentionHeadDim}");
        if ((!c.UseRotaryPositionalEmbeddings || c.UseLearnedPositionalEmbeddings) && c.InnerDim % 16 != 0)
            Fail(source, $"sincos positional embeddings need num_attention_heads × attention_head_dim divisible by 16, " +
                $"got {c.InnerDim}");
        FeedForwardActivation(c, source);
        TimestepActivation(c, source);
    }

    public static Activation FeedForwardActivation(TransformerConfig c, string source) => c.ActivationFn switch
    {
        "gelu-approximate" => Activation.GeluTanh,
        "gelu" => Activation.Gelu,
        _ => throw new CogVideoXException(
            $"{source}: activation_fn \"{c.ActivationFn}\" is not supported; use \"gelu-approximate\" (the published " +
            "models) or \"gelu\""),
    };

    public static Activation TimestepActivation(TransformerConfig c, string source) => c.TimestepActivationFn switch
    {
        "silu" or "swish" => Activation.Silu,
        "gelu" => Activation.Gelu,
        "relu" => Activation.Relu,
        _ => throw new CogVideoXException(
            $"{source}: timestep_activation_fn \"{c.TimestepActivationFn}\" is not supported; use \"silu\" (the " +
            "published models), \"gelu\" or \"relu\""),
    };

    /// <summary>Latent frames/height/width a call may use: any frame count, sizes that split into whole patches.</summary>
    public static void LatentSize(TransformerConfig c, int frames, int height, int width)
    {
        if (frames < 1 || height < 1 || width < 1)
            throw new CogVideoXException($"latents of {frames} frames × {height} × {width} are empty; every dimension must be at least 1");
        int p = c.PatchSize;
        if (height % p != 0 || width % p != 0)
            throw new CogVideoXException(
                $"latent size {height}×{width} does not split into {p}×{p} patches; the latent height and width " +
                $"(video size / 8) must be multiples of {p}, so the video size must be a multiple of {8 * p}");
    }

    /// <summary>
    /// A model with a learned positional table (CogVideoX-5b-I2V) runs only at its config's sample height and width:
    /// the table has one row per patch of that size (diffusers refuses other sizes too).
    /// </summary>
    public static void LearnedTableSize(TransformerConfig c, int latentHeight, int latentWidth)
    {
        if (!c.UseLearnedPositionalEmbeddings || (latentHeight == c.SampleHeight && latentWidth == c.SampleWidth)) return;
        throw new CogVideoXException(
            $"this model's learned positional table (use_learned_positional_embeddings, as in CogVideoX-5b-I2V) covers one video size, " +
            $"{c.SampleHeight * 8} × {c.SampleWidth * 8} (height × width; latents {c.SampleHeight} × {c.SampleWidth}), and cannot run at " +
            $"{latentHeight * 8} × {latentWidth * 8}; use --height {c.SampleHeight * 8} --width {c.SampleWidth * 8} (the input image is resized to it)", 2);
    }

    private static void Positive(string source, string key, int value)
    {
        if (value <= 0) Fail(source, $"{key} must be positive, got {value}");
    }

    private static void Fail(string source, string message) => throw new CogVideoXException($"{source}: {message}");
}
