using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>
/// <c>norm_out</c>: diffusers' <c>AdaLayerNorm</c> with chunk_dim 1 — the SiLU-activated timestep embedding is
/// projected to [shift | scale] (shift first in this variant, unlike the chunk_dim 0 one), then
/// LayerNorm(x)·(1 + scale) + shift.
/// </summary>
internal sealed class AdaLayerNorm(TransformerConfig c) : AdaptiveNorm(c, 2)
{
    /// <summary>x [B, N, D] → a new modulated tensor [B, N, D].</summary>
    public Tensor Forward(Tensor x, Tensor activatedEmbedding)
    {
        var parts = Modulation(activatedEmbedding);
        try
        {
            var y = Tensor.Empty(x.Backend, x.DType, x.ShapeArray());
            NormalizeModulated(x, y, 0, x.Dim(1), scale: parts[1], shift: parts[0]);
            return y;
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }
}
