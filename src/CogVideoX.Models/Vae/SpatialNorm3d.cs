using CogVideoX.Engine;
using CogVideoX.Models.Modules;
using CogVideoX.Weights;

namespace CogVideoX.Models.Vae;

/// <summary>
/// diffusers' CogVideoXSpatialNorm3D: GroupNorm of the features, then a per-pixel scale and shift computed from the
/// latents zq by two 1×1×1 convolutions, zq being resized (nearest) to the features' frames and size. With an odd
/// frame count above one, the first frame is resized on its own and the rest separately, as in the causal VAE.
/// Checkpoint names: <c>norm_layer.{weight,bias}</c>, <c>conv_y.conv.*</c>, <c>conv_b.conv.*</c>.
/// </summary>
public sealed class SpatialNorm3d : Module, IResnetNorm
{
    private readonly Parameter _gamma;
    private readonly Parameter _beta;

    /// <summary>diffusers builds this GroupNorm with a fixed eps of 1e-6, whatever the config's norm_eps.</summary>
    public const float Epsilon = 1e-6f;

    public SpatialNorm3d(string path, int channels, int latentChannels, int groups)
    {
        if (groups < 1 || channels % groups != 0)
            throw new WeightsException($"{path}: {channels} channels do not split into norm_num_groups = {groups} groups; use a config whose norm_num_groups divides every block_out_channels entry");
        Channels = channels;
        Groups = groups;
        _gamma = Weight("norm_layer.weight", channels);
        _beta = Weight("norm_layer.bias", channels);
        ConvY = Child("conv_y", new CausalConv3d(latentChannels, channels, 1));
        ConvB = Child("conv_b", new CausalConv3d(latentChannels, channels, 1));
    }

    public int Channels { get; }

    public int Groups { get; }

    public CausalConv3d ConvY { get; }

    public CausalConv3d ConvB { get; }

    /// <summary>
    /// act(GroupNorm(f) · y(zq) + b(zq)) for f [B, C, T, H, W] and zq [B, Cz, Tz, h, w] with H, W whole multiples of
    /// h, w, consuming <paramref name="f"/> (released once the output is written); zq is borrowed.
    /// </summary>
    public Tensor ForwardConsuming(Tensor f, Tensor zq, Activation activation)
    {
        int t = f.Dim(2), h = f.Dim(3), w = f.Dim(4);
        int zh = zq.Dim(3), zw = zq.Dim(4);
        if (h % zh != 0 || w % zw != 0)
            throw new InvalidOperationException($"spatial norm: features {f.ShapeString} are not a whole multiple of the latents {zq.ShapeString}");

        // Nearest resizing is replication and the 1×1×1 convolutions act per pixel, so they run on zq resized in
        // time only; the fused norm reads the spatial replication at the latents' size (no full-size scale/shift).
        Tensor scale, shift;
        using (var zt = ResizeFrames(zq, t))
        {
            scale = ConvY.ForwardConsuming(zt.Alias(), null);
            shift = ConvB.ForwardConsuming(zt.Alias(), null);
        }
        using (scale)
        using (shift)
        using (f)
            return f.SpatialGroupNorm(Groups, _gamma.Value, _beta.Value, scale, shift, Epsilon, activation);
    }

    /// <inheritdoc/>
    public Tensor Forward(Tensor x, Tensor? zq, Activation activation) =>
        ForwardConsuming(x.Alias(), zq ?? throw new ArgumentNullException(nameof(zq), "a spatial norm needs the latents"), activation);

    /// <inheritdoc/>
    Tensor IResnetNorm.ForwardConsuming(Tensor x, Tensor? zq, Activation activation) =>
        ForwardConsuming(x, zq ?? throw new ArgumentNullException(nameof(zq), "a spatial norm needs the latents"), activation);

    internal static Tensor ResizeFrames(Tensor zq, int frames)
    {
        int tz = zq.Dim(2);
        var source = new int[frames];
        if (frames > 1 && frames % 2 == 1)
        {
            if (tz < 2)
                throw new InvalidOperationException($"spatial norm: {frames} feature frames but only {tz} latent frame");
            source[0] = 0;
            for (int i = 1; i < frames; i++) source[i] = 1 + NearestIndex(i - 1, tz - 1, frames - 1);
        }
        else
        {
            for (int i = 0; i < frames; i++) source[i] = NearestIndex(i, tz, frames);
        }
        return Frames.Gather(zq, source);
    }

    /// <summary>Source index of output index i under F.interpolate(mode="nearest") (PyTorch's nearest_idx, float scale).</summary>
    internal static int NearestIndex(int i, int inSize, int outSize)
    {
        if (outSize == inSize) return i;
        if (outSize == 2 * inSize) return i >> 1;
        float scale = (float)inSize / outSize;
        return Math.Min((int)MathF.Floor(i * scale), inSize - 1);
    }
}
