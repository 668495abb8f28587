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
    public (Tensor Gate, Tensor TextGate) Apply(Tensor hidden, Tensor destination, int textLength, Tensor activatedEmbedding) =>
        Apply(hidden, textLength, activatedEmbedding,
            (start, length, scale, shift) => NormalizeModulated(hidden, destination, start, length, scale, shift));

    /// <summary>
    /// <see cref="Apply(Tensor, Tensor, int, Tensor)"/> written as the FP8 input of the linear that reads it
    /// (<paramref name="destination"/> [B, S, D] codes and [B, S] scales): under FP8 linears the half-type norm is
    /// neither written nor read back.
    /// </summary>
    public (Tensor Gate, Tensor TextGate) Apply(Tensor hidden, Fp8Activation destination, int textLength, Tensor activatedEmbedding) =>
        Apply(hidden, textLength, activatedEmbedding,
            (start, length, scale, shift) => NormalizeModulatedFp8(hidden, destination, start, length, scale, shift));

    private (Tensor Gate, Tensor TextGate) Apply(Tensor hidden, int textLength, Tensor activatedEmbedding, Action<int, int, Tensor, Tensor> normalize)
    {
        var parts = Modulation(activatedEmbedding);
        try
        {
            // diffusers' chunk order: shift, scale, gate, enc_shift, enc_scale, enc_gate.
            int videoLength = hidden.Dim(1) - textLength;
            normalize(textLength, videoLength, parts[1], parts[0]);
            normalize(0, textLength, parts[4], parts[3]);
            return (parts[2].Alias(), parts[5].Alias());
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }
}
