using CogVideoX.Engine;
using CogVideoX.Models.Modules;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>
/// <c>time_proj</c> + <c>time_embedding</c>: the sinusoidal projection of each batch item's timestep (float32, as
/// diffusers' <c>get_timestep_embedding</c>), then <c>linear_1</c> → activation → <c>linear_2</c>. CogVideoX
/// 1.5-I2V's <c>ofs_proj</c> + <c>ofs_embedding</c> are the same computation at ofs_embed_dim wide.
/// </summary>
internal sealed class TimestepEmbedding : Module
{
    private readonly Parameter _linear1Weight;
    private readonly Parameter _linear1Bias;
    private readonly Parameter _linear2Weight;
    private readonly Parameter _linear2Bias;
    private readonly Activation _activation;
    private readonly int _channels;
    private readonly bool _flipSinToCos;
    private readonly int _freqShift;

    /// <summary>The timestep embedding: inner_dim sinusoidal channels → time_embed_dim.</summary>
    public TimestepEmbedding(TransformerConfig c, Activation activation)
        : this(c.InnerDim, c.TimeEmbedDim, c.FlipSinToCos, c.FreqShift, activation)
    {
    }

    /// <summary><paramref name="channels"/> sinusoidal channels → <paramref name="embedDim"/> (linear_1, activation, linear_2).</summary>
    public TimestepEmbedding(int channels, int embedDim, bool flipSinToCos, int freqShift, Activation activation)
    {
        _channels = channels;
        _flipSinToCos = flipSinToCos;
        _freqShift = freqShift;
        _activation = activation;
        _linear1Weight = Weight("linear_1.weight", embedDim, channels);
        _linear1Bias = Weight("linear_1.bias", embedDim);
        _linear2Weight = Weight("linear_2.weight", embedDim, embedDim);
        _linear2Bias = Weight("linear_2.bias", embedDim);
    }

    /// <summary>The conditioning vector [B, time_embed_dim] for one timestep per batch item.</summary>
    public Tensor Forward(ReadOnlySpan<float> timesteps)
    {
        var table = Sinusoidal(timesteps, _channels, _flipSinToCos, _freqShift);
        var weight1 = _linear1Weight.Value;
        using var projected = Tensor.FromArray(table, [timesteps.Length, _channels], weight1.Backend, weight1.DType);
        using var hidden = projected.Linear(weight1, _linear1Bias.Value, _activation);
        return hidden.Linear(_linear2Weight.Value, _linear2Bias.Value);
    }

    /// <summary>
    /// diffusers' <c>get_timestep_embedding</c> step by step in float32: frequencies exp(−ln(10000)·k / (half − shift)),
    /// angles t·freq, then [sin | cos] (or [cos | sin] with flipSinToCos); an odd dim gets a zero last column.
    /// Transcendentals are taken in float64 and rounded once, which is what torch's float32 kernels aim for.
    /// </summary>
    public static float[] Sinusoidal(ReadOnlySpan<float> timesteps, int dim, bool flipSinToCos, double freqShift)
    {
        int half = dim / 2;
        var freqs = new float[half];
        float logPeriod = (float)-Math.Log(10000.0);
        float denominator = (float)(half - freqShift);
        for (int k = 0; k < half; k++)
        {
            float exponent = logPeriod * k / denominator;
            freqs[k] = (float)Math.Exp(exponent);
        }
        var table = new float[timesteps.Length * dim];
        for (int b = 0; b < timesteps.Length; b++)
        {
            var row = table.AsSpan(b * dim, dim);
            for (int k = 0; k < half; k++)
            {
                float angle = timesteps[b] * freqs[k];
                float sin = (float)Math.Sin(angle), cos = (float)Math.Cos(angle);
                row[flipSinToCos ? half + k : k] = sin;
                row[flipSinToCos ? k : half + k] = cos;
            }
        }
        return table;
    }
}
