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
/// diffusers' CogVideoXResnetBlock3D as the decoder builds it (spatial norms conditioned on the latents, no time
/// embedding, no dropout at inference): norm1 → act → conv1 → norm2 → act → conv2, plus the input (through a
/// 1×1×1 <c>conv_shortcut</c> when the channel count changes).
/// </summary>
public sealed class ResnetBlock3d : Module
{
    private readonly Parameter? _shortcutWeight;
    private readonly Parameter? _shortcutBias;

    public ResnetBlock3d(string path, int inChannels, int outChannels, int latentChannels, int groups, Activation activation)
    {
        InChannels = inChannels;
        OutChannels = outChannels;
        Activation = activation;
        Norm1 = Child("norm1", new SpatialNorm3d($"{path}.norm1", inChannels, latentChannels, groups));
        Conv1 = Child("conv1", new CausalConv3d(inChannels, outChannels, 3));
        Norm2 = Child("norm2", new SpatialNorm3d($"{path}.norm2", outChannels, latentChannels, groups));
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

    public SpatialNorm3d Norm1 { get; }

    public CausalConv3d Conv1 { get; }

    public SpatialNorm3d Norm2 { get; }

    public CausalConv3d Conv2 { get; }

    public ResnetBlockCache CreateCache() => new();

    /// <summary>x [B, Cin, T, H, W] → [B, Cout, T, H, W], consuming <paramref name="x"/>; zq is borrowed.</summary>
    public Tensor ForwardConsuming(Tensor x, Tensor zq, ResnetBlockCache cache)
    {
        // With a shortcut convolution, compute it first so the wider input can go as soon as norm1 has read it.
        var residual = _shortcutWeight is null
            ? x.Alias()
            : x.Conv3d(_shortcutWeight.Value, _shortcutBias!.Value, new Conv3dParams(1, 1, 1, 0, 0, 0));
        using (residual)
        {
            var h = Norm1.ForwardConsuming(x, zq, Activation);
            h = Conv1.ForwardConsuming(h, cache.Conv1);
            h = Norm2.ForwardConsuming(h, zq, Activation);
            h = Conv2.ForwardConsuming(h, cache.Conv2);
            using (h) return h.Add(residual);
        }
    }
}
