using CogVideoX.Engine;
using CogVideoX.Models.Blocks;
using CogVideoX.Models.Modules;
using CogVideoX.Models.Text;
using CogVideoX.Models.Transformer;
using CogVideoX.Weights;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace CogVideoX.Tests.Models;

/// <summary>
/// Blocks streamed from host images through device slots (the low and balanced memory modes), on the CPU with a
/// recording copy queue: the schedule a device would run (order, overlap, events) and the results (bit for bit those
/// of the resident model, since the arithmetic is the same).
/// </summary>
public class BlockStreamingTests(ITestOutputHelper output)
{
    private static string TransformerFolder => Path.Combine(ThreeLayerModel.Folder, "transformer");

    private static string TextEncoderFolder => Path.Combine(ThreeLayerModel.Folder, "text_encoder");

    private static (Tensor Latents, Tensor Text) Inputs(int seed)
    {
        var random = new Random(seed);
        float[] Values(int n) => Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        var latents = Tensor.FromArray(Values(2 * 3 * 4 * 4 * 6), [2, 3, 4, 4, 6]);
        var text = Tensor.FromArray(Values(2 * 226 * 64), [2, 226, 64]);
        return (latents, text);
    }

    private static Func<Storage, int> BlockOf<TBlock>(HostBlocks<TBlock> host) where TBlock : Module
    {
        var map = new Dictionary<Storage, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < host.Count; i++)
            for (int a = 0; a < host.Layout.Arenas.Count; a++)
                map[host.Arena(i, a).Storage] = i;
        return s => map[s];
    }

    [Fact]
    public void TheTransformerStreamsEveryBlockOncePerStepInOrderWithTheNextPrefetchedDuringTheCurrent()
    {
        const int steps = 4;
        var streaming = new RecordingWeightStreaming();
        using var resident = CogVideoXTransformer.Load(TransformerFolder, CpuBackend.Instance, DType.F32);
        using var host = CogVideoXTransformer.LoadHostBlocks(TransformerFolder, DType.F32, streaming);
        var source = new StreamedBlocks<TransformerBlock>(host, CpuBackend.Instance, streaming.CreateCopyStream(), slots: 2);
        using var streamed = CogVideoXTransformer.Load(TransformerFolder, CpuBackend.Instance, DType.F32, new LoggingBlockSource<TransformerBlock>(source, streaming.Log));

        var (latents, text) = Inputs(1);
        using (latents)
        using (text)
        {
            for (int step = 0; step < steps; step++)
            {
                float[] t = [999 - 250 * step];
                using var expected = resident.Forward(latents, text, t);
                using var actual = streamed.Forward(latents, text, t);
                Assert.Equal(expected.ToFloatArray(), actual.ToFloatArray()); // same arithmetic, same bits
            }
        }

        var log = streaming.Log;
        var uploads = StreamingSchedule.Uploads(log, BlockOf(host));
        // Every block exactly once per step, in block order.
        Assert.Equal(Enumerable.Range(0, steps).SelectMany(_ => Enumerable.Range(0, ThreeLayerModel.Layers)), uploads.Select(u => u.Block));
        Assert.Equal(steps * ThreeLayerModel.Layers, source.Uploads);
        // Two device slots, used alternately (across the end of a step too).
        Assert.Equal(2, uploads.Select(u => u.Slot).Distinct(ReferenceEqualityComparer.Instance).Count());
        Assert.All(uploads.Zip(uploads.Skip(1)), p => Assert.NotSame(p.First.Slot, p.Second.Slot));
        // The copy of block i + 1 is queued before block i is released, i.e. while its compute may still run.
        for (int p = 0; p < log.Count; p++)
        {
            if (log[p].Kind != "release" || log[p].Block + 1 >= ThreeLayerModel.Layers) continue;
            int acquire = LastIndex(log, p, o => o.Kind == "acquire");
            int next = log[p].Block + 1;
            Assert.Contains(Enumerable.Range(0, p), i => log[i].Kind == "upload" && BlockOf(host)(log[i].Source!) == next
                && i > LastIndex(log, acquire, o => o.Kind == "begin-pass"));
        }
        // copy → compute and compute → reuse of a slot, as a device would run the two queues.
        StreamingSchedule.Check(log, BlockOf(host));
        output.WriteLine($"{steps} steps × {ThreeLayerModel.Layers} blocks: {uploads.Count} uploads, {log.Count(o => o.Kind == "compute-waits")} compute waits, " +
            $"{log.Count(o => o.Kind == "copies-wait")} copy waits; slots hold {host.Layout.Bytes} bytes each");
    }

    [Fact]
    public void WithASlotPerBlockEachBlockIsCopiedOnceAndStays()
    {
        var streaming = new RecordingWeightStreaming();
        using var resident = CogVideoXTransformer.Load(TransformerFolder, CpuBackend.Instance, DType.F32);
        using var host = CogVideoXTransformer.LoadHostBlocks(TransformerFolder, DType.F32, streaming);
        var source = new StreamedBlocks<TransformerBlock>(host, CpuBackend.Instance, streaming.CreateCopyStream(), slots: host.Count);
        using var streamed = CogVideoXTransformer.Load(TransformerFolder, CpuBackend.Instance, DType.F32, new LoggingBlockSource<TransformerBlock>(source, streaming.Log));
        var (latents, text) = Inputs(2);
        using (latents)
        using (text)
        {
            for (int step = 0; step < 3; step++)
            {
                using var expected = resident.Forward(latents, text, [500f]);
                using var actual = streamed.Forward(latents, text, [500f]);
                Assert.Equal(expected.ToFloatArray(), actual.ToFloatArray());
            }
        }
        Assert.Equal([0, 1, 2], StreamingSchedule.Uploads(streaming.Log, BlockOf(host)).Select(u => u.Block));
        StreamingSchedule.Check(streaming.Log, BlockOf(host));
        // One slot per block on the device: as many bytes as the resident blocks (plus alignment padding).
        long residentBlocks = ((ResidentBlocks<TransformerBlock>)resident.Blocks).Blocks.Sum(b => b.BoundBytes);
        Assert.Equal(ThreeLayerModel.Layers * host.Layout.Bytes, source.DeviceBytes);
        Assert.InRange(source.DeviceBytes, residentBlocks, residentBlocks + ThreeLayerModel.Layers * 64L * BlockLayout.AlignmentBytes);
    }

    [Fact]
    public void TheTextEncoderStreamsItsHalfAndFloatArenasAndEncodesBothPromptsInOnePass()
    {
        // F16: the blocks hold F16 projections and float32 wo / norm copies, so each image has two arenas.
        var streaming = new RecordingWeightStreaming();
        using var resident = T5Encoder.Load(TextEncoderFolder, CpuBackend.Instance, DType.F16);
        using var host = T5Encoder.LoadHostBlocks(TextEncoderFolder, DType.F16, streaming);
        Assert.Equal([DType.F16, DType.F32], host.Layout.Arenas.Select(a => a.DType));
        var source = new StreamedBlocks<T5Block>(host, CpuBackend.Instance, streaming.CreateCopyStream(), slots: 2);
        using var streamed = T5Encoder.Load(TextEncoderFolder, CpuBackend.Instance, DType.F16, new LoggingBlockSource<T5Block>(source, streaming.Log));

        var tokenizer = T5Tokenizer.Load(Path.Combine(ThreeLayerModel.Folder, "tokenizer"));
        var prompt = tokenizer.Tokenize("A panda plays a guitar in a bamboo forest.", 226);
        var negative = tokenizer.Tokenize("", 226);
        var expected = new[] { resident.Encode(prompt), resident.Encode(negative) };
        var actual = streamed.Encode([prompt, negative]);
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(expected[i].ToFloatArray(), actual[i].ToFloatArray());
            expected[i].Dispose();
            actual[i].Dispose();
        }
        // One pass through the blocks for both prompts: each block's two arenas copied once.
        var uploads = StreamingSchedule.Uploads(streaming.Log, BlockOf(host));
        Assert.Equal([0, 0, 1, 1, 2, 2], uploads.Select(u => u.Block));
        StreamingSchedule.Check(streaming.Log, BlockOf(host));
    }

    [Fact]
    public void HostImagesArePinnedAndAlignedAndSlotsAreReleasedAfterTheQueuesDrain()
    {
        var streaming = new RecordingWeightStreaming();
        using var host = T5Encoder.LoadHostBlocks(TextEncoderFolder, DType.F16, streaming);
        Assert.True(host.IsPinned);
        Assert.Equal(ThreeLayerModel.Layers * host.Layout.Arenas.Count, streaming.PinnedAllocations);
        foreach (var w in host.Layout.Weights)
            Assert.Equal(0, w.Offset * w.DType.SizeOf() % BlockLayout.AlignmentBytes);
        var source = new StreamedBlocks<T5Block>(host, CpuBackend.Instance, streaming.CreateCopyStream(), slots: 2);
        var slotWeights = source.Acquire(0).Tensors;
        source.Release(0);
        Assert.Equal(1, streaming.OpenCopyStreams);
        source.Dispose();
        Assert.Equal(0, streaming.OpenCopyStreams);
        Assert.Equal("sync", streaming.Log.Last().Kind); // queued copies drained before the slots were freed
        Assert.All(slotWeights, w => Assert.True(w.IsDisposed));
        // The images outlive the slots.
        Assert.All(Enumerable.Range(0, host.Count), i => Assert.False(host.Arena(i, 0).IsDisposed));
    }

    [Fact]
    public void BlocksOfDifferentStructureAreRefused()
    {
        using var a = CogVideoXTransformer.LoadHostBlocks(TransformerFolder, DType.F32, null);
        var layout = a.Layout;
        var weights = layout.Weights.Select(w => (w.Shape, w.DType)).ToList();
        var e = Assert.Throws<InvalidOperationException>(() => layout.Check([.. weights, ([3], DType.F32)], "block 7"));
        Assert.Contains("same structure", e.Message);
    }

    [Fact]
    public void TheScheduleCheckCatchesAnUploadThatDoesNotWaitForTheCompute()
    {
        // A correct log, then the same with the copy queue's wait removed: the checker must refuse the second.
        var slot = CpuBackend.Instance.Allocate(DType.F32, 4);
        var other = CpuBackend.Instance.Allocate(DType.F32, 4);
        var b0 = CpuBackend.Instance.Allocate(DType.F32, 4);
        var b1 = CpuBackend.Instance.Allocate(DType.F32, 4);
        var b2 = CpuBackend.Instance.Allocate(DType.F32, 4);
        var blocks = new Dictionary<Storage, int>(ReferenceEqualityComparer.Instance) { [b0] = 0, [b1] = 1, [b2] = 2 };
        List<StreamOp> Log(bool wait) =>
        [
            new("copies-wait", 2), new("upload", Source: b0, Target: slot), new("record-copies", 1),
            new("compute-waits", 1), new("copies-wait", 4), new("upload", Source: b1, Target: other), new("record-copies", 3),
            new("acquire", Target: slot, Block: 0), new("release", Block: 0), new("record-compute", 2),
            new("compute-waits", 3), .. wait ? new StreamOp[] { new("copies-wait", 2) } : [], new("upload", Source: b2, Target: slot), new("record-copies", 1),
            new("acquire", Target: other, Block: 1), new("release", Block: 1), new("record-compute", 4),
        ];
        StreamingSchedule.Check(Log(wait: true), s => blocks[s]);
        var e = Assert.ThrowsAny<XunitException>(() => StreamingSchedule.Check(Log(wait: false), s => blocks[s]));
        Assert.Contains("did not wait for that block's compute", e.Message);

        // And a compute that does not wait for its upload.
        List<StreamOp> noComputeWait =
        [
            new("upload", Source: b0, Target: slot), new("record-copies", 1),
            new("acquire", Target: slot, Block: 0), new("release", Block: 0),
        ];
        e = Assert.ThrowsAny<XunitException>(() => StreamingSchedule.Check(noComputeWait, s => blocks[s]));
        Assert.Contains("without waiting for its upload", e.Message);
    }

    private static int LastIndex(List<StreamOp> log, int before, Func<StreamOp, bool> match)
    {
        for (int i = before - 1; i >= 0; i--)
            if (match(log[i])) return i;
        return -1;
    }
}
