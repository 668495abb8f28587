using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Engine.Cuda;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Pipeline;

/// <summary>
/// The memory modes through the whole pipeline: the same video in every mode, what each mode keeps where, auto's
/// choice, the estimates, and a device out-of-memory error turned into advice.
/// </summary>
public class MemoryModeTests(ITestOutputHelper output)
{
    private static readonly GenerationRequest Small = TinyRequest.Panda(steps: 3, seed: 7);

    private static readonly ModelComponent[] Components = [ModelComponent.TextEncoder, ModelComponent.Transformer, ModelComponent.Vae];

    private static CogVideoXPipeline Open(string folder, IMemoryPolicy policy, IWeightStreaming? streaming = null, VaeTiling? tiling = null) =>
        new(ModelFolder.Open(folder), new PipelineOptions { MemoryPolicy = policy, WeightStreaming = streaming, VaeTiling = tiling });

    [Fact]
    public void EveryModeGivesTheSameVideoOnTheCpuWhereLowRunsAsBalanced()
    {
        using var full = Open(Fixtures.Path2b, MemoryPolicies.Full);
        var reference = full.Generate(Small);
        foreach (var policy in new[] { MemoryPolicies.Balanced, MemoryPolicies.Low, MemoryPolicies.Auto })
        {
            using var pipeline = Open(Fixtures.Path2b, policy);
            var result = pipeline.Generate(Small);
            Assert.Equal(reference.Latents, result.Latents);
            Assert.Equal(reference.Frames, result.Frames);
            Assert.Null(pipeline.Streaming);
            if (policy == MemoryPolicies.Low)
            {
                Assert.Equal("low", result.Resolved.MemoryPolicy);
                Assert.False(result.Resolved.VaeTiling); // no tiles where nothing streams: the CPU's memory is the host's
                Assert.Contains(result.Resolved.MemoryNotes, n => n.StartsWith("memory: low runs as balanced on cpu", StringComparison.Ordinal));
                Assert.All(Components, c => Assert.False(pipeline.IsLoaded(c)));
            }
            if (policy == MemoryPolicies.Auto)
            {
                Assert.Equal("full", result.Resolved.MemoryPolicy); // the tiny weights fit many times over
                Assert.Contains(result.Resolved.MemoryNotes, n => n.StartsWith("memory: full (auto:", StringComparison.Ordinal));
            }
        }
    }

    [Fact]
    public void StreamingModesGiveTheSameVideoAsFullAndStreamEveryTransformerBlockEveryStep()
    {
        // Three layers, so two slots hold fewer blocks than the model has. The same tiles in every mode (low implies
        // the model's default tiles), so the frames compare exactly.
        var folder = ThreeLayerModel.Folder;
        var tiles = VaeTiling.ForConfig(ModelFolder.Open(folder).Vae);
        using var full = Open(folder, MemoryPolicies.Full, tiling: tiles);
        var reference = full.Generate(Small);
        Assert.True(reference.Resolved.VaeTiling);

        var streaming = new RecordingWeightStreaming();
        using var low = Open(folder, MemoryPolicies.Low, streaming);
        var loadedAtStart = new Dictionary<string, ModelComponent[]>();
        var result = low.Generate(Small, new Inline(p =>
        {
            if (p.Step == 0) loadedAtStart[p.Stage] = Components.Where(low.IsLoaded).ToArray();
        }));
        Assert.True(result.Resolved.VaeTiling);
        Assert.Equal(reference.Latents, result.Latents);
        Assert.Equal(reference.Frames, result.Frames);
        Assert.Equal([ModelComponent.TextEncoder], loadedAtStart[PipelineStages.TextEncoder]);
        Assert.Equal([ModelComponent.Transformer], loadedAtStart[PipelineStages.Denoise]);
        Assert.Equal([ModelComponent.Vae], loadedAtStart[PipelineStages.VaeDecode]);
        Assert.All(Components, c => Assert.False(low.IsLoaded(c)));
        // Text encoder: one pass for both prompts (3 blocks × 2 arenas is F32 only here: 3 uploads); transformer: 3 per step.
        int uploads = streaming.Count("upload");
        Assert.Equal(ThreeLayerModel.Layers + Small.Steps * ThreeLayerModel.Layers, uploads);
        Assert.Equal(0, streaming.OpenCopyStreams);
        long hostBytes = low.HostBlockBytes;
        Assert.True(hostBytes > 0);

        // The next video reuses the host images (no new pinned memory) and streams again.
        int pinned = streaming.PinnedAllocations;
        var again = low.Generate(Small);
        Assert.Equal(reference.Frames, again.Frames);
        Assert.Equal(pinned, streaming.PinnedAllocations);
        Assert.Equal(2 * uploads, streaming.Count("upload"));
        Assert.Equal(hostBytes, low.HostBlockBytes);
        output.WriteLine($"low: {uploads} block uploads per video, {hostBytes} bytes of host images, {pinned} pinned buffers");
    }

