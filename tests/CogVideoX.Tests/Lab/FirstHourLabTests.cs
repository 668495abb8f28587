using System.Text.Json;
using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Lab;
using CogVideoX.Lab.Metrics;
using CogVideoX.Lab.Report;
using CogVideoX.Lab.Runs;
using CogVideoX.Lab.Specs;
using SkiaSharp;

namespace CogVideoX.Tests.Lab;

/// <summary>Issue 23 in the workbench: shared settings rendered once, runs that cannot work stop early, readable JSON, an honest report.</summary>
public class FirstHourLabTests
{
    private static (StudyPlan Plan, RunOptions Options) Load(StudyFolder study, bool synthetic = true)
    {
        var spec = SpecParser.Load(study.SpecPath);
        return (StudyPlan.Expand(spec).WithDevice("cpu"), new RunOptions { OutputDir = spec.OutputDir, Synthetic = synthetic });
    }

    [Fact]
    public void IdenticalSettingsAreRenderedOnceAndEveryOtherPlaceGetsTheSameFile()
    {
        using var study = new StudyFolder(StudyFolder.SharedSpec);
        var (plan, options) = Load(study);
        Assert.Equal([null, null, "baseline/panda.mp4", null, null, "baseline/panda.mp4"], plan.Jobs.Select(j => j.SameAs));

        var events = new List<RunEvent>();
        var summary = new ExperimentRunner(plan, options).Run(new SyntheticRenderer(), events.Add, CancellationToken.None);
        Assert.Equal((6, 4, 2, 0), (summary.Total, summary.Rendered, summary.Linked, summary.Failed));
        Assert.Equal(4, events.Count(e => e.Kind == "start"));
        var original = Path.Combine(options.OutputDir, "baseline", "panda.mp4");
        foreach (var same in new[] { "guidance/guidance_6", "steps/steps_2" })
        {
            var video = Path.Combine(options.OutputDir, same + ".mp4");
            Assert.Equal(File.ReadAllBytes(original), File.ReadAllBytes(video));
            var sidecar = VideoSidecar.TryLoad(Path.ChangeExtension(video, ".json"))!;
            Assert.Equal(("baseline/panda.mp4", Path.GetFileName(video)), (sidecar.SameAs, sidecar.VideoFile));
            Assert.Contains(events, e => e.Kind == "linked" && e.Job == same && e.Message!.StartsWith("same settings as baseline/panda: ", StringComparison.Ordinal));
        }
        var linked = LabAssert.Finished(options.OutputDir)["guidance/guidance_6.mp4"].Single();
        Assert.Equal(("linked", "baseline/panda.mp4"), (linked.Event, linked.SameAs));
        Assert.Equal(SharedFile.HardLink, linked.Linked);
        Assert.All(plan.Jobs, j => Assert.True(VideoSidecar.IsComplete(j.ToVideoJob(options.OutputDir)), j.Id));
        LabAssert.Clean(options.OutputDir);

        // Measured once too: the same video against the same reference is decoded and measured once for the report.
        var measured = new List<string>();
        var metrics = MetricsStore.Refresh(plan, options.OutputDir, log: measured.Add);
        Assert.Equal(["metrics: baseline/panda.mp4", "metrics: guidance/guidance_1.mp4", "metrics: guidance/guidance_12.mp4", "metrics: steps/steps_1.mp4"], measured);
        Assert.Equal(6, metrics.Videos.Count);
        Assert.Equal(metrics.Videos["baseline/panda.mp4"], metrics.Videos["steps/steps_2.mp4"]);
        Assert.Equal("steps/steps_2.mp4", metrics.Videos["steps/steps_1.mp4"].Reference);

        // Everything is complete for the next run; a deleted link is linked again, not rendered.
        var again = new ExperimentRunner(plan, options).Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        Assert.Equal((0, 0, 6), (again.Rendered, again.Linked, again.AlreadyComplete));
        File.Delete(Path.Combine(options.OutputDir, "steps", "steps_2.mp4"));
        var relink = new ExperimentRunner(plan, options with { RunId = RunOptions.NewRunId() }).Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        Assert.Equal((0, 1, 5), (relink.Rendered, relink.Linked, relink.AlreadyComplete));
    }

