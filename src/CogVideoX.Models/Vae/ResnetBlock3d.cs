using CogVideoX.Engine;
using CogVideoX.Models.Modules;

namespace CogVideoX.Models.Vae;

/// <summary>The carried state of one <see cref="ResnetBlock3d"/>: its two causal convolutions.</summary>
public sealed class ResnetBlockCache : IDisposable
{
    public CausalConvCache Conv1 { get; } = new();

    public CausalConvCache Conv2 { get; } = new();

    internal IEnumerable<CausalConvCache> All => [Conv1, Conv2];

    public void Dispose()
    {
        Conv1.Dispose();
        Conv2.Dispose();
    }
}

/// <summary>
/// diffusers' CogVideoXResnetBlock3D (no time embedding, no dropout at inference): norm1 → act → conv1 → norm2 → act →
/// conv2, plus the input (through a 1×1×1 <c>conv_shortcut</c> when the channel count changes). The encoder builds it
/// with plain GroupNorms (<see cref="WithGroupNorm"/>: the config's norm_eps, statistics over every frame of the frame
/// batch), the decoder with spatial norms conditioned on the latents (the constructor); nothing else differs.
/// Checkpoint names: <c>norm{1,2}.*</c> (<c>weight</c>, <c>bias</c> or <see cref="SpatialNorm3d"/>'s),
/// <c>conv{1,2}.conv.*</c>, <c>conv_shortcut.*</c>.
/// </summary>
public sealed class ResnetBlock3d : Module
{
    private readonly Parameter? _shortcutWeight;
    private readonly Parameter? _shortcutBias;

    /// <summary>The decoder's block: spatial norms conditioned on <paramref name="latentChannels"/> latent channels.</summary>
    public ResnetBlock3d(string path, int inChannels, int outChannels, int latentChannels, int groups, Activation activation)
        : this(inChannels, outChannels, activation, (name, channels) => new SpatialNorm3d($"{path}.{name}", channels, latentChannels, groups))
    {
    }

    /// <summary>The encoder's block: plain GroupNorms with <paramref name="eps"/>.</summary>
    public static ResnetBlock3d WithGroupNorm(string path, int inChannels, int outChannels, int groups, float eps, Activation activation) =>
        new(inChannels, outChannels, activation, (name, channels) => new GroupNorm3d($"{path}.{name}", channels, groups, eps));

    private ResnetBlock3d(int inChannels, int outChannels, Activation activation, Func<string, int, Module> norm)
    {
        InChannels = inChannels;
        OutChannels = outChannels;
        Activation = activation;
        Norm1 = (IResnetNorm)Child("norm1", norm("norm1", inChannels));
        Conv1 = Child("conv1", new CausalConv3d(inChannels, outChannels, 3));
        Norm2 = (IResnetNorm)Child("norm2", norm("norm2", outChannels));
        Conv2 = Child("conv2", new CausalConv3d(outChannels, outChannels, 3));
        if (inChannels != outChannels)
        {
            _shortcutWeight = Weight("conv_shortcut.weight", outChannels, inChannels, 1, 1, 1);
            _shortcutBias = Weight("conv_shortcut.bias", outChannels);
        }
    }

    public int InChannels { get; }

    public int OutChannels { get; }

    public Activation Activation { get; }

    public IResnetNorm Norm1 { get; }

    public CausalConv3d Conv1 { get; }

    public IResnetNorm Norm2 { get; }

    public CausalConv3d Conv2 { get; }

    public ResnetBlockCache CreateCache() => new();

    /// <summary>
    /// x [B, Cin, T, H, W] → [B, Cout, T, H, W], consuming <paramref name="x"/>; zq (the decoder's latents; null in the
    /// encoder) is borrowed. Besides x (kept for the residual) one tensor of the block's width lives at a time where
    /// the norms allow: norm1 writes it, the convolutions replace its frames in place a chunk at a time
    /// (<see cref="CausalConv3d.ForwardInPlace"/>, chunks sized by <paramref name="windowBytes"/>; unbounded: whole
    /// convolutions), a GroupNorm norm2 and the residual add write over it. The sums are diffusers' own, in its order.
    /// </summary>
    public Tensor ForwardConsuming(Tensor x, Tensor? zq, ResnetBlockCache cache, long windowBytes = long.MaxValue)
    {
        // With a shortcut convolution, compute it first so the wider input can go as soon as norm1 has read it.
        var residual = _shortcutWeight is null
            ? x.Alias()
            : x.Conv3d(_shortcutWeight.Value, _shortcutBias!.Value, new Conv3dParams(1, 1, 1, 0, 0, 0));
        using (residual)
        {
            Tensor h;
            using (x) h = Norm1.Forward(x, zq, Activation);
            h = Conv1.ForwardInPlace(h, cache.Conv1, Conv1.ChunkFrames(h, windowBytes));
            h = Norm2.ForwardConsuming(h, zq, Activation);
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