    [Fact]
    public void BalancedStreamsTheTextEncoderAndUploadsTheTransformerOncePerVideo()
    {
        var folder = ThreeLayerModel.Folder;
        using var full = Open(folder, MemoryPolicies.Full);
        var reference = full.Generate(Small);
        var streaming = new RecordingWeightStreaming();
        using var balanced = Open(folder, MemoryPolicies.Balanced, streaming);
        var result = balanced.Generate(Small);
        Assert.Equal(reference.Latents, result.Latents);
        Assert.Equal(reference.Frames, result.Frames);
        Assert.False(result.Resolved.VaeTiling);
        // 3 text-encoder blocks, then each transformer block once (they stay in their own slots for the other steps).
        Assert.Equal(2 * ThreeLayerModel.Layers, streaming.Count("upload"));
        Assert.All(Components, c => Assert.False(balanced.IsLoaded(c)));
    }

    [Fact]
    public void WhenHostMemoryCannotBePageLockedTheBlocksStreamFromOrdinaryMemoryAndTheRunSaysSo()
    {
        var folder = ThreeLayerModel.Folder;
        using var full = Open(folder, MemoryPolicies.Full);
        var reference = full.Generate(Small);
        var streaming = new RecordingWeightStreaming { PinnedLimit = 2 };
        using var balanced = Open(folder, MemoryPolicies.Balanced, streaming);
        var result = balanced.Generate(Small);
        Assert.Equal(reference.Frames, result.Frames);
        Assert.Contains(result.Warnings, w => w.StartsWith("memory: the text encoder blocks", StringComparison.Ordinal) && w.Contains("could not all be page-locked"));
        Assert.Contains(result.Warnings, w => w.StartsWith("memory: the transformer blocks", StringComparison.Ordinal));
    }

    [Fact]
    public void FullKeepsEverythingOnTheDeviceAndStreamsNothing()
    {
        var streaming = new RecordingWeightStreaming();
        using var pipeline = new CogVideoXPipeline(ModelFolder.Open(ThreeLayerModel.Folder),
            new PipelineOptions { MemoryPolicy = MemoryPolicies.Full, WeightStreaming = streaming });
        pipeline.Generate(Small);
        Assert.All(Components, c => Assert.True(pipeline.IsLoaded(c)));
        Assert.Equal(0, pipeline.HostBlockBytes);
        Assert.Equal(0, streaming.Count("upload"));
    }

    [Fact]
    public void AnOutOfMemoryErrorBecomesAMessageNamingTheModeThatFits()
    {
        // A real CudaOutOfMemoryException from the caching allocator over a device of 1 GiB, thrown inside the run.
        var oom = OutOfMemory(deviceBytes: 1L << 30, request: 2L << 30);
        using var pipeline = Open(Fixtures.Path2b, MemoryPolicies.Full);
        var e = Assert.Throws<CogVideoXException>(() => pipeline.Generate(Small, observer: new Throwing("prompt_embeds", oom)));
        output.WriteLine(e.Message);
        Assert.StartsWith("out of GPU memory on cpu in memory mode full while encoding the prompt", e.Message);
        Assert.Contains("an allocation of 2.00 GiB failed", e.Message);
        Assert.Contains("full ≈", e.Message);
        Assert.Contains("low ≈", e.Message);
        Assert.Contains("use --memory balanced", e.Message);
        Assert.Same(oom, e.InnerException);
        Assert.All(Components, c => Assert.False(pipeline.IsLoaded(c))); // everything given back
        Assert.Equal(Small.Frames, pipeline.Generate(Small).FrameCount); // and the pipeline still works

        // When not even low fits, the message says so and what to change instead.
        var tiny = OutOfMemory(deviceBytes: 64L << 20, request: 128L << 20);
        using var low = Open(Fixtures.Path2b, MemoryPolicies.Low);
        e = Assert.Throws<CogVideoXException>(() => low.Generate(Small, observer: new Throwing("vae_input", tiny)));
        output.WriteLine(e.Message);
        Assert.Contains("in memory mode low while decoding the latents", e.Message);
        Assert.Contains("even --memory low needs ≈", e.Message);
        Assert.Contains("--frames, --height, --width", e.Message);
    }

