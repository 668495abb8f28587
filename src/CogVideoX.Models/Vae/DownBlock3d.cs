using CogVideoX.Engine;
using CogVideoX.Models.Modules;

namespace CogVideoX.Models.Vae;

/// <summary>
/// diffusers' CogVideoXDownBlock3D: ResNet blocks (the first one changing the channel count), then, except in the last
/// block, a <see cref="Downsample3d"/>. Checkpoint names: <c>resnets.{i}.*</c>, <c>downsamplers.0.conv.*</c>.
/// </summary>
public sealed class DownBlock3d : Module
{
    public DownBlock3d(string path, int inChannels, int outChannels, int layers, int groups, float eps,
        Activation activation, bool addDownsample, bool compressTime)
    {
        Resnets = Enumerable.Range(0, layers)
            .Select(i => Child($"resnets.{i}", ResnetBlock3d.WithGroupNorm($"{path}.resnets.{i}", i == 0 ? inChannels : outChannels, outChannels, groups, eps, activation)))
            .ToArray();
        if (addDownsample)
            Downsampler = Child("downsamplers.0", new Downsample3d(outChannels, outChannels, compressTime));
    }

    public IReadOnlyList<ResnetBlock3d> Resnets { get; }

    public Downsample3d? Downsampler { get; }

    public ResnetBlockCache[] CreateCache() => Resnets.Select(r => r.CreateCache()).ToArray();

    /// <summary>Frames out for <paramref name="frames"/> frames in.</summary>
    public int OutputFrames(int frames) => Downsampler?.OutputFrames(frames) ?? frames;

    /// <summary>Height or width out for <paramref name="size"/> in.</summary>
    public int OutputSize(int size) => Downsampler is null ? size : Downsample3d.OutputSize(size);

    /// <summary>Consumes <paramref name="x"/>; <paramref name="windowBytes"/> bounds the convolutions' chunks (<see cref="ResnetBlock3d.ForwardConsuming"/>).</summary>
    public Tensor ForwardConsuming(Tensor x, ResnetBlockCache[] cache, CancellationToken cancellation = default, long windowBytes = long.MaxValue)
    {
        for (int i = 0; i < Resnets.Count; i++)
        {
            // x belongs to the caller's tensor scope, which releases it when this throws.
            cancellation.ThrowIfCancellationRequested();
            x = Resnets[i].ForwardConsuming(x, null, cache[i], windowBytes);
        }
        return Downsampler is null ? x : Downsampler.ForwardConsuming(x);
    }
}