    [Fact]
    public void AShardWhoseOriginalIsInAnotherShardRendersItsOwnCopy()
    {
        using var study = new StudyFolder(StudyFolder.SharedSpec);
        var (plan, options) = Load(study);
        // Shard 1/2 holds jobs 1, 3, 5; job 5 shares settings with job 0 (shard 0), which nobody rendered yet.
        var summary = new ExperimentRunner(plan, options with { Shard = new Shard(1, 2) }).Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        Assert.Equal((3, 3, 0), (summary.Total, summary.Rendered, summary.Linked));
        // Shard 0 then links job 2 to its own job 0 and finds nothing else to do.
        var other = new ExperimentRunner(plan, options with { Shard = new Shard(0, 2) }).Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        Assert.Equal((3, 2, 1), (other.Total, other.Rendered, other.Linked));
    }

    [Fact]
    public void ARunWhoseFirstVideosAllFailTheSameWayStopsWithOneMessage()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var (plan, options) = Load(study);
        var events = new List<RunEvent>();
        var e = Assert.Throws<CogVideoXException>(() =>
            new ExperimentRunner(plan, options).Run(new BrokenRenderer(), events.Add, CancellationToken.None));
        Assert.StartsWith("stopped after the first 3 videos failed the same way (the others would too): model folder missing (test).", e.Message);
        Assert.Equal(3, events.Count(ev => ev.Kind == "failed"));
        Assert.Equal(3, Manifest.For(options.OutputDir, "small").Read().Records.Count(r => r.Event == "failed"));
    }

    [Fact]
    public void SidecarsAreWrittenAsPeopleReadThemAndOldOnesStillRead()
    {
        using var dir = new TempDir();
        var job = new VideoJob("t", "v", dir.File("v.mp4"), new GenerationSettings
        {
            Prompt = "A cat + a dog, \"quoted\", l'été",
            Steps = 1,
            Frames = 5,
            Height = 32,
            Width = 48,
            Device = "cpu",
            DType = "f16",
        });
        new SyntheticRenderer().Render(job, null, CancellationToken.None);
        var json = File.ReadAllText(job.SidecarPath);
        Assert.Contains("\"dtype\": \"f16\"", json);
        Assert.DoesNotContain("d_type", json);
        Assert.Contains("A cat + a dog, \\\"quoted\\\", l'été", json);
        Assert.DoesNotContain("\\u", json);
        Assert.Contains("\"frames_decoded\": 5", json); // a number, not "5"
        Assert.Equal("5", VideoSidecar.TryLoad(job.SidecarPath)!.Resolved["frames_decoded"]);

        // A sidecar from before: "d_type", resolved values as strings.
        var old = json.Replace("\"dtype\": \"f16\"", "\"d_type\": \"f16\"").Replace("\"frames_decoded\": 5", "\"frames_decoded\": \"5\"");
        File.WriteAllText(job.SidecarPath, old);
        var read = VideoSidecar.TryLoad(job.SidecarPath)!;
        Assert.Equal(("f16", "5"), (read.Settings.DType, read.Resolved["frames_decoded"]));
        Assert.True(VideoSidecar.IsComplete(job));

        // The converter: whole numbers and booleans typed, everything else (leading zeros, decimals, lists) text.
        using var doc = JsonDocument.Parse(JsonSerializer.Serialize(new VideoSidecar
        {
            Resolved = new() { ["a"] = "220", ["b"] = "false", ["c"] = "007", ["d"] = "0.5", ["e"] = "999,979", ["f"] = "-3" },
        }, LabJsonContext.Readable.VideoSidecar));
        var r = doc.RootElement.GetProperty("resolved");
        Assert.Equal((JsonValueKind.Number, JsonValueKind.False, JsonValueKind.String, JsonValueKind.String, JsonValueKind.String, JsonValueKind.Number),
            (r.GetProperty("a").ValueKind, r.GetProperty("b").ValueKind, r.GetProperty("c").ValueKind, r.GetProperty("d").ValueKind, r.GetProperty("e").ValueKind, r.GetProperty("f").ValueKind));
    }

    [Fact]
    public void TheDefaultsOfAVideoAreWrittenOnce()
    {
        var settings = new GenerationSettings();
        var request = new GenerationRequest();
        Assert.Equal((GenerationDefaults.Steps, GenerationDefaults.Guidance, GenerationDefaults.Frames, GenerationDefaults.Seed, GenerationDefaults.Height, GenerationDefaults.Width),
            (settings.Steps, settings.Guidance, settings.Frames, settings.Seed, settings.Height, settings.Width));
        Assert.Equal((settings.Steps, settings.Guidance, settings.Frames, settings.Seed, settings.Height, settings.Width),
            (request.Steps, request.Guidance, request.Frames, request.Seed, request.Height, request.Width));
        Assert.Equal((GenerationDefaults.Fps, "auto"), (settings.Fps, settings.Device));
        Assert.Equal("decoding the latents", PipelineStages.Describe(PipelineStages.VaeDecode));
        Assert.Equal("writing the MP4", PipelineStages.Describe(PipelineStages.EncodeVideo));
    }

    [Fact]
    public void SlantedChartLabelsAreNotCutAtTheEdges()
    {
        using var dir = new TempDir();
        string[] prompts = ["panda_guitar", "gatto_hacker", "samurai_pioggia", "astronauta_luna", "ronaldo_pizza", "persona_panino", "cane_parco", "citta_futuristica", "oceano_balena"];
        var path = dir.File("chart.png");
        Charts.SavePng(new ChartSpec
        {
            Title = "sharpness per prompt",
            XLabel = "prompt",
            YLabel = "sharpness",
            Series = [new ChartSeries("sharpness", prompts.Select((_, i) => ((double)i, 10.0 + i)).ToList())],
            Categories = prompts,
            FromZero = true,
        }, path);
        using var image = SKBitmap.Decode(path);
        // Nothing dark touches the image's border: a label cut by the edge would.
        for (int y = 0; y < image.Height; y++)
            foreach (var x in new[] { 0, 1, image.Width - 2, image.Width - 1 })
                Assert.True(image.GetPixel(x, y).Red > 200, $"dark pixel at ({x}, {y})");
        for (int x = 0; x < image.Width; x++)
            foreach (var y in new[] { image.Height - 2, image.Height - 1 })
                Assert.True(image.GetPixel(x, y).Red > 200, $"dark pixel at ({x}, {y})");
        Assert.True(image.Height > Charts.Height, "the image grows to hold upright labels");
    }

    [Fact]
    public void FindingsDoNotStateSingleTimingsOrInfiniteDecibels()
    {
        using var study = new StudyFolder(ReportSpec);
        var (plan, options) = Load(study);
        new ExperimentRunner(plan, options).Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        var result = ReportBuilder.Build(plan, options.OutputDir);
        var sentences = string.Join("\n", result.Findings.Select(f => f.Sentence));
        // One video per value: its time is noise (the first also loads the models), not a finding.
        Assert.DoesNotContain("as long", sentences);
        Assert.DoesNotContain("faster", sentences);
        Assert.DoesNotContain("∞", sentences);
        Assert.Contains("every video is identical to the reference (dtype f32), pixel for pixel", sentences);
        var html = File.ReadAllText(result.HtmlPath);
        Assert.DoesNotContain("∞", html);
        // A chart with one point shows nothing: frames 17 is the only PSNR of its experiment, so there is no PSNR chart.
        Assert.DoesNotContain("chart_frames_psnr", html);
        Assert.Contains("chart_guidance_psnr_vs_guidance", html);
    }

    /// <summary>SharedSpec plus a dtype ablation (test patterns ignore it: the same pixels, PSNR ∞) and a frames ablation (one comparable video).</summary>
    public const string ReportSpec = StudyFolder.SharedSpec + """

          dtype:
            prompts: [whale]
            vary: { dtype: [f32, f16] }
            reference: f32
          frames:
            prompts: [whale]
            vary: { frames: [9, 17] }
            reference: 9
        """;

    private sealed class BrokenRenderer : IVideoRenderer
    {
        public RenderResult Render(VideoJob job, IProgress<RenderProgress>? progress, CancellationToken cancellation) =>
            throw new CogVideoXException("model folder missing (test)");
    }
}
