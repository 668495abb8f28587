using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Models.Blocks;
using CogVideoX.Models.Modules;
using CogVideoX.Models.Transformer;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Pipeline;

/// <summary>
/// FP8 linears as a memory saving: under --linear fp8 with no exact step the transformer blocks hold their projections'
/// FP8 codes and scales only (no exact copy on the device, in host images half the bytes to stream), the videos are
/// those of FP8 copies made beside the exact weights (the CPU emulation is bit-exact), a pipeline that keeps its models
/// switches between exact and FP8-only weights as its videos ask, and the memory estimate counts the smaller weights.
/// </summary>
public class Fp8MemoryTests(ITestOutputHelper output)
{
    private static readonly GenerationRequest Small = TinyRequest.Panda(steps: 3, seed: 7);

    private static readonly string[] ProjectionNames = ["attn1.to_q.weight", "attn1.to_out.0.weight", "ff.net.0.proj.weight", "ff.net.2.weight"];

    private static bool IsProjection(Parameter p) => ProjectionNames.Any(n => p.Name.StartsWith(n, StringComparison.Ordinal));

    /// <summary>Every block's projections are codes (F8_E4M3) and scales (F32) only; no exact projection weight is bound.</summary>
    private static void AssertFp8Only(TransformerBlock block)
    {
        Assert.Equal(ProjectionWeights.Fp8, block.Projections);
        var projections = block.Parameters.Where(IsProjection).ToList();
        Assert.Equal(8, projections.Count); // four projections, codes and scales each
        Assert.All(projections, p => Assert.True(p.IsFp8, p.Path));
        Assert.All(projections, p => Assert.Equal(p.Name.EndsWith(":f8_codes", StringComparison.Ordinal) ? DType.F8E4M3 : DType.F32, p.Value.DType));
        Assert.DoesNotContain(block.Parameters, p => p.IsBound && p.Value.Rank == 2 && p.Value.DType.IsFloat() && !p.IsFp8 && IsProjection(p));
        Assert.Equal(0, block.Fp8Bytes);
    }

