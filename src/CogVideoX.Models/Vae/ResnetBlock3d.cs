using CogVideoX.Engine;
using CogVideoX.Weights;

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
public sealed class ResnetBlock3d : IDisposable
{
    private readonly Tensor? _shortcutWeight;
    private readonly Tensor? _shortcutBias;

    public ResnetBlock3d(WeightScope weights, int inChannels, int outChannels, int latentChannels, int groups, Activation activation)
    {
        InChannels = inChannels;
        OutChannels = outChannels;
        Activation = activation;
        Norm1 = new SpatialNorm3d(weights.Scope("norm1"), inChannels, latentChannels, groups);
        Conv1 = new CausalConv3d(weights.Scope("conv1"), inChannels, outChannels, 3);
        Norm2 = new SpatialNorm3d(weights.Scope("norm2"), outChannels, latentChannels, groups);
        Conv2 = new CausalConv3d(weights.Scope("conv2"), outChannels, outChannels, 3);
        if (inChannels != outChannels)
        {
            var shortcut = weights.Scope("conv_shortcut");
            _shortcutWeight = shortcut.Get("weight", outChannels, inChannels, 1, 1, 1);
            _shortcutBias = shortcut.Get("bias", outChannels);
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

    /// <summary>x [B, Cin, T, H, W] → [B, Cout, T, H, W]. Takes ownership of <paramref name="x"/>; zq is borrowed.</summary>
    public Tensor Forward(Tensor x, Tensor zq, ResnetBlockCache cache)
    {
        // With a shortcut convolution, compute it first so the wider input can go as soon as norm1 has read it.
        var residual = _shortcutWeight is null
            ? x.Alias()
            : x.Conv3d(_shortcutWeight, _shortcutBias, new Conv3dParams(1, 1, 1, 0, 0, 0));
        using (residual)
        {
            var h = Norm1.Forward(x, zq, Activation);
            h = Conv1.Forward(h, cache.Conv1);
            h = Norm2.Forward(h, zq, Activation);
            h = Conv2.Forward(h, cache.Conv2);
            using (h) return h.Add(residual);
        }
    }

    public void Dispose()
    {
        Norm1.Dispose();
        Conv1.Dispose();
        Norm2.Dispose();
        Conv2.Dispose();
        _shortcutWeight?.Dispose();
        _shortcutBias?.Dispose();
    }
}
