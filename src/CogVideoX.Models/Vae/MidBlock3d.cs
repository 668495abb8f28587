using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Vae;

/// <summary>diffusers' CogVideoXMidBlock3D in the decoder: ResNet blocks at the latent resolution. Checkpoint names: <c>resnets.{i}.*</c>.</summary>
public sealed class MidBlock3d : IDisposable
{
    public MidBlock3d(WeightScope weights, int channels, int layers, int latentChannels, int groups, Activation activation)
    {
        var resnets = weights.Scope("resnets");
        Resnets = Enumerable.Range(0, layers)
            .Select(i => new ResnetBlock3d(resnets.Scope(i), channels, channels, latentChannels, groups, activation))
            .ToArray();
    }

    public IReadOnlyList<ResnetBlock3d> Resnets { get; }

    public ResnetBlockCache[] CreateCache() => Resnets.Select(r => r.CreateCache()).ToArray();

    /// <summary>Takes ownership of <paramref name="x"/>; zq is borrowed.</summary>
    public Tensor Forward(Tensor x, Tensor zq, ResnetBlockCache[] cache)
    {
        for (int i = 0; i < Resnets.Count; i++) x = Resnets[i].Forward(x, zq, cache[i]);
        return x;
    }

    public void Dispose()
    {
        foreach (var r in Resnets) r.Dispose();
    }
}
