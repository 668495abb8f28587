using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>What this port of the CogVideoX transformer (1.0 and 1.5) accepts from a config and from a call.</summary>
internal static class TransformerConfigCheck
{
    /// <summary>Throws a <see cref="CogVideoXException"/> naming <paramref name="source"/> when the config cannot be run.</summary>
    public static void Validate(TransformerConfig c, string source)
    {
        if (c.PatchSizeT is { } pt)
        {
            // CogVideoX 1.5: temporal patches. Its positions are rotary over the patched grid; diffusers would build a
            // sincos or learned table for the unpatched frame count, which no checkpoint has.
            Positive(source, "patch_size_t", pt);
            if (!c.UseRotaryPositionalEmbeddings || c.UseLearnedPositionalEmbeddings)
                Fail(source, $"patch_size_t = {pt} (CogVideoX 1.5) goes with rotary positions only " +
                    "(use_rotary_positional_embeddings true, use_learned_positional_embeddings false), as in " +
                    "THUDM/CogVideoX1.5-5B and -5B-I2V; a table over unpatched frames does not fit temporal patches");
        }
        if (c.OfsEmbedDim is { } ofs && ofs != 0)
        {
            if (ofs < 0)
                Fail(source, $"ofs_embed_dim must be positive or null, got {ofs}");
            if (ofs != c.TimeEmbedDim)
                Fail(source, $"ofs_embed_dim {ofs} must equal time_embed_dim {c.TimeEmbedDim}: the ofs embedding is added to " +
                    "the timestep embedding (CogVideoX1.5-5B-I2V has 512 for both)");
        }
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

    /// <summary>
    /// Latent frames/height/width a call may use: sizes that split into whole patches — any frame count for 1.0, a
    /// multiple of patch_size_t for 1.5 (its pipeline pads), and for 1.5 a patch grid within the rotary table's
    /// sample_height × sample_width (its "slice" positions go no further).
    /// </summary>
    public static void LatentSize(TransformerConfig c, int frames, int height, int width)
    {
        if (frames < 1 || height < 1 || width < 1)
            throw new CogVideoXException($"latents of {frames} frames × {height} × {width} are empty; every dimension must be at least 1");
        int p = c.PatchSize;
        if (height % p != 0 || width % p != 0)
            throw new CogVideoXException(
                $"latent size {height}×{width} does not split into {p}×{p} patches; the latent height and width " +
                $"(video size / 8) must be multiples of {p}, so the video size must be a multiple of {8 * p}");
        if (c.PatchSizeT is not { } pt) return;
        if (frames % pt != 0)
            throw new CogVideoXException(
                $"{frames} latent frames do not split into temporal patches of {pt} (patch_size_t, CogVideoX 1.5); the " +
                $"pipeline pads the latents to a multiple of {pt} ({(frames + pt - 1) / pt * pt} here) and trims the padding before decoding");
        int maxHeight = c.SampleHeight / p, maxWidth = c.SampleWidth / p;
        if (height / p > maxHeight || width / p > maxWidth)
            throw new CogVideoXException(
                $"latent size {height}×{width} makes a {height / p}×{width / p} patch grid, larger than the {maxHeight}×{maxWidth} " +
                $"this CogVideoX 1.5 model has rotary positions for (sample_height {c.SampleHeight}, sample_width {c.SampleWidth} latent " +
                $"pixels); the video may be at most {c.SampleHeight * 8} pixels high and {c.SampleWidth * 8} wide");
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
