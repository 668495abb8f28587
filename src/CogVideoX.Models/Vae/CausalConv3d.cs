using CogVideoX.Engine;
using CogVideoX.Models.Modules;

namespace CogVideoX.Models.Vae;

/// <summary>
/// The state a causal convolution carries from one frame batch to the next: the last (kernel − 1) frames of its
/// time-padded input. Empty before the first batch. Owned by one decode call and disposed by it.
/// </summary>
public sealed class CausalConvCache : IDisposable
{
    /// <summary>[B, C, kernel − 1, H, W], or null before the first batch.</summary>
    public Tensor? Frames { get; private set; }

    /// <summary>
    /// Set for the video's last frame batch: nothing follows, so the convolution releases the carried frames once it
    /// has read them instead of keeping new ones (a one-batch video, such as an image, then holds no cache at all).
    /// </summary>
    public bool Final { get; set; }

    /// <summary>Replaces the carried frames, releasing the previous ones at once.</summary>
    internal void Replace(Tensor? frames)
    {
        Frames?.Dispose();
        Frames = frames;
    }

    /// <summary>Moves the carried frames out of a frame batch's scope so they outlive it.</summary>
    internal void KeepFrom(TensorScope scope)
    {
        if (Frames is not null) scope.Keep(Frames);
    }

    public void Dispose() => Replace(null);
}

/// <summary>
/// diffusers' CogVideoXCausalConv3d (pad_mode "first"): a cubic 3D convolution that sees only the past in time. The
/// time axis is padded on the past side with the previous batch's last frames (the cache) or, at the start of the
/// video, with copies of the first frame; height and width get zero padding of (kernel − 1) / 2. Checkpoint names:
/// <c>conv.weight</c> [out, in, k, k, k], <c>conv.bias</c> [out].
/// </summary>
public sealed class CausalConv3d : Module
{
    private readonly Parameter _weight;
    private readonly Parameter _bias;

    public CausalConv3d(int inChannels, int outChannels, int kernelSize)
    {
        if (kernelSize < 1 || kernelSize % 2 == 0)
            throw new ArgumentOutOfRangeException(nameof(kernelSize), "causal convolutions here use odd cubic kernels");
        KernelSize = kernelSize;
        InChannels = inChannels;
        OutChannels = outChannels;
        _weight = Weight("conv.weight", outChannels, inChannels, kernelSize, kernelSize, kernelSize);
        _bias = Weight("conv.bias", outChannels);
    }

    public int KernelSize { get; }

    public int InChannels { get; }

    public int OutChannels { get; }

    /// <summary>Frames of padding in time (the cache length).</summary>
    public int TimePadding => KernelSize - 1;

    /// <summary>
    /// Convolves x [B, Cin, T, H, W] → [B, Cout, T, H, W], consuming <paramref name="x"/> (it is released as soon as
    /// the padded copy exists, to keep the working set small). With a cache, its frames pad the past and are replaced
    /// by this batch's last frames; without one every call starts a new video.
    /// </summary>
    public Tensor ForwardConsuming(Tensor x, CausalConvCache? cache)
    {
        int spatialPad = (KernelSize - 1) / 2;
        var p = new Conv3dParams(1, 1, 1, 0, spatialPad, spatialPad);
        if (TimePadding == 0)
        {
            // diffusers also "caches" the whole input of 1×1×1 convolutions, but never reads it: nothing to carry.
            using (x) return x.Conv3d(_weight.Value, _bias.Value, p);
        }

        Tensor padded;
        using (x)
        {
            using var past = cache?.Frames is { } carried
                ? carried.Alias()
                : FirstFrameRepeated(x, TimePadding);
            padded = Ops.Concat(2, past, x);
        }
        using (padded)
        {
            if (cache is { Final: true })
            {
                cache.Replace(null);
            }
            else if (cache is not null)
            {
                using var tail = padded.Narrow(2, padded.Dim(2) - TimePadding, TimePadding);
                cache.Replace(tail.Clone());
            }
            return padded.Conv3d(_weight.Value, _bias.Value, p);
        }
    }

    private static Tensor FirstFrameRepeated(Tensor x, int count)
    {
        using var first = x.Narrow(2, 0, 1);
        return first.BroadcastTo(x.Dim(0), x.Dim(1), count, x.Dim(3), x.Dim(4));
    }
}
