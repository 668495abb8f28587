using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>
/// diffusers' <c>CogVideoXLayerNormZero</c> (<c>norm1</c>, <c>norm2</c> of a block): one SiLU-activated timestep
/// embedding projected to six vectors — shift, scale, gate for the video tokens and the same for the text tokens (the
/// "expert" adaptive norms) — and a LayerNorm shared by both kinds of token.
/// </summary>
internal sealed class LayerNormZero(TransformerConfig c) : AdaptiveNorm(c, 6)
{
    /// <summary>
    /// Normalises <paramref name="hidden"/> [B, S, D] (text tokens first) into <paramref name="destination"/>, each
    /// kind of token modulated by its own shift/scale, and returns the two gates [B, D] (video, text) as views of
    /// one new tensor (the caller disposes them).
    /// </summary>
    public (Tensor Gate, Tensor TextGate) Apply(Tensor hidden, Tensor destination, int textLength, Tensor activatedEmbedding)
    {
        var parts = Modulation(activatedEmbedding);
        try
        {
            // diffusers' chunk order: shift, scale, gate, enc_shift, enc_scale, enc_gate.
            int videoLength = hidden.Dim(1) - textLength;
            NormalizeModulated(hidden, destination, textLength, videoLength, scale: parts[1], shift: parts[0]);
            NormalizeModulated(hidden, destination, 0, textLength, scale: parts[4], shift: parts[3]);
            return (parts[2].Alias(), parts[5].Alias());
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }
}
