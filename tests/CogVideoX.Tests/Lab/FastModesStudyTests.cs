using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using CogVideoX.Cli;
using CogVideoX.Lab;
using CogVideoX.Lab.Report;
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
        Assert.Equal(["step_cache", "thresholds", "quantized", "fastest"], plan.Experiments.Select(e => e.Name));
        Assert.All(plan.Jobs.Where(j => !j.IsReference), j => Assert.NotNull(j.ReferenceName));
        var byOutput = plan.Jobs.ToDictionary(j => j.Output);
        // Every exact video of a prompt is the step_cache reference of that prompt, rendered once.
        var exactVideos = plan.Jobs.Where(j => j.SameAs is null && ReportBuilder.FastMode(j.Settings) == "exact").ToList();
        Assert.Equal(9, exactVideos.Count);
        Assert.All(exactVideos, j => Assert.True(j.IsReference && j.Experiment == "step_cache"));
        Assert.All(plan.Jobs.Where(j => j.IsReference), j => Assert.Equal("exact", ReportBuilder.FastMode(j.Settings)));
        // A linked job names an earlier video that makes the same video, and that one is rendered.
        Assert.All(plan.Jobs.Where(j => j.SameAs is not null), j =>
        {
            var original = byOutput[j.SameAs!];
            Assert.Null(original.SameAs);
            Assert.True(original.Index < j.Index);
            Assert.True(j.Settings.DefinesSameVideoAs(original.Settings));
        });

        var stepCache = plan.Experiments.Single(e => e.Name == "step_cache");
        Assert.Equal(9 * 6, stepCache.Jobs.Count);
        // cache none with exact_steps 2 is the exact video: linked, not rendered again.
        Assert.Equal(9, stepCache.Jobs.Count(j => j.SameAs is not null));
        Assert.Equal(["none", "teacache", "fbcache"], plan.Experiments.Single(e => e.Name == "thresholds").Jobs.Select(j => j.Settings.Cache));

        // quantized: sage8, fp8 and both, with 0 and 2 exact steps, beside the exact video (own/exact, exact_steps 0 and 2).
        var quantized = plan.Experiments.Single(e => e.Name == "quantized");
        Assert.Equal(9 * 8, quantized.Jobs.Count);
        Assert.Equal(
            ["exact", "exact", "fp8 linears", "fp8 linears, exact 2+2", "sage8 attention", "sage8 attention, exact 2+2",
             "sage8 attention + fp8 linears", "sage8 attention + fp8 linears, exact 2+2"],
            quantized.Jobs.Where(j => j.Settings.PromptName == "oceano_balena").Select(j => ReportBuilder.FastMode(j.Settings)));
        // Both exact jobs of each prompt are linked to step_cache's reference of that prompt.
        var quantizedLinks = quantized.Jobs.Where(j => j.SameAs is not null).ToList();
        Assert.Equal(2 * 9, quantizedLinks.Count);
        Assert.All(quantizedLinks, j => Assert.Equal($"step_cache/{j.Settings.PromptName}_cache_none_exact_steps_0.mp4", j.SameAs));
        Assert.All(quantized.Jobs.Where(j => !j.IsReference), j => Assert.Equal($"{j.Settings.PromptName}_attention_own_linear_exact_exact_steps_0", j.ReferenceName));

        // fastest: TeaCache 0.2 + sage8 + fp8 and its parts; only the three new combinations with the cache render.
        var fastest = plan.Experiments.Single(e => e.Name == "fastest");
        Assert.Equal(
            ["exact", "fp8 linears", "sage8 attention", "sage8 attention + fp8 linears", "teacache 0.2, exact 1+1",
             "teacache 0.2 + fp8 linears", "teacache 0.2 + sage8 attention", "teacache 0.2 + sage8 attention + fp8 linears"],
            fastest.Jobs.Select(j => ReportBuilder.FastMode(j.Settings)));
        Assert.Equal(
            ["step_cache/panda_guitar_cache_none_exact_steps_0.mp4", "quantized/panda_guitar_attention_own_linear_fp8_exact_steps_0.mp4",
             "quantized/panda_guitar_attention_sage8_linear_exact_exact_steps_0.mp4", "quantized/panda_guitar_attention_sage8_linear_fp8_exact_steps_0.mp4",
             "thresholds/cache_teacache_cache_threshold_0.2.mp4", null, null, null],
            fastest.Jobs.Select(j => j.SameAs));

        // What the header says: 137 videos, 104 rendered, 33 linked.
        Assert.Equal((137, 104, 33), (plan.Jobs.Count(), plan.Jobs.Count(j => j.SameAs is null), plan.Jobs.Count(j => j.SameAs is not null)));
        Assert.Contains("137 videos, 104 rendered and 33 linked", SpecText);
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
        // 8-bit attention and FP8 linears are CPU emulations (slow): the quantized experiment renders one prompt here.
        yaml = QuantizedPrompts().Replace(yaml, "${head}[panda_guitar]");
        yaml = NinePrompts().Replace(yaml, "prompts: [panda_guitar, oceano_balena]");
        var prompts = new[] { "panda_guitar", "oceano_balena" }
            .ToDictionary(p => p, p => File.ReadAllText(Path.Combine(Fixtures.RepoRoot, "prompts", p + ".txt")));
        using var study = new StudyFolder(yaml, prompts, "fast_modes");
        var run = CliProcess.RunOk(study.Root, "experiment", "run", study.SpecPath, "--renderer", RendererFactory.Pipeline, "--json");
        var summary = JsonSerializer.Deserialize(run.StdOut, LabRunJsonContext.Default.RunSummary)!;
        // step_cache: 2 prompts × 6, the exact_steps 2 exact video linked; thresholds: 3, its exact video linked too;
        // quantized: 8, both exact videos linked; fastest: 8, all but the 3 new combinations with the cache linked.
        Assert.Equal((31, 21, 10, 0), (summary.Total, summary.Rendered, summary.Linked, summary.Failed));

        var plan = StudyPlan.Expand(SpecParser.Load(study.SpecPath));
        var changed = new Dictionary<string, bool>();
        foreach (var job in plan.Jobs)
        {
            var sidecar = VideoSidecar.TryLoad(job.ToVideoJob(study.Outputs).SidecarPath)!;
            Assert.True(sidecar.Settings.DefinesSameVideoAs(job.Settings), job.Id);
            Assert.Equal(job.SameAs, sidecar.SameAs);
            if (job.SameAs is null)
            {
                Assert.Equal((job.Settings.Cache, job.Settings.Attention, job.Settings.Linear), (sidecar.Settings.Cache, sidecar.Settings.Attention, sidecar.Settings.Linear));
            }
            bool sage8 = job.Settings.Attention == "sage8", fp8 = job.Settings.Linear == "fp8";
            Assert.Equal(sage8 ? "sage8" : "exact", sidecar.Resolved["attention"]);
            Assert.Equal(fp8 ? "fp8" : "exact", sidecar.Resolved["linear"]);
            int exactSteps = job.Settings.Cache != "none" ? Math.Max(1, job.Settings.ExactSteps) : sage8 || fp8 ? job.Settings.ExactSteps : 0;
            Assert.Equal(exactSteps.ToString(CultureInfo.InvariantCulture), sidecar.Resolved["exact_steps"]);
            var reused = sidecar.Resolved["cache_reused_steps"];
            // TeaCache's published 2b polynomial reuses every middle step of the tiny random model (see docs/fast-modes.md).
            if (job.Settings.Cache == "teacache")
                Assert.Equal(job.Settings.ExactSteps == 2 ? "2,3" : "1,2,3,4", reused);
            if (job.Settings.Cache == "none") Assert.Equal("", reused);
            // 8-bit attention and FP8 linears change every video; a cache only where it reuses a step (fbcache 0.05 reuses none here).
            changed[job.Id] = sage8 || fp8 || reused.Length > 0;
        }

        var report = CliProcess.RunOk(study.Root, "report", study.Outputs);
        var html = File.ReadAllText(Path.Combine(study.Outputs, "fast_modes.report.html"));
        Assert.Contains(Path.Combine(study.Outputs, "fast_modes.report.html"), report.StdOut);
        var rows = RunsTable(html);
        // Every video is a row naming its fast mode beside its time, PSNR and SSIM to the exact video of its prompt.
        Assert.Equal(plan.Jobs.Count(), rows.Count);
        foreach (var job in plan.Jobs)
        {
            var row = rows.Single(r => r["experiment"] == job.Experiment && r["video"] == job.Name);
            Assert.Equal(ReportBuilder.FastMode(job.Settings), row["fast mode"]);
            Assert.True(double.TryParse(row["time (s)"], CultureInfo.InvariantCulture, out _), $"{job.Id} time '{row["time (s)"]}'");
            Assert.True(double.TryParse(row["denoise (s)"], CultureInfo.InvariantCulture, out _), $"{job.Id} denoise '{row["denoise (s)"]}'");
            Assert.True(double.TryParse(row["SSIM"], CultureInfo.InvariantCulture, out _), $"{job.Id} SSIM '{row["SSIM"]}'");
            if (!changed[job.Id]) Assert.Equal("identical", row["PSNR (dB)"]);
            else Assert.True(double.TryParse(row["PSNR (dB)"], CultureInfo.InvariantCulture, out var psnr) && psnr is > 10 and < 200, $"{job.Id} PSNR '{row["PSNR (dB)"]}'");
        }
        foreach (var mode in new[]
        {
            "teacache 0.1, exact 2+2", "fbcache 0.2, exact 1+1", "sage8 attention", "fp8 linears, exact 2+2",
            "sage8 attention + fp8 linears", "sage8 attention + fp8 linears, exact 2+2", "teacache 0.2 + sage8 attention + fp8 linears",
        })
            Assert.Contains($"<td class=\"text\">{mode}</td>", html);
    }

    /// <summary>The report's "All runs" table: each row as column heading → cell text.</summary>
    private static List<Dictionary<string, string>> RunsTable(string html)
    {
        var table = Regex.Match(html, "<table id=\"runs-table\">(.*?)</table>", RegexOptions.Singleline).Groups[1].Value;
        static string Text(string cell) => System.Net.WebUtility.HtmlDecode(Regex.Replace(cell, "<[^>]+>", ""));
        var head = Regex.Matches(table, "<th[^>]*>(.*?)</th>", RegexOptions.Singleline).Select(m => Text(m.Groups[1].Value)).ToList();
        var body = table[table.IndexOf("<tbody>", StringComparison.Ordinal)..];
        return Regex.Matches(body, "<tr[^>]*>(.*?)</tr>", RegexOptions.Singleline)
            .Select(row => Regex.Matches(row.Groups[1].Value, "<td[^>]*>(.*?)</td>", RegexOptions.Singleline).Select(m => Text(m.Groups[1].Value)).ToList())
            .Select(cells => head.Zip(cells).ToDictionary(p => p.First, p => p.Second))
            .ToList();
    }

    [GeneratedRegex(@"prompts: \[panda_guitar, gatto_hacker[^\]]*\]", RegexOptions.Singleline)]
    private static partial Regex NinePrompts();

    [GeneratedRegex(@"(?<head>\n  quantized:.*?prompts: )\[[^\]]*\]", RegexOptions.Singleline)]
    private static partial Regex QuantizedPrompts();
}
