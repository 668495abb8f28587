using CogVideoX.Engine;

namespace CogVideoX.Models.Vae;

/// <summary>
/// Everything the encoder or the decoder carries from one frame batch to the next: the cache of each causal
/// convolution with a time kernel above one. The two differ only in the blocks between conv_in and conv_out
/// (<see cref="All"/>). Create one per video (per tile when tiling) and dispose it when the video is done.
/// </summary>
public abstract class FrameBatchCaches : IDisposable
{
    public CausalConvCache ConvIn { get; } = new();

    public CausalConvCache ConvOut { get; } = new();

    /// <summary>Checked between the blocks: one frame batch at full size takes seconds to minutes on a CPU.</summary>
    public CancellationToken Cancellation { get; set; }

    /// <summary>Every convolution's cache, in the order the convolutions run.</summary>
    public abstract IEnumerable<CausalConvCache> All { get; }

    /// <summary>Bytes held by the carried frames now.</summary>
    public long Bytes => All.Sum(c => c.Frames is { } f ? f.ElementCount * f.DType.SizeOf() : 0);

    /// <summary>Moves the carried frames out of a frame batch's scope so they outlive it.</summary>
    internal void KeepFrom(TensorScope scope)
    {
        foreach (var c in All) c.KeepFrom(scope);
    }

    public void Dispose()
    {
        foreach (var c in All) c.Dispose();
    }
}
