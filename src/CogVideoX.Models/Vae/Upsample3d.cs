using CogVideoX.Engine;
using CogVideoX.Models.Modules;

namespace CogVideoX.Models.Vae;

/// <summary>
/// diffusers' CogVideoXUpsample3D: nearest ×2 up-sampling of height and width (and of time when
/// <see cref="CompressTime"/>, see <see cref="Frames.UpsampledCount"/>), then a 3×3 convolution applied to each
/// frame. Checkpoint names: <c>conv.weight</c> [out, in, 3, 3] (a 2D convolution), <c>conv.bias</c>.
/// </summary>
public sealed class Upsample3d : Module
{
    private const int KernelSize = 3;

    private readonly Parameter _kernel;
    private readonly Parameter _bias;

    public Upsample3d(int inChannels, int outChannels, bool compressTime)
    {
        CompressTime = compressTime;
        // A per-frame 2D convolution is a 3D one with a time kernel of 1: no permute to [B·T, C, H, W] needed.
        _kernel = Reshaped("conv.weight", [outChannels, inChannels, KernelSize, KernelSize], [outChannels, inChannels, 1, KernelSize, KernelSize]);
        _bias = Weight("conv.bias", outChannels);
    }

    public bool CompressTime { get; }

    /// <summary>Frames out for <paramref name="frames"/> frames in.</summary>
    public int OutputFrames(int frames) => CompressTime ? Frames.UpsampledCount(frames) : frames;

    /// <summary>x [B, C, T, H, W] → [B, Cout, T', 2H, 2W], consuming <paramref name="x"/>.</summary>
    public Tensor ForwardConsuming(Tensor x)
    {
        Tensor upsampled;
        using (x)
        {
            if (CompressTime && x.Dim(2) > 1 && x.Dim(2) % 2 == 0)
            {
                upsampled = x.UpsampleNearest(2, 2, 2);
            }
            else if (CompressTime && x.Dim(2) > 1)
            {
                // The first frame keeps its own place in time; the rest double.
                using var timed = Frames.Gather(x, Frames.UpsampledSource(x.Dim(2)));
                upsampled = timed.UpsampleNearest(2, 2);
            }
            else
            {
                upsampled = x.UpsampleNearest(2, 2);
            }
        }
        using (upsampled)
            return upsampled.Conv3d(_kernel.Value, _bias.Value, new Conv3dParams(1, 1, 1, 0, 1, 1));
    }
}
