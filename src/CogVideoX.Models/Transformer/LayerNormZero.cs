using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>
/// diffusers' <c>CogVideoXLayerNormZero</c> (<c>norm1</c>, <c>norm2</c> of a block): one SiLU-activated timestep
/// embedding projected to six vectors — shift, scale, gate for the video tokens and the same for the text tokens (the
/// "expert" adaptive norms) — and a LayerNorm shared by both kinds of token.
/// </summary>
internal sealed class LayerNormZero : IDisposable
{
    private readonly ParameterSet _parameters = new();
    private readonly Tensor _linearWeight;
    private readonly Tensor _linearBias;
    private readonly Tensor? _normWeight;
    private readonly Tensor? _normBias;
    private readonly float _eps;

    public LayerNormZero(WeightScope w, TransformerConfig c)
    {
        _eps = (float)c.NormEps;
        try
        {
            _linearWeight = _parameters.Load(w, "linear.weight", 6 * c.InnerDim, c.TimeEmbedDim);
            _linearBias = _parameters.Load(w, "linear.bias", 6 * c.InnerDim);
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

    /// <summary>The same norm over <c>place(w)</c> for each of its parameters, in load order.</summary>
    private LayerNormZero(LayerNormZero source, Func<Tensor, Tensor> place)
    {
        _eps = source._eps;
        try
        {
            _linearWeight = _parameters.Keep(place(source._linearWeight));
            _linearBias = _parameters.Keep(place(source._linearBias));
            if (source._normWeight is not null) _normWeight = _parameters.Keep(place(source._normWeight));
            if (source._normBias is not null) _normBias = _parameters.Keep(place(source._normBias));
        }
        catch
        {
            _parameters.Dispose();
            throw;
        }
    }

    public LayerNormZero Rebind(Func<Tensor, Tensor> place) => new(this, place);

    public ParameterSet Parameters => _parameters;

    internal static void DescribeParameters(TransformerConfig c, string prefix, List<(string Name, int[] Shape)> into)
    {
        into.Add(($"{prefix}.linear.weight", [6 * c.InnerDim, c.TimeEmbedDim]));
        into.Add(($"{prefix}.linear.bias", [6 * c.InnerDim]));
        if (c.NormElementwiseAffine)
        {
            into.Add(($"{prefix}.norm.weight", [c.InnerDim]));
            into.Add(($"{prefix}.norm.bias", [c.InnerDim]));
        }
    }

    /// <summary>
    /// Normalises <paramref name="hidden"/> [B, S, D] (text tokens first) into <paramref name="destination"/>, each
    /// kind of token modulated by its own shift/scale, and returns the two gates [B, D] (video, text) as views of
    /// one new tensor (the caller disposes them).
    /// </summary>
    public (Tensor Gate, Tensor TextGate) Apply(Tensor hidden, Tensor destination, int textLength, Tensor activatedEmbedding)
    {
        using var modulation = activatedEmbedding.Linear(_linearWeight, _linearBias);
        var parts = modulation.Chunk(6, 1);
        try
        {
            // diffusers' chunk order: shift, scale, gate, enc_shift, enc_scale, enc_gate.
            int videoLength = hidden.Dim(1) - textLength;
            NormalizeModulated(hidden, destination, textLength, videoLength, _normWeight, _normBias, _eps, parts[1], parts[0]);
            NormalizeModulated(hidden, destination, 0, textLength, _normWeight, _normBias, _eps, parts[4], parts[3]);
            return (parts[2].Alias(), parts[5].Alias());
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <summary>
    /// destination[:, start:start+length] = (LayerNorm(x[:, start:start+length])·γ + β)·(1 + scale[b]) + shift[b]
    /// per batch item b, with scale and shift [B, D]: one fused pass that reads each row once and writes it straight
    /// into its place in destination.
    /// </summary>
    internal static void NormalizeModulated(Tensor x, Tensor destination, int start, int length, Tensor? gamma,
        Tensor? beta, float eps, Tensor scale, Tensor shift)
    {
        if (length == 0) return;
        using var rows = x.Narrow(1, start, length);
        using var target = destination.Narrow(1, start, length);
        using var s = scale.Unsqueeze(1);
        using var t = shift.Unsqueeze(1);
        rows.ModulatedLayerNorm(gamma, beta, s, t, eps, target).Dispose();
    }

    public void Dispose() => _parameters.Dispose();
}