    [Fact]
    public void ImageAndVideoToVideoCountTheEncoderStage()
    {
        // The 5b-I2V configs, BF16 (the encoder in F16), 49 frames of 480×720: text-to-video, image-to-video (one frame
        // encoded), video-to-video (49 frames encoded).
        var model = ModelFolder.Open(Fixtures.GoldenFile("real_configs", "CogVideoX-5b-I2V"));
        var t2v = MemoryEstimator.Measure(model, DType.BF16, 49, 480, 720, classifierFreeGuidance: true, textLength: 226);
        var i2v = MemoryEstimator.Measure(model, DType.BF16, 49, 480, 720, true, 226, encodedFrames: 1);
        var v2v = MemoryEstimator.Measure(model, DType.BF16, 49, 480, 720, true, 226, encodedFrames: 49);
        Assert.Equal(0, t2v.VaeEncoder + t2v.EncodeWorking);
        Assert.True(v2v.EncodeWorking > i2v.EncodeWorking && i2v.EncodeWorking > 0);
        Assert.True(v2v.EncodeWorkingTiled < v2v.EncodeWorking);
        foreach (var (streams, tiling) in new[] { (true, false), (false, false), (true, true) })
        {
            var (_, plain) = MemoryEstimator.Choose(t2v, 141L << 30, streams, tiling);
            var (_, video) = MemoryEstimator.Choose(v2v, 141L << 30, streams, tiling);
            var (_, image) = MemoryEstimator.Choose(i2v, 141L << 30, streams, tiling);
            for (int i = 0; i < plain.Count; i++)
            {
                output.WriteLine($"streams {streams}, tiling {tiling}: t2v {plain[i].Mode} {plain[i]}; i2v {image[i]}; v2v {video[i]}");
                Assert.Equal(0, plain[i].EncodeStage);
                Assert.DoesNotContain(", encode ", plain[i].ToString());
                Assert.Contains(", encode ", video[i].ToString());
                Assert.True(video[i].EncodeStage > image[i].EncodeStage && image[i].EncodeStage > 0);
                Assert.True(video[i].Peak >= Math.Max(plain[i].Peak, video[i].EncodeStage));
            }
        }
        // auto: where the encode is a mode's largest stage, a device that fits text-to-video in that mode does not fit
        // video-to-video, and auto moves on. At the 1.0 sizes the denoise stage dominates every mode (above), so the
        // encode is made the largest here: a long video encoded whole frames (16 GiB of working memory, 1 GiB tiled).
        var longVideo = v2v with { EncodeWorking = 16L << 30, EncodeWorkingTiled = 1L << 30 };
        var (_, t2vModes) = MemoryEstimator.Choose(t2v, 141L << 30, streams: true, tiling: false);
        var (_, longModes) = MemoryEstimator.Choose(longVideo, 141L << 30, streams: true, tiling: false);
        foreach (var e in longModes) output.WriteLine($"long video-to-video {e.Mode}: {e}");
        long usable = (long)(t2vModes[1].Peak / MemoryEstimator.UsableFraction) + 1;  // balanced fits text-to-video
        Assert.Same(MemoryPolicies.Balanced, MemoryEstimator.Choose(t2v, usable, true, false).Choice);
        Assert.True(longModes[1].EncodeStage > longModes[1].Peak - 1 && longModes[1].Peak > usable * MemoryEstimator.UsableFraction);
        // low tiles the VAE when it streams: the tiled encode fits.
        Assert.Same(MemoryPolicies.Low, MemoryEstimator.Choose(longVideo, usable, true, false).Choice);
        Assert.Equal((1L << 30) + v2v.VaeEncoder + MemoryEstimator.Margin, longModes[2].EncodeStage);
    }

    [Fact]
    public void TheMemoryChoiceCountsTheFramesTheEncoderTakes()
    {
        var picture = new InputMedia("in.png", "00", [new byte[3 * 16 * 24]], 16, 24);
        Assert.Equal(0, ComponentManager.EncodedFrames(new GenerationRequest { Frames = 17 }));
        Assert.Equal(1, ComponentManager.EncodedFrames(new GenerationRequest { Frames = 17, Image = picture }));
        Assert.Equal(17, ComponentManager.EncodedFrames(new GenerationRequest { Frames = 17, Video = picture }));
    }