    [Theory]
    [InlineData("pipeline_2b_style", "panda_s42", DType.F32)]
    [InlineData("pipeline_2b_style", "panda_s42", DType.BF16)]
    [InlineData("pipeline_5b_style", "whale_dpm_frames13", DType.F32)]
    public void Fp8OnlyProjectionsHoldNoExactCopyAndGiveTheOutputOfFp8CopiesBesideExactWeights(string style, string run, DType dtype)
    {
        var folder = Fixtures.GoldenFile(style, "transformer");
        using var exact = CogVideoXTransformer.Load(folder, CpuBackend.Instance, dtype);
        using var fp8 = CogVideoXTransformer.Load(folder, CpuBackend.Instance, dtype, projections: ProjectionWeights.Fp8);
        Assert.Equal(ProjectionWeights.Exact, exact.Projections);
        Assert.Equal(ProjectionWeights.Fp8, fp8.Projections);
        var config = exact.Config;
        var exactBlocks = ((ResidentBlocks<TransformerBlock>)exact.Blocks).Blocks;
        var fp8Blocks = ((ResidentBlocks<TransformerBlock>)fp8.Blocks).Blocks;
        for (int i = 0; i < config.NumLayers; i++)
        {
            AssertFp8Only(fp8Blocks[i]);
            // The codes and scales are those the exact weights quantize to (the FP8 copies made beside them until now).
            var exactWeights = exactBlocks[i].Parameters.Where(p => IsProjection(p)).ToList();
            var held = fp8Blocks[i].Parameters.Where(IsProjection).ToList();
            Assert.Equal(4, exactWeights.Count);
            for (int j = 0; j < 4; j++)
            {
                using var quantized = exactWeights[j].Value.QuantizeFp8();
                Assert.Equal(CpuBackend.Bytes(quantized.Codes).ToArray(), CpuBackend.Bytes(held[2 * j].Value).ToArray());
                Assert.Equal(quantized.Scales.ToFloatArray(), held[2 * j + 1].Value.ToFloatArray());
            }
        }

        // The device holds the smaller weights: the estimate's figure, the exact one less each block's saving.
        long saving = TransformerBlock.BytesFor(config, dtype, ProjectionWeights.Exact) - TransformerBlock.BytesFor(config, dtype, ProjectionWeights.Fp8);
        Assert.Equal(config.NumLayers * saving, exact.WeightBytes - fp8.WeightBytes);
        Assert.Equal(CogVideoXTransformer.EstimateMemory(config, dtype, 2, 8, 2, 4, 6, LinearMode.Fp8, ProjectionWeights.Fp8).WeightBytes, fp8.WeightBytes);
        Assert.Equal(CogVideoXTransformer.EstimateMemory(config, dtype, 2, 8, 2, 4, 6).WeightBytes, exact.WeightBytes);

        // The same output, bit for bit, as today's FP8 copies made beside the exact weights.
        var tensors = Fixtures.LoadAll(Fixtures.GoldenFile(style, "runs", run + ".safetensors"));
        try
        {
            using var input = tensors["transformer_in_step0"].To(dtype);
            using var text = Ops.Concat(0, tensors["negative_embeds"], tensors["prompt_embeds"]);
            float[] timesteps = Array.ConvertAll(tensors["timestep_step0"].ToLongArray(), t => (float)t);
            using var rotaryExact = config.UseRotaryPositionalEmbeddings ? exact.BuildRotaryTables(input.Dim(1), input.Dim(3), input.Dim(4)) : null;
            using var rotaryFp8 = config.UseRotaryPositionalEmbeddings ? fp8.BuildRotaryTables(input.Dim(1), input.Dim(3), input.Dim(4)) : null;
            exact.Linears = LinearMode.Fp8;
            fp8.Linears = LinearMode.Fp8;
            exact.PrepareFp8();
            fp8.PrepareFp8(); // nothing to make: the codes are the weights
            Assert.Equal(0, fp8.Fp8Bytes);
            Assert.Equal(CogVideoXTransformer.EstimateFp8Bytes(config), exact.Fp8Bytes);
            using var beside = exact.Forward(input, text, timesteps, rotaryExact);
            using var only = fp8.Forward(input, text, timesteps, rotaryFp8);
            Assert.Equal(beside.ToFloatArray(), only.ToFloatArray());

            // FP8-only weights cannot run an exact step: refused, saying why and what to do.
            fp8.Linears = LinearMode.Exact;
            var e = Assert.Throws<CogVideoXException>(() => fp8.Forward(input, text, timesteps, rotaryFp8).Dispose());
            Assert.Contains("held as FP8 only", e.Message);
            Assert.Contains("--exact-steps", e.Message);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    [Fact]
    public void Fp8OnlyIsWhatFp8WithoutExactStepsLoadsAndABackendWithoutTheKernelIsRefusedBeforeLoading()
    {
        Assert.Equal(ProjectionWeights.Fp8, LinearModes.Projections(Small with { Linears = LinearMode.Fp8 }));
        Assert.Equal(ProjectionWeights.Exact, LinearModes.Projections(Small with { Linears = LinearMode.Fp8, ExactSteps = 1 }));
        Assert.Equal(ProjectionWeights.Exact, LinearModes.Projections(Small));
        Assert.Equal(ProjectionWeights.Exact, LinearModes.Projections(Small with { ExactSteps = 2, Cache = StepCacheMode.TeaCache }));
        var folder = Fixtures.GoldenFile("pipeline_2b_style", "transformer");
        var e = Assert.Throws<CogVideoXException>(() => CogVideoXTransformer.Load(folder, new CoreOnlyBackend(), DType.F32, projections: ProjectionWeights.Fp8));
        Assert.Contains("--linear fp8", e.Message);
        Assert.Contains("has no FP8 linear kernel; use --linear exact", e.Message);
        // Exact projections load there as before.
        using var exact = CogVideoXTransformer.Load(folder, new CoreOnlyBackend(), DType.F32);
        Assert.Equal(ProjectionWeights.Exact, exact.Projections);
    }

    [Fact]
    public void HostImagesHoldTheCodesSoStreamedBlocksUploadHalfTheBytesAndComputeTheSame()
    {
        var folder = Path.Combine(ThreeLayerModel.Folder, "transformer");
        foreach (var dtype in new[] { DType.F32, DType.BF16 })
        {
            using var exactHost = CogVideoXTransformer.LoadHostBlocks(folder, dtype, pinned: null);
            using var fp8Host = CogVideoXTransformer.LoadHostBlocks(folder, dtype, pinned: null, projections: ProjectionWeights.Fp8);
            var config = TransformerConfig.Load(Path.Combine(folder, "config.json"));
            Assert.Contains(fp8Host.Layout.Arenas, a => a.DType == DType.F8E4M3);
            Assert.DoesNotContain(exactHost.Layout.Arenas, a => a.DType == DType.F8E4M3);
            // One image per block: its parameters' bytes plus alignment padding (less than 256 bytes per parameter).
            long parameters = TransformerBlock.BytesFor(config, dtype, ProjectionWeights.Fp8);
            Assert.InRange(fp8Host.Layout.Bytes, parameters, parameters + 256L * fp8Host.Layout.Weights.Count);
            output.WriteLine($"{dtype}: a block's image {exactHost.Layout.Bytes} bytes exact, {fp8Host.Layout.Bytes} FP8-only");
            Assert.True(fp8Host.Layout.Bytes < exactHost.Layout.Bytes);

            // Streamed through two slots (the low mode), the blocks compute what resident FP8-only blocks compute.
            var streaming = new RecordingWeightStreaming();
            using var streamed = CogVideoXTransformer.Load(folder, CpuBackend.Instance, dtype,
                new StreamedBlocks<TransformerBlock>(fp8Host, CpuBackend.Instance, streaming.CreateCopyStream(), slots: 2));
            using var resident = CogVideoXTransformer.Load(folder, CpuBackend.Instance, dtype, projections: ProjectionWeights.Fp8);
            Assert.Null(streamed.Projections);
            streamed.Linears = resident.Linears = LinearMode.Fp8;
            var inputs = new CogVideoX.Engine.Testing.OpInputs(CpuBackend.Instance, dtype, 3);
            using var latents = inputs.Uniform([2, 3, config.InChannels, 4, 6], -2f, 2f);
            using var text = inputs.Uniform([2, config.MaxTextSeqLength, config.TextEmbedDim], -1f, 1f);
            using var a = streamed.Forward(latents, text, [500f]);
            using var b = resident.Forward(latents, text, [500f]);
            Assert.Equal(b.ToFloatArray(), a.ToFloatArray());
            Assert.Equal(config.NumLayers, streaming.Count("upload") / fp8Host.Layout.Arenas.Count);
        }
    }

    [Fact]
    public void AKeptModelSwitchesBetweenExactAndFp8OnlyWeightsAsItsVideosAsk()
    {
        // One pipeline that keeps its models (full), as the workbench does across a study's videos, against a fresh
        // pipeline per video.
        var fp8 = Small with { Linears = LinearMode.Fp8 };
        var fp8Exact1 = Small with { Linears = LinearMode.Fp8, ExactSteps = 1 };
        GenerationResult Fresh(GenerationRequest request)
        {
            using var pipeline = new CogVideoXPipeline(ModelFolder.Open(Fixtures.Path2b), new PipelineOptions { MemoryPolicy = MemoryPolicies.Full });
            return pipeline.Generate(request);
        }
        var expected = new Dictionary<GenerationRequest, float[]> { [Small] = Fresh(Small).Frames, [fp8] = Fresh(fp8).Frames, [fp8Exact1] = Fresh(fp8Exact1).Frames };
        Assert.NotEqual(expected[Small], expected[fp8]);

        using var kept = new CogVideoXPipeline(ModelFolder.Open(Fixtures.Path2b), new PipelineOptions { MemoryPolicy = MemoryPolicies.Full });
        var warnings = new List<string>();
        foreach (var (request, projections) in new[]
        {
            (fp8, ProjectionWeights.Fp8), (Small, ProjectionWeights.Exact), (fp8, ProjectionWeights.Fp8), (fp8, ProjectionWeights.Fp8),
            (fp8Exact1, ProjectionWeights.Exact), (Small, ProjectionWeights.Exact), (fp8Exact1, ProjectionWeights.Exact), (fp8, ProjectionWeights.Fp8),
        })
        {
            var result = kept.Generate(request);
            Assert.Equal(expected[request], result.Frames);
            Assert.True(kept.IsLoaded(ModelComponent.Transformer));
            Assert.Equal(projections, kept.Components.TransformerProjections);
            var transformer = kept.Components.Transformer(MemoryPolicies.Full, new StageClock(kept.Backend, null), warnings);
            var blocks = ((ResidentBlocks<TransformerBlock>)transformer.Blocks).Blocks;
            Assert.All(blocks, b => Assert.Equal(projections, b.Projections));
            if (projections == ProjectionWeights.Fp8)
            {
                Assert.All(blocks, AssertFp8Only);
            }
            else
            {
                // Exact weights; FP8 copies beside them after an fp8 run with exact steps (kept for the next one), none after an exact run.
                Assert.All(blocks, b => Assert.Equal(4, b.Parameters.Count(p => IsProjection(p) && !p.IsFp8)));
                Assert.All(blocks, b => Assert.Equal(request.Linears == LinearMode.Fp8, b.Fp8Bytes > 0));
            }
        }
    }

    [Fact]
    public void EveryMemoryModeGivesTheSameFp8VideoAndStreamsTheCodes()
    {
        var folder = ThreeLayerModel.Folder;
        var fp8 = Small with { Linears = LinearMode.Fp8 };
        var tiles = VaeTiling.ForConfig(ModelFolder.Open(folder).Vae);
        using var full = new CogVideoXPipeline(ModelFolder.Open(folder), new PipelineOptions { MemoryPolicy = MemoryPolicies.Full, VaeTiling = tiles });
        var reference = full.Generate(fp8);
        var exactReference = full.Generate(Small);
        foreach (var policy in new[] { MemoryPolicies.Balanced, MemoryPolicies.Low })
        {
            var streaming = new RecordingWeightStreaming();
            using var pipeline = new CogVideoXPipeline(ModelFolder.Open(folder), new PipelineOptions { MemoryPolicy = policy, WeightStreaming = streaming, VaeTiling = tiles });
            var exact = pipeline.Generate(Small);
            long exactHost = pipeline.HostBlockBytes;
            var result = pipeline.Generate(fp8);
            Assert.Equal(reference.Frames, result.Frames);
            long fp8Host = pipeline.HostBlockBytes;
            output.WriteLine($"{policy.Name}: host images {exactHost} bytes exact, {fp8Host} with FP8-only transformer blocks");
            Assert.True(fp8Host < exactHost);
            // Back to exact in the same process: the exact images are made again.
            Assert.Equal(exactReference.Frames, pipeline.Generate(Small).Frames);
            Assert.Equal(exact.Frames, exactReference.Frames);
            Assert.Equal(exactHost, pipeline.HostBlockBytes);
        }
    }

    [Theory]
    [InlineData("CogVideoX-2b", DType.F16, 3_387_567_744L, 2_062_537_344L)]
    [InlineData("CogVideoX-5b", DType.BF16, 11_140_566_144L, 6_388_870_272L)]
    public void TheEstimateCountsTheFp8WeightsInsteadOfTheExactOnes(string name, DType dtype, long exactWeights, long fp8Weights)
    {
        var model = ModelFolder.Open(Fixtures.GoldenFile("real_configs", name));
        var c = model.Transformer;
        long d = c.InnerDim;
        double Gib(long b) => b / (double)(1L << 30);
        // Per block: 12·d² projection weights, 2 bytes each exact, 1 byte + 4 per output channel (9·d of them) in FP8.
        long exactBlock = TransformerBlock.BytesFor(c, dtype, ProjectionWeights.Exact);
        long fp8Block = TransformerBlock.BytesFor(c, dtype, ProjectionWeights.Fp8);
        Assert.Equal(12 * d * d * 2 - (12 * d * d + 36 * d), exactBlock - fp8Block);
        Assert.Equal(TransformerBlock.Fp8BytesFor(c), 12 * d * d + 36 * d);

        var sizes = MemoryEstimator.Measure(model, dtype, 49, 480, 720, classifierFreeGuidance: true, textLength: 226);
        var only = MemoryEstimator.Measure(model, dtype, 49, 480, 720, true, 226, linears: LinearMode.Fp8, projections: ProjectionWeights.Fp8);
        var beside = MemoryEstimator.Measure(model, dtype, 49, 480, 720, true, 226, linears: LinearMode.Fp8, projections: ProjectionWeights.Exact);
        Assert.Equal(exactBlock, sizes.TransformerBlock);
        Assert.Equal(fp8Block, only.TransformerBlock);
        Assert.Equal(exactBlock + TransformerBlock.Fp8BytesFor(c), beside.TransformerBlock);
        Assert.Equal(only.DenoiseWorking, beside.DenoiseWorking);
        Assert.Equal(sizes.Transformer - c.NumLayers * (exactBlock - fp8Block), only.Transformer);
        // The figures docs/fast-modes.md gives (full-mode transformer weights).
        Assert.Equal((exactWeights, fp8Weights), (sizes.Transformer, only.Transformer));
        // Working memory: the FP8 feed-forward's first projection (its float32 accumulator [M, 4d]) is the block's peak,
        // above the attention's; less than counting the accumulator on top of the attention's peak.
        long rows = 2L * (226 + 13 * 30 * 45);
        Assert.InRange(only.DenoiseWorking - sizes.DenoiseWorking, 1, rows * d + rows * 4 * d * 4);
        output.WriteLine($"{name} {dtype.Name()}: transformer weights {sizes.Transformer} bytes ({Gib(sizes.Transformer):F2} GiB) exact, " +
            $"{only.Transformer} ({Gib(only.Transformer):F2} GiB) FP8-only, {beside.Transformer} ({Gib(beside.Transformer):F2} GiB) with FP8 copies beside; " +
            $"a block {exactBlock} → {fp8Block} bytes");

        // Every mode needs less; auto picks the faster mode sooner: a device where exact needs balanced keeps fp8 in full.
        var (_, exactModes) = MemoryEstimator.Choose(sizes, 141L << 30, true, false);
        var (_, fp8Modes) = MemoryEstimator.Choose(only, 141L << 30, true, false);
        var (_, besideModes) = MemoryEstimator.Choose(beside, 141L << 30, true, false);
        for (int i = 0; i < exactModes.Count; i++)
        {
            output.WriteLine($"  {exactModes[i].Mode}: exact {exactModes[i]}; fp8 {fp8Modes[i]}; fp8 with exact steps {besideModes[i]}");
            Assert.True(fp8Modes[i].DenoiseStage < besideModes[i].DenoiseStage);
        }
        Assert.Equal(c.NumLayers * (exactBlock - fp8Block) - (only.DenoiseWorking - sizes.DenoiseWorking), exactModes[0].DenoiseStage - fp8Modes[0].DenoiseStage);
        long usable = (long)(fp8Modes[0].Peak / MemoryEstimator.UsableFraction) + 1;
        Assert.True(exactModes[0].Peak > usable * MemoryEstimator.UsableFraction);
        Assert.Same(MemoryPolicies.Full, MemoryEstimator.Choose(only, usable, true, false).Choice);
        Assert.NotSame(MemoryPolicies.Full, MemoryEstimator.Choose(sizes, usable, true, false).Choice);
    }

    [Fact]
    public void OnTheCpuAutoCountsTheFp8WeightsToo()
    {
        using var pipeline = new CogVideoXPipeline(ModelFolder.Open(Fixtures.Path2b), new PipelineOptions { MemoryPolicy = MemoryPolicies.Auto });
        var exact = pipeline.Resolve(Small).Resolved.MemoryNotes.Single(n => n.StartsWith("memory: full (auto:", StringComparison.Ordinal));
        var fp8 = pipeline.Resolve(Small with { Linears = LinearMode.Fp8 }).Resolved.MemoryNotes.Single(n => n.StartsWith("memory: full (auto:", StringComparison.Ordinal));
        var withSteps = pipeline.Resolve(Small with { Linears = LinearMode.Fp8, ExactSteps = 1 }).Resolved.MemoryNotes.Single(n => n.StartsWith("memory: full (auto:", StringComparison.Ordinal));
        output.WriteLine(exact);
        output.WriteLine(fp8);
        Assert.NotEqual(exact, fp8);
        Assert.Equal(exact, withSteps);
    }
}
