using CogVideoX.Diffusion;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Diffusion;

/// <summary>
/// The schedulers against <c>golden/scheduler_cases.safetensors</c>: "ddim" is the 2b-style folder's
/// CogVideoXDDIMScheduler config (snr_shift_scale 3), "dpm" the 5b-style folder's CogVideoXDPMScheduler config
/// (snr_shift_scale 1), both v-prediction with zero-terminal-SNR rescaling and trailing spacing.
/// </summary>
public class SchedulerCaseTests(ITestOutputHelper output)
{
    private const double TrajectoryTolerance = 1e-5; // README: scheduler trajectories ≤ 1e-5 absolute

    private static string CasesFile => Fixtures.GoldenFile("scheduler_cases.safetensors");

    internal static SchedulerConfig ConfigOf(string name) => SchedulerConfig.Load(Path.Combine(
        name == "ddim" ? Fixtures.Path2b : Fixtures.Path5b, "scheduler", "scheduler_config.json"));

    private static IScheduler Create(string name, SchedulerConfig? config = null)
    {
        config ??= ConfigOf(name);
        return name == "ddim" ? new CogVideoXDdimScheduler(config) : new CogVideoXDpmScheduler(config);
    }

    [Theory]
    [InlineData("ddim")]
    [InlineData("dpm")]
    public void AlphasCumprodMatch(string name)
    {
        using var file = SafetensorsFile.Open(CasesFile);
        var expected = file.Load($"{name}_alphas_cumprod").ToFloatArray();
        var actual = Create(name).AlphasCumprod.ToArray().Select(v => (float)v).ToArray();
        double err = Compare.AssertAbs(expected, actual, TrajectoryTolerance, $"{name} alphas_cumprod");
        int differing = expected.Zip(actual).Count(p => p.First != p.Second);
        output.WriteLine($"{name} alphas_cumprod: max abs error {err:E2}, {differing} of {expected.Length} float32 values differ");
        Assert.Equal(0f, actual[^1]); // zero terminal SNR
    }

    public static TheoryData<string, string, int> TimestepCases()
    {
        var data = new TheoryData<string, string, int>();
        foreach (var name in new[] { "ddim", "dpm" })
        {
            foreach (int steps in new[] { 1, 10, 25, 50 }) data.Add(name, "", steps);
            foreach (var spacing in new[] { "linspace", "leading", "trailing" })
                foreach (int steps in new[] { 7, 25, 50 }) data.Add(name, spacing, steps);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(TimestepCases))]
    public void TimestepsAreIdentical(string name, string spacing, int steps)
    {
        using var file = SafetensorsFile.Open(CasesFile);
        string key = spacing.Length == 0 ? $"{name}_timesteps_{steps}" : $"{name}_{spacing}_timesteps_{steps}";
        var expected = file.Load(key).ToLongArray().Select(v => (int)v).ToArray();
        var config = ConfigOf(name);
        if (spacing.Length > 0) config = config with { TimestepSpacing = spacing };
        var scheduler = Create(name, config);
        scheduler.SetTimesteps(steps);
        Assert.Equal(expected, scheduler.Timesteps.ToArray());
        Assert.Equal(steps, scheduler.NumInferenceSteps);
    }

    [Theory]
    [InlineData("ddim")]
    [InlineData("dpm")]
    public void FiveStepTrajectoryMatches(string name)
    {
        using var file = SafetensorsFile.Open(CasesFile);
        var scheduler = Create(name);
        scheduler.SetTimesteps(5);
        // The DPM trajectory draws its noise from torch.Generator().manual_seed(21); DDIM draws none.
        var generator = new TorchGenerator(21);
        var latents = file.Load($"{name}_x0").ToFloatArray();
        double worst = 0;
        for (int i = 0; i < 5; i++)
        {
            var modelOut = file.Load($"{name}_model_out{i}").ToFloatArray();
            scheduler.Step(i, modelOut, latents, latents, generator);
            var expected = file.Load($"{name}_x{i + 1}").ToFloatArray();
            double err = Compare.AssertAbs(expected, latents, TrajectoryTolerance, $"{name} x{i + 1} (timestep {scheduler.Timesteps[i]})");
            output.WriteLine($"{name} x{i + 1} (t = {scheduler.Timesteps[i]}): max abs error {err:E2}");
            worst = Math.Max(worst, err);
        }
        output.WriteLine($"{name} trajectory worst: {worst:E2}");
    }
}
