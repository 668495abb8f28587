using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Vae;

/// <summary>
/// diffusers' CogVideoXUpBlock3D: ResNet blocks (the first one changing the channel count), then, except in the last
/// block, an <see cref="Upsample3d"/>. Checkpoint names: <c>resnets.{i}.*</c>, <c>upsamplers.0.conv.*</c>.
/// </summary>
public sealed class UpBlock3d : IDisposable
{
    public UpBlock3d(WeightScope weights, int inChannels, int outChannels, int layers, int latentChannels, int groups,
        Activation activation, bool addUpsample, bool compressTime)
    {
        var resnets = weights.Scope("resnets");
        Resnets = Enumerable.Range(0, layers)
            .Select(i => new ResnetBlock3d(resnets.Scope(i), i == 0 ? inChannels : outChannels, outChannels, latentChannels, groups, activation))
            .ToArray();
        if (addUpsample)
            Upsampler = new Upsample3d(weights.Scope("upsamplers").Scope(0), outChannels, outChannels, compressTime);
    }

    public IReadOnlyList<ResnetBlock3d> Resnets { get; }

    public Upsample3d? Upsampler { get; }

    public ResnetBlockCache[] CreateCache() => Resnets.Select(r => r.CreateCache()).ToArray();

    /// <summary>Frames out for <paramref name="frames"/> frames in.</summary>
    public int OutputFrames(int frames) => Upsampler?.OutputFrames(frames) ?? frames;

    /// <summary>Takes ownership of <paramref name="x"/>; zq is borrowed.</summary>
    public Tensor Forward(Tensor x, Tensor zq, ResnetBlockCache[] cache, CancellationToken cancellation = default)
    {
        for (int i = 0; i < Resnets.Count; i++)
        {
            // x belongs to the caller's tensor scope, which releases it when this throws.
            cancellation.ThrowIfCancellationRequested();
            x = Resnets[i].Forward(x, zq, cache[i]);
        }
        return Upsampler is null ? x : Upsampler.Forward(x);
    }

    public void Dispose()
    {
        foreach (var r in Resnets) r.Dispose();
        Upsampler?.Dispose();
    }
}
