using CogVideoX.Engine;
using CogVideoX.Models.Modules;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>
/// What diffusers' adaptive norms of the transformer hold (<c>norm1</c>/<c>norm2</c> of a block and <c>norm_out</c>):
/// <c>linear</c>, projecting the SiLU-activated timestep embedding to <c>chunks</c> vectors of inner_dim, and
/// <c>norm</c>, the LayerNorm's optional γ and β.
/// </summary>
internal abstract class AdaptiveNorm : Module
{
    private readonly Parameter _linearWeight;
    private readonly Parameter _linearBias;
    private readonly Parameter? _normWeight;
    private readonly Parameter? _normBias;

    protected AdaptiveNorm(TransformerConfig c, int chunks)
    {
        Eps = (float)c.NormEps;
        Chunks = chunks;
        _linearWeight = Weight("linear.weight", chunks * c.InnerDim, c.TimeEmbedDim);
        _linearBias = Weight("linear.bias", chunks * c.InnerDim);
        if (c.NormElementwiseAffine)
        {
            _normWeight = Weight("norm.weight", c.InnerDim);
            _normBias = Weight("norm.bias", c.InnerDim);
        }
    }

    public float Eps { get; }

    public int Chunks { get; }

    /// <summary>The projected embedding split into its <see cref="Chunks"/> vectors [B, inner_dim] (caller disposes each).</summary>
    protected Tensor[] Modulation(Tensor activatedEmbedding)
    {
        using var modulation = activatedEmbedding.Linear(_linearWeight.Value, _linearBias.Value);
        return modulation.Chunk(Chunks, 1);
    }

    /// <summary>
    /// destination[:, start:start+length] = (LayerNorm(x[:, start:start+length])·γ + β)·(1 + scale[b]) + shift[b]
    /// per batch item b, with scale and shift [B, D]: one fused pass that reads each row once and writes it straight
    /// into its place in destination.
    /// </summary>
    protected void NormalizeModulated(Tensor x, Tensor destination, int start, int length, Tensor scale, Tensor shift)
    {
        if (length == 0) return;
        using var rows = x.Narrow(1, start, length);
        using var target = destination.Narrow(1, start, length);
        using var s = scale.Unsqueeze(1);
        using var t = shift.Unsqueeze(1);
        rows.ModulatedLayerNormInto(_normWeight?.Value, _normBias?.Value, s, t, Eps, target);
    }

    /// <summary>
    /// <see cref="NormalizeModulated"/> written as the FP8 input of the linear after it: the rows' codes and scales in
    /// their places in destination ([B, S, D] and [B, S]), bit for bit the norm then that linear's quantization.
    /// </summary>
    protected void NormalizeModulatedFp8(Tensor x, Fp8Activation destination, int start, int length, Tensor scale, Tensor shift)
    {
        if (length == 0) return;
        using var rows = x.Narrow(1, start, length);
        using var codes = destination.Codes.Narrow(1, start, length);
        using var scales = destination.Scales.Narrow(1, start, length);
        using var s = scale.Unsqueeze(1);
        using var t = shift.Unsqueeze(1);
        rows.ModulatedLayerNormFp8Into(_normWeight?.Value, _normBias?.Value, s, t, Eps, codes, scales);
    }
}
