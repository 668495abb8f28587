using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>
/// What diffusers' adaptive norms of the transformer hold (<c>norm1</c>/<c>norm2</c> of a block and <c>norm_out</c>):
/// <c>linear</c>, projecting the SiLU-activated timestep embedding to <c>chunks</c> vectors of inner_dim, and
/// <c>norm</c>, the LayerNorm's optional γ and β. Loaded in that order, which block streaming relies on.
/// </summary>
internal sealed class AdaptiveNormWeights : IDisposable
{
    private readonly ParameterSet _parameters = new();

    public AdaptiveNormWeights(WeightScope w, TransformerConfig c, int chunks)
    {
        Eps = (float)c.NormEps;
        Chunks = chunks;
        try
        {
            LinearWeight = _parameters.Load(w, "linear.weight", chunks * c.InnerDim, c.TimeEmbedDim);
            LinearBias = _parameters.Load(w, "linear.bias", chunks * c.InnerDim);
            if (c.NormElementwiseAffine)
            {
                NormWeight = _parameters.Load(w, "norm.weight", c.InnerDim);
                NormBias = _parameters.Load(w, "norm.bias", c.InnerDim);
            }
        }
        catch
        {
            _parameters.Dispose();
            throw;
        }
    }

    /// <summary>The same weights over <c>place(t)</c> for each tensor, in load order.</summary>
    private AdaptiveNormWeights(AdaptiveNormWeights source, Func<Tensor, Tensor> place)
    {
        Eps = source.Eps;
        Chunks = source.Chunks;
        try
        {
            LinearWeight = _parameters.Keep(place(source.LinearWeight));
            LinearBias = _parameters.Keep(place(source.LinearBias));
            if (source.NormWeight is not null) NormWeight = _parameters.Keep(place(source.NormWeight));
            if (source.NormBias is not null) NormBias = _parameters.Keep(place(source.NormBias));
        }
        catch
        {
            _parameters.Dispose();
            throw;
        }
    }

    public Tensor LinearWeight { get; }

    public Tensor LinearBias { get; }

    public Tensor? NormWeight { get; }

    public Tensor? NormBias { get; }

    public float Eps { get; }

    public int Chunks { get; }

    public ParameterSet Parameters => _parameters;

    public AdaptiveNormWeights Rebind(Func<Tensor, Tensor> place) => new(this, place);

    internal static void DescribeParameters(TransformerConfig c, string prefix, int chunks, List<(string Name, int[] Shape)> into)
    {
        into.Add(($"{prefix}.linear.weight", [chunks * c.InnerDim, c.TimeEmbedDim]));
        into.Add(($"{prefix}.linear.bias", [chunks * c.InnerDim]));
        if (c.NormElementwiseAffine)
        {
            into.Add(($"{prefix}.norm.weight", [c.InnerDim]));
            into.Add(($"{prefix}.norm.bias", [c.InnerDim]));
        }
    }

    /// <summary>The projected embedding split into its <see cref="Chunks"/> vectors [B, inner_dim] (caller disposes each).</summary>
    public Tensor[] Modulation(Tensor activatedEmbedding)
    {
        using var modulation = activatedEmbedding.Linear(LinearWeight, LinearBias);
        return modulation.Chunk(Chunks, 1);
    }

    /// <summary>
    /// destination[:, start:start+length] = (LayerNorm(x[:, start:start+length])·γ + β)·(1 + scale[b]) + shift[b]
    /// per batch item b, with scale and shift [B, D]: one fused pass that reads each row once and writes it straight
    /// into its place in destination.
    /// </summary>
    public void NormalizeModulated(Tensor x, Tensor destination, int start, int length, Tensor scale, Tensor shift)
    {
        if (length == 0) return;
        using var rows = x.Narrow(1, start, length);
        using var target = destination.Narrow(1, start, length);
        using var s = scale.Unsqueeze(1);
        using var t = shift.Unsqueeze(1);
        rows.ModulatedLayerNormInto(NormWeight, NormBias, s, t, Eps, target);
    }

    public void Dispose() => _parameters.Dispose();
}
