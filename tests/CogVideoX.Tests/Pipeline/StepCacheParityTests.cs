using System.Text.Json;
using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Pipeline;

/// <summary>
/// Step caching against the reference (tests/fixtures/reference/cache, made by scripts/reference/fixtures_cache.py):
/// First Block Cache through diffusers' own hook, TeaCache as a transcription of its CogVideoX forward, on the tiny
/// golden models at 12 steps. The pipeline runs from the prompt text: the same steps reused, every transformer output
/// within the model tolerance and the frames within the golden 2e-3.
/// </summary>
public class StepCacheParityTests(ITestOutputHelper output)
{
    private const double FramesTolerance = 2e-3; // golden README: pipeline frames ≤ 2e-3 absolute (CPU float32)
    private const double ModelTolerance = 1e-4;  // golden README: model outputs ≤ 1e-4 × max(1, max |reference|)

    public static string Folder => Path.Combine(Fixtures.RepoRoot, "tests", "fixtures", "reference", "cache");

    public sealed record CacheCase(string Name, string ModelFolder, GenerationRequest Request, int[] Reused, string ExactFile);

    public static IReadOnlyList<CacheCase> Cases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "cases.json")));
        var list = new List<CacheCase>();
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            string style = c.GetProperty("style").GetString()!, tag = c.GetProperty("golden_run").GetString()!;
            var coefficients = c.GetProperty("coefficient_values");
            // The published polynomials are left to the pipeline to choose from the model's config; others are given.
            bool published = c.GetProperty("coefficients").GetString() is { } model && model.StartsWith("CogVideoX", StringComparison.Ordinal);
            var request = FixtureRuns.Request(c) with
            {
                Cache = StepCaching.Parse(c.GetProperty("cache").GetString()!),
                CacheThreshold = c.GetProperty("cache_threshold").GetDouble(),
                ExactSteps = c.GetProperty("exact_steps").GetInt32(),
                TeaCacheCoefficients = !published && coefficients.ValueKind == JsonValueKind.Array ? [.. coefficients.EnumerateArray().Select(v => v.GetDouble())] : null,
            };
            var reused = c.GetProperty("reused_steps").EnumerateArray().Select(v => v.GetInt32()).ToArray();
            list.Add(new CacheCase(c.GetProperty("name").GetString()!, Path.Combine(Fixtures.Golden, style), request, reused,
                Path.Combine(Folder, $"exact_{style}_{tag}.safetensors")));
        }
        return list;
    }

    public static TheoryData<string> Names() => FixtureRuns.Theory(Cases().Select(c => c.Name));

    [Theory]
    [MemberData(nameof(Names))]
    public void TheSameStepsAreReusedAndTheFramesMatch(string name)
    {
        var c = Cases().Single(k => k.Name == name);
        var reference = Fixtures.LoadAll(Path.Combine(Folder, name + ".safetensors"));
        try
        {
            using var pipeline = new CogVideoXPipeline(ModelFolder.Open(c.ModelFolder), new PipelineOptions { Backend = CpuBackend.Instance, DType = DType.F32 });
            var observer = new OutputObserver(reference, output, name);
            var reusedReported = new List<int>();
            var result = pipeline.Generate(c.Request, new Inline(p =>
            {
                if (p.Stage == PipelineStages.Denoise && p.StepReused) reusedReported.Add(p.Step - 1);
            }), observer: observer);

            Assert.Equal(c.Reused, result.Resolved.ReusedSteps);
            Assert.Equal(c.Reused, reusedReported);
            Assert.Equal(c.Request.Steps, observer.Compared);
            double error = Compare.AssertAbs(reference["frames"].ToFloatArray(), result.Frames, FramesTolerance, $"{name} frames");
            output.WriteLine($"{name}: reused [{string.Join(", ", result.Resolved.ReusedSteps)}] ({result.Resolved.Cache}); " +
                $"frames max abs error {error:E3} (tolerance {FramesTolerance:E0}), largest transformer output error {observer.Largest:E2}");
            Assert.Equal(Math.Max(1, c.Request.ExactSteps), result.Resolved.ExactSteps);
            if (c.Request.Cache == StepCacheMode.TeaCache && c.Request.TeaCacheCoefficients is null)
                Assert.EndsWith(c.ModelFolder == Fixtures.Path2b ? "CogVideoX-2b coefficients" : "CogVideoX-5b coefficients", result.Resolved.Cache);
        }
        finally
        {
            foreach (var t in reference.Values) t.Dispose();
        }
    }

    /// <summary>The exact path at the cache fixtures' 12 steps (their reference for the PSNR in the README).</summary>
    [Theory]
    [InlineData("pipeline_2b_style", "panda_s42")]
    [InlineData("pipeline_5b_style", "panda_dpm_dyncfg")]
    public void TheExactRunAtTwelveStepsMatches(string style, string tag)
    {
        var c = Cases().First(k => k.ExactFile.EndsWith($"exact_{style}_{tag}.safetensors", StringComparison.Ordinal));
        var reference = Fixtures.LoadAll(c.ExactFile);
        try
        {
            using var pipeline = new CogVideoXPipeline(ModelFolder.Open(c.ModelFolder), new PipelineOptions { Backend = CpuBackend.Instance, DType = DType.F32 });
            var observer = new OutputObserver(reference, output, tag);
            var result = pipeline.Generate(c.Request with { Cache = StepCacheMode.None, CacheThreshold = null, ExactSteps = 0 }, observer: observer);
            Assert.Empty(result.Resolved.ReusedSteps);
            Assert.Equal("none", result.Resolved.Cache);
            double error = Compare.AssertAbs(reference["frames"].ToFloatArray(), result.Frames, FramesTolerance, $"{tag} exact frames");
            output.WriteLine($"{tag} exact, 12 steps: frames max abs error {error:E3}");
        }
        finally
        {
            foreach (var t in reference.Values) t.Dispose();
        }
    }

    private sealed class OutputObserver(Dictionary<string, Tensor> reference, ITestOutputHelper output, string tag) : IPipelineObserver
    {
        public int Compared { get; private set; }

        public double Largest { get; private set; }

        public void Tensor(string name, Tensor value)
        {
            if (!name.StartsWith("transformer_out_step", StringComparison.Ordinal)) return;
            double err = Compare.AssertClose(reference[name], value, ModelTolerance, $"{tag} {name}");
            Largest = Math.Max(Largest, err);
            Compared++;
            _ = output;
        }
    }

    private sealed class Inline(Action<PipelineProgress> report) : IProgress<PipelineProgress>
    {
        public void Report(PipelineProgress value) => report(value);
    }
}
