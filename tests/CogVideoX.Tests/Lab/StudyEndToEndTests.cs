using System.Text.Json;
using CogVideoX.Cli;
using CogVideoX.Lab;
using CogVideoX.Lab.Runs;
using CogVideoX.Lab.Specs;

namespace CogVideoX.Tests.Lab;

/// <summary>
/// The CI end-to-end run of a reduced study on the tiny fixture model (2 steps), through the CLI, then its report.
/// </summary>
/// <remarks>
/// The renderer comes from <see cref="RendererFactory"/>: the synthetic one until the pipeline renderer is merged and
/// <see cref="RendererFactory.PipelineAvailable"/> turns true; then this same test runs CogVideoX on the fixture
/// model with no change here.
/// </remarks>
[Collection(WorkbenchProcesses.Name)]
public class StudyEndToEndTests
{
    private static string RendererKind => RendererFactory.PipelineAvailable ? RendererFactory.Pipeline : RendererFactory.Synthetic;

    [Fact]
    public void AReducedStudyOnTheTinyModelRunsAndReports()
    {
        var yaml = $$"""
            name: small
            description: The reference study, reduced to the tiny fixture model and 2 steps.
            output_dir: ../outputs
            prompt_dir: ../prompts
            defaults:
              model: "{{Fixtures.Path2b}}"
              steps: 2
              guidance: 6
              seed: 42
              frames: 9
              height: 32
              width: 48
              device: cpu
            experiments:
              baseline: { prompts: [panda, whale] }
              exp1_guidance_scale: { prompts: [panda], vary: { guidance: [1, 6] }, reference: 6 }
              exp4_frames: { prompts: [panda], vary: { frames: [9, 17] }, reference: 9 }
            """;
        using var study = new StudyFolder(yaml);
        var run = CliProcess.RunOk(study.Root, "experiment", "run", study.SpecPath, "--renderer", RendererKind, "--json");
        var summary = JsonSerializer.Deserialize(run.StdOut, LabRunJsonContext.Default.RunSummary)!;
        // panda at the defaults is the baseline and the reference of both ablations: rendered once, linked twice.
        Assert.Equal((6, 4, 2, 0), (summary.Total, summary.Rendered, summary.Linked, summary.Failed));
        var baseline = File.ReadAllBytes(Path.Combine(study.Outputs, "baseline", "panda.mp4"));
        foreach (var same in new[] { "exp1_guidance_scale/guidance_6.mp4", "exp4_frames/frames_9.mp4" })
        {
            Assert.Equal(baseline, File.ReadAllBytes(Path.Combine(study.Outputs, same)));
            var line = LabAssert.Finished(study.Outputs)[same].Single();
            Assert.Equal(("linked", "baseline/panda.mp4"), (line.Event, line.SameAs));
            Assert.Contains(line.Linked, new[] { "hard link", "copy" });
        }

        var plan = StudyPlan.Expand(SpecParser.Load(study.SpecPath));
        foreach (var job in plan.Jobs)
        {
            var vj = job.ToVideoJob(study.Outputs);
            Assert.True(VideoSidecar.IsComplete(vj), job.Id);
            var sidecar = VideoSidecar.TryLoad(vj.SidecarPath)!;
            Assert.Equal(Fixtures.Path2b, sidecar.Settings.Model);
            Assert.Equal(job.Settings.Frames, sidecar.FrameCount);
            Assert.Equal(RendererKind == RendererFactory.Synthetic, sidecar.ModelIdentity == SyntheticRenderer.Identity);
        }

        // The report, from the output folder alone.
        var report = CliProcess.RunOk(study.Root, "report", study.Outputs);
        var htmlPath = Path.Combine(study.Outputs, "small.report.html");
        Assert.Contains(htmlPath, report.StdOut);
        var html = File.ReadAllText(htmlPath);
        foreach (var job in plan.Jobs) Assert.Contains($"src=\"{job.Output}\"", html);
        Assert.Contains("exp1_guidance_scale", report.StdOut);
        var metrics = CogVideoX.Lab.Metrics.MetricsStore.Load(study.Outputs, "small");
        Assert.Equal(6, metrics.Videos.Count);
        Assert.NotNull(metrics.Videos["exp1_guidance_scale/guidance_1.mp4"].Difference);
        Assert.Null(metrics.Videos["exp1_guidance_scale/guidance_6.mp4"].Difference);

        // From the spec too, recomputing every metric from the MP4s.
        var again = CliProcess.RunOk(study.Root, "report", study.SpecPath, "--recompute-metrics", "--quiet");
        Assert.Equal(htmlPath, again.StdOut.Trim());
    }
}
