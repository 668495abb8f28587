using CogVideoX.Engine;
using CogVideoX.Models.Modules;
using CogVideoX.Weights;

namespace CogVideoX.Models.Vae;

/// <summary>
/// diffusers' CogVideoXResnetBlock3D as the encoder builds it (plain GroupNorms with the config's norm_eps, no time
/// embedding, no dropout at inference): norm1 → act → conv1 → norm2 → act → conv2, plus the input (through a 1×1×1
/// <c>conv_shortcut</c> when the channel count changes). The norms' statistics span every frame of the frame batch,
/// as nn.GroupNorm on a 5D tensor does. Checkpoint names: <c>norm{1,2}.{weight,bias}</c>, <c>conv{1,2}.conv.*</c>,
/// <c>conv_shortcut.*</c>.
/// </summary>
public sealed class EncoderResnetBlock3d : Module
{
    private readonly Parameter _norm1Weight;
    private readonly Parameter _norm1Bias;
    private readonly Parameter _norm2Weight;
    private readonly Parameter _norm2Bias;
    private readonly Parameter? _shortcutWeight;
    private readonly Parameter? _shortcutBias;

    public EncoderResnetBlock3d(string path, int inChannels, int outChannels, int groups, float eps, Activation activation)
    {
        foreach (var channels in new[] { inChannels, outChannels })
            if (groups < 1 || channels % groups != 0)
                throw new WeightsException($"{path}: {channels} channels do not split into norm_num_groups = {groups} groups; use a config whose norm_num_groups divides every block_out_channels entry");
        InChannels = inChannels;
        OutChannels = outChannels;
        Groups = groups;
        Epsilon = eps;
        Activation = activation;
        _norm1Weight = Weight("norm1.weight", inChannels);
        _norm1Bias = Weight("norm1.bias", inChannels);
        Conv1 = Child("conv1", new CausalConv3d(inChannels, outChannels, 3));
        _norm2Weight = Weight("norm2.weight", outChannels);
        _norm2Bias = Weight("norm2.bias", outChannels);
        Conv2 = Child("conv2", new CausalConv3d(outChannels, outChannels, 3));
        if (inChannels != outChannels)
        {
            _shortcutWeight = Weight("conv_shortcut.weight", outChannels, inChannels, 1, 1, 1);
            _shortcutBias = Weight("conv_shortcut.bias", outChannels);
        }
    }

    public int InChannels { get; }

    public int OutChannels { get; }

    public int Groups { get; }

    public float Epsilon { get; }

    public Activation Activation { get; }

    public CausalConv3d Conv1 { get; }

    public CausalConv3d Conv2 { get; }

    public ResnetBlockCache CreateCache() => new();

    /// <summary>
    /// x [B, Cin, T, H, W] → [B, Cout, T, H, W], consuming <paramref name="x"/>. Besides x (kept for the residual) one
    /// tensor of the block's width lives at a time: norm1 writes it, the convolutions replace its frames in place a chunk
    /// at a time (<see cref="CausalConv3d.ForwardInPlace"/>, chunks sized by <paramref name="windowBytes"/>), norm2 and the
    /// residual add write over it. The sums are diffusers' own, in its order.
    /// </summary>
    public Tensor ForwardConsuming(Tensor x, ResnetBlockCache cache, long windowBytes = long.MaxValue)
    {
        // With a shortcut convolution, compute it first so the wider input can go as soon as norm1 has read it.
        var residual = _shortcutWeight is null
            ? x.Alias()
            : x.Conv3d(_shortcutWeight.Value, _shortcutBias!.Value, new Conv3dParams(1, 1, 1, 0, 0, 0));
        using (residual)
        {
            Tensor h;
            using (x) h = x.GroupNorm(Groups, _norm1Weight.Value, _norm1Bias.Value, Epsilon, Activation);
            h = Conv1.ForwardInPlace(h, cache.Conv1, Conv1.ChunkFrames(h, windowBytes));
            try
            {
                h.GroupNormInto(Groups, _norm2Weight.Value, _norm2Bias.Value, Epsilon, Activation, h);
            }
            catch
            {
                h.Dispose();
                throw;
            }
            h = Conv2.ForwardInPlace(h, cache.Conv2, Conv2.ChunkFrames(h, windowBytes));
            try
            {
                h.AddInto(residual, h);
                return h;
            }
            catch
            {
                h.Dispose();
                throw;
            }
        }
    }
}
