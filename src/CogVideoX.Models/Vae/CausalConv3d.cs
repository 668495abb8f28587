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

    /// <summary>
    /// The same convolution as <see cref="ForwardConsuming"/>, computed <paramref name="chunkFrames"/> output frames at a
    /// time and written back into <paramref name="x"/> itself (returned; ownership passes through), which needs
    /// in_channels = out_channels. No time-padded copy of the input and no separate output exist: each chunk reads a
    /// small contiguous window of the padded sequence [past, x]; an output frame goes into x's frame of the same index
    /// once no later chunk reads that input frame (kernel − 1 frames later), and waits until then in a ring of kernel − 1
    /// frames: the carried past frames' own storage, each slot taken once its past frame has been read, or (the first
    /// batch, whose past is x's first frame repeated) frames of its own, each contiguous, into which a one-frame chunk
    /// is convolved directly. At the end the last input frames (the next batch's past) and the last outputs trade
    /// places. The working memory beyond x is the window (chunk + kernel − 1 frames) and one chunk of output (none for a
    /// one-frame chunk into its own ring); every output element is the same sum as before.
    /// Falls back to <see cref="ForwardConsuming"/> when the chunk covers the whole input or the channels differ.
    /// </summary>
    public Tensor ForwardInPlace(Tensor x, CausalConvCache? cache, int chunkFrames)
    {
        int frames = x.Dim(2), pad = TimePadding;
        chunkFrames = Math.Max(1, chunkFrames);
        if (pad == 0 || InChannels != OutChannels || chunkFrames >= frames || frames < pad || !x.IsContiguous)
            return ForwardConsuming(x, cache);
        int spatialPad = (KernelSize - 1) / 2;
        var p = new Conv3dParams(1, 1, 1, 0, spatialPad, spatialPad);
        var ring = new Tensor?[pad];
        try
        {
            var carried = cache?.Frames;
            // The carried frames serve as the ring when they match (a contiguous cache, or this method's frame-major tail).
            bool reuse = carried is not null && carried.DType == x.DType && carried.Shape.SequenceEqual(FrameShape(x, pad))
                && (carried.IsContiguous || Enumerable.Range(0, pad).All(k => FrameIsContiguous(carried, k)));
            using var past = carried is not null ? carried.Alias() : FirstFrameRepeated(x, pad);
            for (int k = 0; k < pad; k++) ring[k] = reuse ? carried!.Narrow(2, k, 1) : Tensor.Empty(x.Backend, x.DType, FrameShape(x, 1));
            int flushed = 0;  // outputs [0, flushed) are in x; [flushed, computed) wait in ring slot j % pad
            for (int start = 0; start < frames; start += chunkFrames)
            {
                int count = Math.Min(chunkFrames, frames - start), end = start + count;
                // Input frame j is read for the last time by output j + pad: frames up to end − 1 − pad are free once
                // this chunk's window is copied, and the outputs waiting for them go home, freeing their ring slots.
                int free = end - pad;
                Tensor output;
                using (var window = Tensor.Empty(x.Backend, x.DType, x.Dim(0), x.Dim(1), count + pad, x.Dim(3), x.Dim(4)))
                {
                    CopySequence(past, x, start, window);
                    for (; flushed < Math.Min(start, free); flushed++) CopyFrame(ring[flushed % pad]!, x, flushed);
                    var slot = ring[start % pad]!;
                    if (count == 1 && start >= free && slot.IsContiguous)
                    {
                        window.Conv3dInto(_weight.Value, _bias.Value, p, slot);
                        continue;
                    }
                    output = window.Conv3d(_weight.Value, _bias.Value, p);
                }
                using (output)
                {
                    int direct = Math.Max(0, free - start);
                    if (direct > 0)
                    {
                        using var source = output.Narrow(2, 0, direct);
                        using var target = x.Narrow(2, start, direct);
                        source.CopyTo(target);
                        flushed = start + direct;
                    }
                    for (int j = Math.Max(start, free); j < end; j++)
                    {
                        using var source = output.Narrow(2, j - start, 1);
                        source.CopyTo(ring[j % pad]!);
                    }
                }
            }
            // x's last pad frames are still the input: the next batch's past. Outputs [flushed, frames) wait in the ring.
            Tensor? tail = null;
            if (cache is { Final: false })
            {
                // Frame-major ([pad, N, C, H, W] seen as [N, C, pad, H, W]): each frame contiguous, so that the next
                // batch convolves its one-frame chunks straight into these slots (no separate output frame).
                using var frameMajor = Tensor.Empty(x.Backend, x.DType, pad, x.Dim(0), x.Dim(1), x.Dim(3), x.Dim(4));
                tail = frameMajor.Permute(1, 2, 0, 3, 4);
                using var last = x.Narrow(2, frames - pad, pad);
                last.CopyTo(tail);
            }
            for (; flushed < frames; flushed++) CopyFrame(ring[flushed % pad]!, x, flushed);
            cache?.Replace(tail);
            return x;
        }
        catch
        {
            x.Dispose();
            throw;
        }
        finally
        {
            // Views of the carried cache (its storage lives on until cache.Replace released it) or the ring's own frames.
            foreach (var slot in ring) slot?.Dispose();
        }
    }

    private static int[] FrameShape(Tensor x, int frames) => [x.Dim(0), x.Dim(1), frames, x.Dim(3), x.Dim(4)];

    private static bool FrameIsContiguous(Tensor t, int frame)
    {
        using var f = t.Narrow(2, frame, 1);
        return f.IsContiguous;
    }

    /// <summary>Copies a one-frame ring slot into frame <paramref name="frame"/> of x.</summary>
    private static void CopyFrame(Tensor slot, Tensor x, int frame)
    {
        using var d = x.Narrow(2, frame, 1);
        slot.CopyTo(d);
    }

    /// <summary>
    /// Output frames per chunk of <see cref="ForwardInPlace"/> for input x such that a chunk's window and output together
    /// stay within <paramref name="budgetBytes"/> (at least one frame; every frame when the budget is unbounded).
    /// </summary>
    public int ChunkFrames(Tensor x, long budgetBytes)
    {
        long frameBytes = (long)x.Dim(0) * x.Dim(1) * x.Dim(3) * x.Dim(4) * x.DType.SizeOf();
        if (budgetBytes == long.MaxValue || frameBytes == 0) return int.MaxValue;
        long frames = budgetBytes / frameBytes;
        return (int)Math.Clamp((frames - TimePadding) / 2, 1, int.MaxValue);
    }

    /// <summary>Copies frames [start, start + destination's frames) of the sequence [past, x] into destination.</summary>
    private static void CopySequence(Tensor past, Tensor x, int start, Tensor destination)
    {
        int count = destination.Dim(2), pastFrames = past.Dim(2);
        int fromPast = Math.Clamp(pastFrames - start, 0, count);
        if (fromPast > 0)
        {
            using var source = past.Narrow(2, start, fromPast);
            using var target = destination.Narrow(2, 0, fromPast);
            source.CopyTo(target);
        }
        if (count > fromPast)
        {
            using var source = x.Narrow(2, start + fromPast - pastFrames, count - fromPast);
            using var target = destination.Narrow(2, fromPast, count - fromPast);
            source.CopyTo(target);
        }
    }

    private static Tensor FirstFrameRepeated(Tensor x, int count)
    {
        using var first = x.Narrow(2, 0, 1);
        return first.BroadcastTo(x.Dim(0), x.Dim(1), count, x.Dim(3), x.Dim(4));
    }
}
