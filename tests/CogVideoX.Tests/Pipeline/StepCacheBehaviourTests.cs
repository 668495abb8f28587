using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Models.Transformer;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Pipeline;

/// <summary>
/// Step caching beside the parity tests: the exact-step rule, the published coefficients per model, the checks of
/// the settings, and the caches under streamed weights (the same video as with resident ones, fewer block uploads).
/// </summary>
public class StepCacheBehaviourTests(ITestOutputHelper output)
{
    private static readonly GenerationRequest Small = TinyRequest.Panda(steps: 5, seed: 7);

    [Theory]
    [InlineData(5, 0, "XrrrX")]
    [InlineData(5, 1, "XrrrX")]
    [InlineData(5, 2, "XXrXX")]
    [InlineData(5, 3, "XXXXX")]
    [InlineData(1, 0, "X")]
    [InlineData(2, 0, "XX")]
    public void TheFirstAndLastStepsAndNMoreAreExact(int steps, int exactSteps, string expected)
    {
        var pattern = string.Concat(Enumerable.Range(0, steps).Select(i => StepCaching.IsExactStep(i, steps, exactSteps) ? 'X' : 'r'));
        Assert.Equal(expected, pattern);
    }

    [Fact]
    public void ThePublishedCoefficientsAreChosenByTheModelsConfig()
    {
        var twoB = TransformerConfig.Load(Fixtures.GoldenFile("real_configs", "CogVideoX-2b", "transformer", "config.json"));
        var fiveB = TransformerConfig.Load(Fixtures.GoldenFile("real_configs", "CogVideoX-5b", "transformer", "config.json"));
        Assert.Equal("CogVideoX-2b", TeaCacheCoefficients.For(twoB).Model);
        Assert.Equal("CogVideoX-5b", TeaCacheCoefficients.For(fiveB).Model);
        Assert.Equal("CogVideoX-5b-I2V", TeaCacheCoefficients.For(fiveB with { InChannels = 32, OutChannels = 16 }).Model);
        Assert.Equal("CogVideoX1.5-5B", TeaCacheCoefficients.For(fiveB with { PatchSizeT = 2 }).Model);
        Assert.Equal("CogVideoX1.5-5B-I2V", TeaCacheCoefficients.For(fiveB with { PatchSizeT = 2, InChannels = 32, OutChannels = 16 }).Model);
        Assert.Same(TeaCacheCoefficients.CogVideoX5b, TeaCacheCoefficients.For(fiveB with { InChannels = 32, OutChannels = 16 }).Coefficients);
        // numpy's poly1d order (highest power first): at x = 0.5, Σ c_k·0.5^(4−k).
        using var cache = new TeaCache(0.1, TeaCacheCoefficients.CogVideoX2b);
        double expected = -3.10658903e+01 / 16 + 2.54732368e+01 / 8 - 5.92380459e+00 / 4 + 1.75769064e+00 / 2 - 3.61568434e-03;
        Assert.Equal(expected, cache.Rescale(0.5), 12);
    }

    [Fact]
    public void TheSettingsAreParsedAndCheckedWithMessagesThatSayWhatIsAllowed()
    {
        Assert.Equal(StepCacheMode.FirstBlockCache, StepCaching.Parse(" FBCache "));
        Assert.Equal(StepCacheMode.TeaCache, StepCaching.Parse("teacache"));
        Assert.Equal(StepCacheMode.None, StepCaching.Parse("none"));
        var e = Assert.Throws<CogVideoXException>(() => StepCaching.Parse("fast"));
        Assert.Equal(GenerationRules.UsageExitCode, e.ExitCode);
        Assert.Contains("use none", e.Message);

        e = Assert.Throws<CogVideoXException>(() => StepCaching.Check(Small with { Cache = StepCacheMode.TeaCache, CacheThreshold = double.NaN }));
        Assert.Contains("cache threshold: NaN is not valid", e.Message);
        e = Assert.Throws<CogVideoXException>(() => StepCaching.Check(Small with { ExactSteps = -1 }));
        Assert.Contains("exact steps: -1 is not valid", e.Message);

        Assert.Contains(StepCaching.Check(Small with { CacheThreshold = 0.2 }), w => w.StartsWith("cache threshold has no effect", StringComparison.Ordinal));
        Assert.Contains(StepCaching.Check(Small with { Cache = StepCacheMode.FirstBlockCache, ExactSteps = 3 }), w => w.Contains("no step can be reused", StringComparison.Ordinal));
        Assert.Empty(StepCaching.Check(Small with { Cache = StepCacheMode.FirstBlockCache, ExactSteps = 2 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new FirstBlockCache(-0.5));
    }

    [Theory]
    [InlineData(StepCacheMode.FirstBlockCache)]
    [InlineData(StepCacheMode.TeaCache)]
    public void UnderStreamedWeightsACacheGivesTheSameVideoAndSkipsTheUploadsOfReusedBlocks(StepCacheMode mode)
    {
        // Three layers, so two streaming slots hold fewer blocks than the model has; a threshold no step reaches, so
        // steps 1–3 of 5 reuse.
        var folder = ThreeLayerModel.Folder;
        var request = Small with { Cache = mode, CacheThreshold = 1000 };
        // Low implies the model's default VAE tiles: the same tiles in full mode, so the frames compare exactly.
        var tiles = VaeTiling.ForConfig(ModelFolder.Open(folder).Vae);
        using var full = new CogVideoXPipeline(ModelFolder.Open(folder), new PipelineOptions { MemoryPolicy = MemoryPolicies.Full, VaeTiling = tiles });
        var reference = full.Generate(request);
        Assert.Equal([1, 2, 3], reference.Resolved.ReusedSteps);

        var streaming = new RecordingWeightStreaming();
        using var low = new CogVideoXPipeline(ModelFolder.Open(folder), new PipelineOptions { MemoryPolicy = MemoryPolicies.Low, WeightStreaming = streaming });
        var result = low.Generate(request);
        Assert.Equal([1, 2, 3], result.Resolved.ReusedSteps);
        Assert.Equal(reference.Latents, result.Latents);
        Assert.Equal(reference.Frames, result.Frames);
        int uploads = streaming.Count("upload");
        // Exact steps upload every block; a reused step uploads none (TeaCache; block 0 is fetched when the pass
        // begins) or block 0 and the next one fetched ahead (First Block Cache), never all three.
        int textEncoder = ThreeLayerModel.Layers;
        Assert.True(uploads - textEncoder < Small.Steps * ThreeLayerModel.Layers, $"{uploads} uploads");
        output.WriteLine($"{StepCaching.Name(mode)}: {uploads - textEncoder} transformer block uploads for {Small.Steps} steps " +
            $"({Small.Steps * ThreeLayerModel.Layers} without the cache)");
    }
}
