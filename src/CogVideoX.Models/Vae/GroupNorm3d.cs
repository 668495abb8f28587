using CogVideoX.Engine;
using CogVideoX.Models.Modules;
using CogVideoX.Weights;

namespace CogVideoX.Models.Vae;

/// <summary>
/// The norm of a <see cref="ResnetBlock3d"/>, followed by its activation: a plain GroupNorm in the encoder
/// (<see cref="GroupNorm3d"/>), a spatial norm conditioned on the latents in the decoder (<see cref="SpatialNorm3d"/>).
/// </summary>
public interface IResnetNorm
{
    /// <summary>act(norm(x)) as a new tensor; x (and zq, for a spatial norm) borrowed.</summary>
    Tensor Forward(Tensor x, Tensor? zq, Activation activation);

    /// <summary>act(norm(x)), consuming x: its memory may hold the result, which is then x itself.</summary>
    Tensor ForwardConsuming(Tensor x, Tensor? zq, Activation activation);
}

/// <summary>
/// nn.GroupNorm over a [B, C, T, H, W] tensor as diffusers' encoder ResNet blocks use it: statistics over every frame
/// of the frame batch, per-channel affine. Checkpoint names: <c>weight</c>, <c>bias</c>.
/// </summary>
public sealed class GroupNorm3d : Module, IResnetNorm
{
    private readonly Parameter _weight;
    private readonly Parameter _bias;

    public GroupNorm3d(string path, int channels, int groups, float eps)
    {
        if (groups < 1 || channels % groups != 0)
            throw new WeightsException($"{path}: {channels} channels do not split into norm_num_groups = {groups} groups; use a config whose norm_num_groups divides every block_out_channels entry");
        Channels = channels;
        Groups = groups;
        Epsilon = eps;
        _weight = Weight("weight", channels);
        _bias = Weight("bias", channels);
    }

    public int Channels { get; }

    public int Groups { get; }

    public float Epsilon { get; }

    public Tensor Forward(Tensor x, Tensor? zq, Activation activation) =>
        x.GroupNorm(Groups, _weight.Value, _bias.Value, Epsilon, activation);

    /// <summary>In place: the statistics are read first, then each element before it is written (<see cref="Ops.GroupNormInto"/>).</summary>
    public Tensor ForwardConsuming(Tensor x, Tensor? zq, Activation activation)
    {
        if (!x.IsContiguous)
        {
            using (x) return Forward(x, zq, activation);
        }
        try
        {
            x.GroupNormInto(Groups, _weight.Value, _bias.Value, Epsilon, activation, x);
            return x;
        }
        catch
        {
            x.Dispose();
            throw;
        }
    }
}
