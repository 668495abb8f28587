using System.Text.Json;
using System.Text.RegularExpressions;
using CogVideoX.Cli;
using CogVideoX.Lab;
using CogVideoX.Lab.Runs;
using CogVideoX.Lab.Specs;

namespace CogVideoX.Tests.Lab;

/// <summary>
/// experiments/fast_modes.yaml as written, and a small version of it rendered on the tiny model in CI (2 prompts,
/// 6 steps, 9 frames of 32×48): the exact video rendered once per prompt, every mode compared with it, and the report's
/// table showing the mode and the time beside PSNR/SSIM.
/// </summary>
[Collection(WorkbenchProcesses.Name)]
public partial class FastModesStudyTests
{
    private static string SpecText => File.ReadAllText(Path.Combine(Fixtures.RepoRoot, "experiments", "fast_modes.yaml"));

    [Fact]
    public void TheStudyAsWrittenPlansEveryModeAgainstTheExactVideoRenderedOncePerPrompt()
    {
        var plan = StudyPlan.Expand(SpecParser.Load(Path.Combine(Fixtures.RepoRoot, "experiments", "fast_modes.yaml")));
        var stepCache = plan.Experiments.Single(e => e.Name == "step_cache");
        Assert.Equal(9 * 6, stepCache.Jobs.Count);
        // cache none with exact_steps 2 is the exact video: linked, not rendered again.
        Assert.Equal(9, stepCache.Jobs.Count(j => j.SameAs is not null));
        Assert.All(stepCache.Jobs.Where(j => !j.IsReference), j => Assert.NotNull(j.ReferenceName));
        Assert.Equal(["none", "teacache", "fbcache"], plan.Experiments.Single(e => e.Name == "thresholds").Jobs.Select(j => j.Settings.Cache));
    }

    [Fact]
    public void ASmallVersionRendersOnTheTinyModelAndTheReportPutsTimeBesidePsnrAndSsim()
    {
        var yaml = SpecText
            .Replace("model: 2b", $"model: \"{Fixtures.Path2b}\"", StringComparison.Ordinal)
            .Replace("steps: 50", "steps: 6", StringComparison.Ordinal)
            .Replace("frames: 49", "frames: 9", StringComparison.Ordinal)
            .Replace("height: 480", "height: 32", StringComparison.Ordinal)
            .Replace("width: 720", "width: 48", StringComparison.Ordinal)
            .Replace("device: auto", "device: cpu", StringComparison.Ordinal);
        yaml = NinePrompts().Replace(yaml, "prompts: [panda_guitar, oceano_balena]");
        var prompts = new[] { "panda_guitar", "oceano_balena" }
            .ToDictionary(p => p, p => File.ReadAllText(Path.Combine(Fixtures.RepoRoot, "prompts", p + ".txt")));
        using var study = new StudyFolder(yaml, prompts, "fast_modes");
        var run = CliProcess.RunOk(study.Root, "experiment", "run", study.SpecPath, "--renderer", RendererFactory.Pipeline, "--json");
        var summary = JsonSerializer.Deserialize(run.StdOut, LabRunJsonContext.Default.RunSummary)!;
        // step_cache: 2 prompts × 6, the exact_steps 2 exact video linked; thresholds: 3, its exact video linked too.
        Assert.Equal((15, 12, 3, 0), (summary.Total, summary.Rendered, summary.Linked, summary.Failed));

        var plan = StudyPlan.Expand(SpecParser.Load(study.SpecPath));
        foreach (var job in plan.Jobs)
        {
            var sidecar = VideoSidecar.TryLoad(job.ToVideoJob(study.Outputs).SidecarPath)!;
            Assert.Equal(job.Settings.Cache, sidecar.Settings.Cache);
            var reused = sidecar.Resolved["cache_reused_steps"];
            // TeaCache's published 2b polynomial reuses every middle step of the tiny random model (see docs/fast-modes.md).
            if (job.Settings.Cache == "teacache")
                Assert.Equal(job.Settings.ExactSteps == 2 ? "2,3" : "1,2,3,4", reused);
            if (job.Settings.Cache == "none") Assert.Equal("", reused);
        }

        var report = CliProcess.RunOk(study.Root, "report", study.Outputs);
        var html = File.ReadAllText(Path.Combine(study.Outputs, "fast_modes.report.html"));
        Assert.Contains(Path.Combine(study.Outputs, "fast_modes.report.html"), report.StdOut);
        foreach (var column in new[] { "fast mode", "time (s)", "PSNR (dB)", "SSIM", "denoise (s)" })
            Assert.Contains($">{column}</th>", html);
        Assert.Contains("<td class=\"text\">teacache 0.1, exact 2+2</td>", html);
        Assert.Contains("<td class=\"text\">fbcache 0.2, exact 1+1</td>", html);
        var metrics = CogVideoX.Lab.Metrics.MetricsStore.Load(study.Outputs, "fast_modes");
        var teacache = metrics.Videos.Single(v => v.Key.StartsWith("step_cache/", StringComparison.Ordinal)
            && v.Key.Contains("panda_guitar", StringComparison.Ordinal) && v.Key.Contains("teacache", StringComparison.Ordinal)
            && v.Key.Contains("exact_steps_0", StringComparison.Ordinal)).Value;
        Assert.NotNull(teacache.Difference);
        Assert.True(teacache.Difference!.Psnr is > 10 and < 200, $"PSNR {teacache.Difference.Psnr}");
    }

    [GeneratedRegex(@"prompts: \[panda_guitar, gatto_hacker[^\]]*\]", RegexOptions.Singleline)]
    private static partial Regex NinePrompts();
}
