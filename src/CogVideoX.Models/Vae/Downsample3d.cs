using CogVideoX.Engine;
using CogVideoX.Models.Modules;

namespace CogVideoX.Models.Vae;

/// <summary>
/// diffusers' CogVideoXDownsample3D: with <see cref="CompressTime"/>, an average over pairs of frames (see
/// <see cref="Frames.DownsampledCount"/>: an odd count keeps its first frame); then one zero row below and one zero
/// column to the right, and a 3×3 convolution of stride 2 applied to each frame, halving height and width.
/// Checkpoint names: <c>conv.weight</c> [out, in, 3, 3] (a 2D convolution), <c>conv.bias</c>.
/// </summary>
public sealed class Downsample3d : Module
{
    private const int KernelSize = 3;
    private const int Stride = 2;

    private readonly Parameter _kernel;
    private readonly Parameter _bias;

    public Downsample3d(int inChannels, int outChannels, bool compressTime)
    {
        CompressTime = compressTime;
        // A per-frame 2D convolution is a 3D one with a time kernel of 1: no permute to [B·T, C, H, W] needed.
        _kernel = Reshaped("conv.weight", [outChannels, inChannels, KernelSize, KernelSize], [outChannels, inChannels, 1, KernelSize, KernelSize]);
        _bias = Weight("conv.bias", outChannels);
    }

    public bool CompressTime { get; }

    /// <summary>Frames out for <paramref name="frames"/> frames in.</summary>
    public int OutputFrames(int frames) => CompressTime ? Frames.DownsampledCount(frames) : frames;

    /// <summary>Height or width out for <paramref name="size"/> in (padded by one, kernel 3, stride 2): ⌊size / 2⌋ for size ≥ 2.</summary>
    public static int OutputSize(int size) => size < KernelSize - 1 ? 0 : (size + 1 - KernelSize) / Stride + 1;

    /// <summary>x [B, C, T, H, W] → [B, Cout, T', ⌊H/2⌋, ⌊W/2⌋], consuming <paramref name="x"/>.</summary>
    public Tensor ForwardConsuming(Tensor x)
    {
        if (CompressTime) x = Frames.AveragePairsConsuming(x);
        Tensor padded;
        using (x) padded = x.Pad([(0, 0), (0, 0), (0, 0), (0, 1), (0, 1)]);
        using (padded)
            return padded.Conv3d(_kernel.Value, _bias.Value, new Conv3dParams(1, Stride, Stride, 0, 0, 0));
    }
}
