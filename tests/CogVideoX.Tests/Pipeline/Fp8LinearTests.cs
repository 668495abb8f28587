using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Models.Transformer;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Pipeline;

/// <summary>
/// FP8 linears in the pipeline: the option's names and errors, which steps stay exact, that an fp8 run differs from
/// the exact one only a little and with all steps exact not at all, the same video under streamed weights, and the
/// memory estimate.
/// </summary>
public class Fp8LinearTests
{
    private static readonly GenerationRequest Small = TinyRequest.Panda(steps: 4, seed: 7);

    [Fact]
    public void TheModeIsParsedAndAnUnknownOneSaysWhatIsAllowed()
    {
        Assert.Equal(LinearMode.Fp8, LinearModes.Parse(" FP8 "));
        Assert.Equal(LinearMode.Fp8, LinearModes.Parse("e4m3"));
        Assert.Equal(LinearMode.Exact, LinearModes.Parse("exact"));
        var e = Assert.Throws<CogVideoXException>(() => LinearModes.Parse("int8"));
        Assert.Equal(GenerationRules.UsageExitCode, e.ExitCode);
        Assert.Contains("linear: unknown mode \"int8\"; use exact", e.Message);
        Assert.Contains("fp8", e.Message);
    }

    [Theory]
    [InlineData(5, 0, "fffff")]
    [InlineData(5, 1, "XfffX")]
    [InlineData(5, 2, "XXfXX")]
    [InlineData(5, 3, "XXXXX")]
    [InlineData(1, 0, "f")]
    public void TheFirstAndLastNStepsRunExactLinears(int steps, int exactSteps, string expected)
    {
        var request = Small with { Steps = steps, ExactSteps = exactSteps, Linears = LinearMode.Fp8 };
        var pattern = string.Concat(Enumerable.Range(0, steps).Select(i => LinearModes.ForStep(request, i, steps) == LinearMode.Fp8 ? 'f' : 'X'));
        Assert.Equal(expected, pattern);
        Assert.Equal(LinearMode.Exact, LinearModes.ForStep(request with { Linears = LinearMode.Exact }, steps / 2, steps));
    }

    [Fact]
    public void ABackendWithoutTheKernelIsRefusedAndExactStepsCoveringEverythingWarn()
    {
        var e = Assert.Throws<CogVideoXException>(() => LinearModes.Check(Small with { Linears = LinearMode.Fp8 }, new CoreOnlyBackend()));
        Assert.Contains("--linear fp8 cannot run on", e.Message);
        Assert.Contains("use --linear exact", e.Message);
        Assert.Equal(GenerationRules.UsageExitCode, e.ExitCode);
        Assert.Empty(LinearModes.Check(Small with { Linears = LinearMode.Fp8, ExactSteps = 1 }, CpuBackend.Instance));
        Assert.Contains(LinearModes.Check(Small with { Linears = LinearMode.Fp8, ExactSteps = 2 }, CpuBackend.Instance),
            w => w.Contains("every step runs exact linears", StringComparison.Ordinal));
        Assert.Empty(LinearModes.Check(Small with { ExactSteps = 9 }, new CoreOnlyBackend()));
    }

