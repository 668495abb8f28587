using CogVideoX.Engine;
using CogVideoX.Models.Modules;

namespace CogVideoX.Models.Vae;

/// <summary>diffusers' CogVideoXMidBlock3D in the decoder: ResNet blocks at the latent resolution. Checkpoint names: <c>resnets.{i}.*</c>.</summary>
public sealed class MidBlock3d : Module
{
    public MidBlock3d(string path, int channels, int layers, int latentChannels, int groups, Activation activation)
    {
        Resnets = Enumerable.Range(0, layers)
            .Select(i => Child($"resnets.{i}", new ResnetBlock3d($"{path}.resnets.{i}", channels, channels, latentChannels, groups, activation)))
            .ToArray();
    }

    public IReadOnlyList<ResnetBlock3d> Resnets { get; }

    public ResnetBlockCache[] CreateCache() => Resnets.Select(r => r.CreateCache()).ToArray();

    /// <summary>Consumes <paramref name="x"/>; zq is borrowed.</summary>
    public Tensor ForwardConsuming(Tensor x, Tensor zq, ResnetBlockCache[] cache)
    {
        for (int i = 0; i < Resnets.Count; i++) x = Resnets[i].ForwardConsuming(x, zq, cache[i]);
        return x;
    }
}
