using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>
/// <c>norm_out</c>: diffusers' <c>AdaLayerNorm</c> with chunk_dim 1 — the SiLU-activated timestep embedding is
/// projected to [shift | scale] (shift first in this variant, unlike the chunk_dim 0 one), then
/// LayerNorm(x)·(1 + scale) + shift.
/// </summary>
internal sealed class AdaLayerNorm : IDisposable
{
    private readonly ParameterSet _parameters = new();
    private readonly Tensor _linearWeight;
    private readonly Tensor _linearBias;
    private readonly Tensor? _normWeight;
    private readonly Tensor? _normBias;
    private readonly float _eps;

    public AdaLayerNorm(WeightScope w, TransformerConfig c)
    {
        _eps = (float)c.NormEps;
        try
        {
            _linearWeight = _parameters.Load(w, "linear.weight", 2 * c.InnerDim, c.TimeEmbedDim);
            _linearBias = _parameters.Load(w, "linear.bias", 2 * c.InnerDim);
            if (c.NormElementwiseAffine)
            {
                _normWeight = _parameters.Load(w, "norm.weight", c.InnerDim);
                _normBias = _parameters.Load(w, "norm.bias", c.InnerDim);
            }
        }
        catch
        {
            _parameters.Dispose();
            throw;
        }
    }

    public ParameterSet Parameters => _parameters;

    internal static void DescribeParameters(TransformerConfig c, string prefix, List<(string Name, int[] Shape)> into)
    {
        into.Add(($"{prefix}.linear.weight", [2 * c.InnerDim, c.TimeEmbedDim]));
        into.Add(($"{prefix}.linear.bias", [2 * c.InnerDim]));
        if (c.NormElementwiseAffine)
        {
            into.Add(($"{prefix}.norm.weight", [c.InnerDim]));
            into.Add(($"{prefix}.norm.bias", [c.InnerDim]));
        }
    }

    /// <summary>x [B, N, D] → a new modulated tensor [B, N, D].</summary>
    public Tensor Forward(Tensor x, Tensor activatedEmbedding)
    {
        using var modulation = activatedEmbedding.Linear(_linearWeight, _linearBias);
        var parts = modulation.Chunk(2, 1);
        try
        {
            var y = Tensor.Empty(x.Backend, x.DType, x.ShapeArray());
            LayerNormZero.NormalizeModulated(x, y, 0, x.Dim(1), _normWeight, _normBias, _eps, parts[1], parts[0]);
            return y;
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    public void Dispose() => _parameters.Dispose();
}
