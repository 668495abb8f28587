using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Diffusion;

/// <summary>
/// Every golden pipeline run's denoising loop without the transformer: the initial latents drawn from the run's seed,
/// the timesteps, then each step's guidance and scheduler update driven by the recorded transformer outputs,
/// chained from our own latents. The 5b-style runs use the stochastic DPM scheduler (noise from the same generator
/// as the latents), so matching them checks the generator's stream across the whole run.
/// </summary>
public class GoldenRunDenoisingTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-5; // README: scheduler trajectories ≤ 1e-5 absolute

    public sealed record Run(string Folder, string Tag, long Seed, int Steps, double Guidance, bool DynamicCfg);

    public static IEnumerable<Run> Runs() => FixtureRuns.Golden().Select(g =>
    {
        var request = FixtureRuns.Request(g.Entry);
        return new Run(g.Folder, FixtureRuns.Tag(g.Entry), request.Seed, request.Steps, request.Guidance, request.DynamicCfg ?? false);
    });

    public static TheoryData<string> RunTags() => FixtureRuns.Theory(Runs().Select(r => r.Tag));

    private static Run Find(string tag) => Runs().Single(r => r.Tag == tag);

    /// <summary>The scheduler as a user would get it by default for that folder's model.</summary>
    private static IScheduler SchedulerFor(Run run)
    {
        var folderConfig = SchedulerConfig.Load(Path.Combine(run.Folder, "scheduler", "scheduler_config.json"));
        var transformer = TransformerConfig.Load(Path.Combine(run.Folder, "transformer", "config.json"));
        return SchedulerSelection.Resolve(folderConfig, transformer).Create();
    }

    [Theory]
    [MemberData(nameof(RunTags))]
    public void DenoisingLoopMatches(string tag)
    {
        var run = Find(tag);
        using var file = SafetensorsFile.Open(Path.Combine(run.Folder, "runs", tag + ".safetensors"));
        var scheduler = SchedulerFor(run);
        Assert.Equal(run.Folder == Fixtures.Path5b ? SchedulerKind.Dpm : SchedulerKind.Ddim, scheduler.Kind);

        // prepare_latents: the generator's first draw, times init_noise_sigma (1).
        var generator = new TorchGenerator(run.Seed);
        var shape = file.Entry("initial_latents").Shape;
        var latents = generator.Randn(shape);
        TorchGeneratorTests.AssertBitExact(file.Load("initial_latents").ToFloatArray(), latents, $"{tag} initial_latents");
        Assert.Equal(1f, scheduler.InitNoiseSigma);

        scheduler.SetTimesteps(run.Steps);
        var expectedTimesteps = file.Load("timesteps").ToLongArray().Select(v => (int)v).ToArray();
        Assert.Equal(expectedTimesteps, scheduler.Timesteps.ToArray());

        bool cfg = Guidance.IsEnabled(run.Guidance);
        var guided = new float[latents.Length];
        double worst = 0, worstInput = 0;
        for (int i = 0; i < run.Steps; i++)
        {
            int t = scheduler.Timesteps[i];
            Assert.All(file.Load($"timestep_step{i}").ToLongArray(), v => Assert.Equal(t, v));

            // The transformer saw [latents; latents] under CFG, the latents alone without.
            var input = file.Load($"transformer_in_step{i}").ToFloatArray();
            var ourInput = cfg ? latents.Concat(latents).ToArray() : latents;
            worstInput = Math.Max(worstInput, Compare.AssertAbs(input, ourInput, Tolerance, $"{tag} transformer_in_step{i}"));

            var modelOut = file.Load($"transformer_out_step{i}").ToFloatArray();
            if (cfg)
            {
                double scale = Guidance.ScaleAt(run.Guidance, run.DynamicCfg, i, t, run.Steps);
                Guidance.Apply(modelOut, scale, guided);
            }
            else
            {
                Assert.Equal(latents.Length, modelOut.Length); // guidance 1: batch of one, no CFG
                modelOut.CopyTo(guided, 0);
            }

            scheduler.Step(i, guided, latents, latents, generator);
            double err = Compare.AssertAbs(file.Load($"latents_after_step{i}").ToFloatArray(), latents, Tolerance, $"{tag} latents_after_step{i} (t = {t})");
            output.WriteLine($"{tag} step {i} (t = {t}): latents max abs error {err:E2}");
            worst = Math.Max(worst, err);
        }
        output.WriteLine($"{tag}: {scheduler.Kind}, worst latents error {worst:E2}, worst transformer input error {worstInput:E2}");
    }

    [Fact]
    public void TensorPathEqualsHostPath()
    {
        // The stochastic DPM run through Guidance.Apply(Tensor) and the tensor Step: the same bits as the host path.
        var run = Find("panda_dpm_dyncfg");
        using var file = SafetensorsFile.Open(Path.Combine(run.Folder, "runs", run.Tag + ".safetensors"));
        var hostScheduler = SchedulerFor(run);
        var tensorScheduler = SchedulerFor(run);
        hostScheduler.SetTimesteps(run.Steps);
        tensorScheduler.SetTimesteps(run.Steps);
        var hostGenerator = new TorchGenerator(run.Seed);
        var tensorGenerator = new TorchGenerator(run.Seed);
        var shape = file.Entry("initial_latents").Shape;
        var hostLatents = hostGenerator.Randn(shape);
        var latents = Tensor.FromArray(tensorGenerator.Randn(shape), shape);
        try
        {
            var guided = new float[hostLatents.Length];
            for (int i = 0; i < run.Steps; i++)
            {
                double scale = Guidance.ScaleAt(run.Guidance, run.DynamicCfg, i, hostScheduler.Timesteps[i], run.Steps);
                Guidance.Apply(file.Load($"transformer_out_step{i}").ToFloatArray(), scale, guided);
                hostScheduler.Step(i, guided, hostLatents, hostLatents, hostGenerator);

                using var modelOut = file.Load($"transformer_out_step{i}");
                using var guidedTensor = Guidance.Apply(modelOut, scale);
                Assert.Equal([1, .. shape[1..]], guidedTensor.ShapeArray());
                TorchGeneratorTests.AssertBitExact(guided, guidedTensor.ToFloatArray(), $"guided output step {i}");
                var next = tensorScheduler.Step(i, guidedTensor, latents, tensorGenerator);
                latents.Dispose();
                latents = next;
                TorchGeneratorTests.AssertBitExact(hostLatents, latents.ToFloatArray(), $"latents after step {i}");
            }
        }
        finally
        {
            latents.Dispose();
        }
    }
}
