using CogVideoX.Engine;
using CogVideoX.Models.Modules;

namespace CogVideoX.Models.Vae;

/// <summary>
/// diffusers' CogVideoXUpBlock3D: ResNet blocks (the first one changing the channel count), then, except in the last
/// block, an <see cref="Upsample3d"/>. Checkpoint names: <c>resnets.{i}.*</c>, <c>upsamplers.0.conv.*</c>.
/// </summary>
public sealed class UpBlock3d : Module
{
    public UpBlock3d(string path, int inChannels, int outChannels, int layers, int latentChannels, int groups,
        Activation activation, bool addUpsample, bool compressTime)
    {
        Resnets = Enumerable.Range(0, layers)
            .Select(i => Child($"resnets.{i}", new ResnetBlock3d($"{path}.resnets.{i}", i == 0 ? inChannels : outChannels, outChannels, latentChannels, groups, activation)))
            .ToArray();
        if (addUpsample)
            Upsampler = Child("upsamplers.0", new Upsample3d(outChannels, outChannels, compressTime));
    }

    public IReadOnlyList<ResnetBlock3d> Resnets { get; }

    public Upsample3d? Upsampler { get; }

    public ResnetBlockCache[] CreateCache() => Resnets.Select(r => r.CreateCache()).ToArray();

    /// <summary>Frames out for <paramref name="frames"/> frames in.</summary>
    public int OutputFrames(int frames) => Upsampler?.OutputFrames(frames) ?? frames;

    /// <summary>Consumes <paramref name="x"/>; zq is borrowed.</summary>
    public Tensor ForwardConsuming(Tensor x, Tensor zq, ResnetBlockCache[] cache, CancellationToken cancellation = default)
    {
        for (int i = 0; i < Resnets.Count; i++)
        {
            // x belongs to the caller's tensor scope, which releases it when this throws.
            cancellation.ThrowIfCancellationRequested();
            x = Resnets[i].ForwardConsuming(x, zq, cache[i]);
        }
        return Upsampler is null ? x : Upsampler.ForwardConsuming(x);
    }
}