    [Fact]
    public void EstimatesForTheFullSize2bPutEachModeUnderItsTarget()
    {
        // The published CogVideoX-2b configs, F16, 49 frames of 480×720, CFG batch 2, 226 text tokens.
        var model = ModelFolder.Open(Fixtures.GoldenFile("real_configs", "CogVideoX-2b"));
        var sizes = MemoryEstimator.Measure(model, DType.F16, 49, 480, 720, classifierFreeGuidance: true, textLength: 226);
        double Gib(long b) => b / (double)(1L << 30);
        output.WriteLine($"T5 {Gib(sizes.TextEncoder):F2} GiB ({sizes.TextEncoderBlocks} blocks of {Gib(sizes.TextEncoderBlock) * 1024:F1} MiB), " +
            $"transformer {Gib(sizes.Transformer):F2} GiB ({sizes.TransformerBlocks} × {Gib(sizes.TransformerBlock) * 1024:F1} MiB), " +
            $"VAE decoder {Gib(sizes.VaeDecoder) * 1024:F0} MiB; working: T5 {Gib(sizes.TextEncoderWorking) * 1024:F0} MiB, " +
            $"denoise {Gib(sizes.DenoiseWorking):F2} GiB, decode {Gib(sizes.DecodeWorking):F2} GiB (tiled {Gib(sizes.DecodeWorkingTiled):F2} GiB)");
        // T5-XXL encoder 4.76 B parameters in F16, wo kept in the checkpoint's half type (widened per layer): 8.87 GiB.
        Assert.InRange(Gib(sizes.TextEncoder), 8.8, 8.95);
        // The 2b transformer: 1.69 B parameters → 3.15 GiB.
        Assert.InRange(Gib(sizes.Transformer), 3.1, 3.2);
        var (_, estimates) = MemoryEstimator.Choose(sizes, 80L << 30, streams: true, tiling: false);
        foreach (var e in estimates) output.WriteLine($"{e.Mode}: {e}");
        var byMode = estimates.ToDictionary(e => e.Mode);
        Assert.True(Gib(byMode["full"].Peak) > 16);
        Assert.True(Gib(byMode["balanced"].Peak) <= 10, "balanced target: ≤ 10 GiB");
        Assert.True(Gib(byMode["low"].Peak) <= 4, "low target: ≤ 4 GiB");

        // auto: the fastest mode that fits with 10 % headroom.
        Assert.Same(MemoryPolicies.Full, MemoryEstimator.Choose(sizes, 80L << 30, true, false).Choice);
        Assert.Same(MemoryPolicies.Balanced, MemoryEstimator.Choose(sizes, 12L << 30, true, false).Choice);
        Assert.Same(MemoryPolicies.Low, MemoryEstimator.Choose(sizes, 6L << 30, true, false).Choice);
        Assert.Null(MemoryEstimator.Choose(sizes, 2L << 30, true, false).Choice);
        // Without streaming, balanced and low load the text encoder whole: 8.87 GiB at once.
        Assert.True(Gib(MemoryEstimator.Choose(sizes, 80L << 30, streams: false, tiling: false).Estimates[1].Peak) > 8.8);
    }

    [Fact]
    public void ModeNamesParseAndUnknownOnesAreRefusedWithTheChoices()
    {
        Assert.Same(MemoryPolicies.Low, MemoryPolicies.Parse(" LOW "));
        Assert.True(MemoryPolicies.IsAuto(MemoryPolicies.Parse("auto")));
        var e = Assert.Throws<CogVideoXException>(() => MemoryPolicies.Parse("tiny"));
        Assert.Equal(2, e.ExitCode);
        foreach (var name in MemoryPolicies.Names) Assert.Contains(name, e.Message);
    }

    private static CudaOutOfMemoryException OutOfMemory(long deviceBytes, long request)
    {
        using var allocator = new CachingAllocator(new LimitedDevice(deviceBytes));
        return Assert.Throws<CudaOutOfMemoryException>(() => allocator.Allocate(request));
    }

    /// <summary>A device with a fixed amount of memory, for the caching allocator.</summary>
    private sealed class LimitedDevice(long capacity) : IDeviceMemory
    {
        private long _used;
        private ulong _next = 0x1000;

        public bool TryAllocate(long bytes, out ulong pointer)
        {
            pointer = 0;
            if (_used + bytes > capacity) return false;
            _used += bytes;
            pointer = _next;
            _next += (ulong)bytes;
            return true;
        }

        public void Free(ulong pointer)
        {
        }

        public void Synchronize()
        {
        }

        public (long Free, long Total) Info() => (capacity - _used, capacity);
    }

    private sealed class Throwing(string name, Exception error) : IPipelineObserver
    {
        public void Tensor(string tensorName, Tensor value)
        {
            if (tensorName == name) throw error;
        }
    }

    private sealed class Inline(Action<PipelineProgress> report) : IProgress<PipelineProgress>
    {
        public void Report(PipelineProgress value) => report(value);
    }
}