    [Fact]
    public void AnFp8RunIsCloseToTheExactOneAndRecordsItsSettings()
    {
        using var pipeline = new CogVideoXPipeline(ModelFolder.Open(Fixtures.Path2b));
        var exact = pipeline.Generate(Small);
        var fp8 = pipeline.Generate(Small with { Linears = LinearMode.Fp8 });
        Assert.Equal(("fp8", 0), (fp8.Resolved.Linear, fp8.Resolved.ExactSteps));
        Assert.Equal("exact", exact.Resolved.Linear);
        double maxAbs = exact.Frames.Zip(fp8.Frames, (a, b) => Math.Abs(a - b)).Max();
        // Not the exact path, but close: E4M3 operands (3-bit mantissas) in every block's projections.
        Assert.InRange(maxAbs, 1e-4, 0.25);
        Assert.Equal(0, pipeline.Generate(Small).Frames.Zip(exact.Frames, (a, b) => Math.Abs(a - b)).Max());

        // Every step kept exact: the exact video, bit for bit.
        var allExact = pipeline.Generate(Small with { Linears = LinearMode.Fp8, ExactSteps = 2 });
        Assert.Equal(exact.Frames, allExact.Frames);
        Assert.Equal(2, allExact.Resolved.ExactSteps);

        // With a cache, exact steps 0 stays 0 for the linears and the cache's first and last step stay computed.
        var both = pipeline.Generate(Small with { Linears = LinearMode.Fp8, Cache = StepCacheMode.FirstBlockCache, CacheThreshold = 1000 });
        Assert.Equal([1, 2], both.Resolved.ReusedSteps);
        Assert.Equal(1, both.Resolved.ExactSteps);
    }

    [Fact]
    public void UnderStreamedWeightsFp8GivesTheSameVideo()
    {
        var folder = ThreeLayerModel.Folder;
        var request = Small with { Linears = LinearMode.Fp8, ExactSteps = 1 };
        var tiles = VaeTiling.ForConfig(ModelFolder.Open(folder).Vae);
        using var full = new CogVideoXPipeline(ModelFolder.Open(folder), new PipelineOptions { MemoryPolicy = MemoryPolicies.Full, VaeTiling = tiles });
        var reference = full.Generate(request);
        using var low = new CogVideoXPipeline(ModelFolder.Open(folder), new PipelineOptions { MemoryPolicy = MemoryPolicies.Low, WeightStreaming = new RecordingWeightStreaming() });
        var result = low.Generate(request);
        Assert.Equal(reference.Frames, result.Frames);
    }

    [Fact]
    public void TheFp8WeightsTakeOneBytePerWeightAndTheEstimateCountsThem()
    {
        var config = TransformerConfig.Load(Fixtures.GoldenFile("real_configs", "CogVideoX-2b", "transformer", "config.json"));
        long d = config.InnerDim;
        // to_q/k/v, to_out, ff in and out: 12·d² weights per block, plus a scale per output channel (3d + d + 4d + d).
        Assert.Equal(12 * d * d + 4 * 9 * d, TransformerBlock.Fp8BytesFor(config));
        Assert.Equal(config.NumLayers * TransformerBlock.Fp8BytesFor(config), CogVideoXTransformer.EstimateFp8Bytes(config));

        var model = ModelFolder.Open(Fixtures.Path2b);
        var sizes = MemoryEstimator.Measure(model, DType.F16, 9, 32, 48, true, 226);
        var withFp8 = MemoryEstimator.Measure(model, DType.F16, 9, 32, 48, true, 226, linears: LinearMode.Fp8, projections: ProjectionWeights.Exact);
        Assert.Equal(sizes.TransformerBlock + TransformerBlock.Fp8BytesFor(model.Transformer), withFp8.TransformerBlock);
        Assert.True(withFp8.DenoiseWorking > sizes.DenoiseWorking);

        using var transformer = CogVideoXTransformer.Load(Path.Combine(Fixtures.Path2b, "transformer"), CpuBackend.Instance, DType.F32);
        Assert.Equal(0, transformer.Fp8Bytes);
        transformer.PrepareFp8();
        Assert.Equal(CogVideoXTransformer.EstimateFp8Bytes(transformer.Config), transformer.Fp8Bytes);
        transformer.ReleaseFp8();
        Assert.Equal(0, transformer.Fp8Bytes);
        using var core = CogVideoXTransformer.Load(Path.Combine(Fixtures.Path2b, "transformer"), new CoreOnlyBackend(), DType.F32);
        var e = Assert.Throws<CogVideoXException>(core.PrepareFp8);
        Assert.Contains("has no FP8 linear kernel", e.Message);
    }
}
