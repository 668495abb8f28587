using CogVideoX.Diffusion;
using CogVideoX.Lab;
using CogVideoX.Media;

namespace CogVideoX.Tests.Pipeline;

/// <summary>The renderer the experiment runner and <c>generate</c> share: models kept across jobs, files only when done.</summary>
public class PipelineRendererTests
{
    private static GenerationSettings Tiny(string prompt, long seed = 1) => new()
    {
        Model = Fixtures.Path2b,
        Prompt = prompt,
        Steps = 1,
        Frames = 9,
        Height = 32,
        Width = 48,
        Seed = seed,
        Memory = "full",
    };

    [Fact]
    public void ASweepLoadsTheModelsOnceAndEachJobHasItsVideoAndSidecar()
    {
        using var dir = new TempDir();
        using var renderer = new PipelineRenderer();
        var jobs = new[]
        {
            new VideoJob("sweep", "a", dir.File("sweep", "a.mp4"), Tiny("A panda.", 1)),
            new VideoJob("sweep", "b", dir.File("sweep", "b.mp4"), Tiny("A whale.", 2)),
            new VideoJob("sweep", "c", dir.File("sweep", "c.mp4"), Tiny("A whale.", 2) with { Guidance = 1 }),
        };
        var results = jobs.Select(j => renderer.Render(j, null, CancellationToken.None)).ToList();
        Assert.Contains(PipelineStages.LoadTransformer, results[0].Sidecar.TimingsSeconds.Keys);
        foreach (var later in results.Skip(1))
            Assert.DoesNotContain(later.Sidecar.TimingsSeconds.Keys, k => k.StartsWith("load_", StringComparison.Ordinal));
        foreach (var job in jobs) Assert.True(VideoSidecar.IsComplete(job), job.Name);
        Assert.NotEqual(results[0].Sidecar.VideoSha256, results[1].Sidecar.VideoSha256);

        // Another dtype needs other weights: the pipeline is replaced and loads again.
        var f16 = new VideoJob("sweep", "d", dir.File("sweep", "d.mp4"), Tiny("A whale.", 2) with { DType = "f16" });
        var d = renderer.Render(f16, null, CancellationToken.None);
        Assert.Contains(PipelineStages.LoadTransformer, d.Sidecar.TimingsSeconds.Keys);
        Assert.Equal("F16", d.Sidecar.Resolved["dtype"]);
    }

    [Fact]
    public void ACancelledRenderLeavesNoFiles()
    {
        using var dir = new TempDir();
        using var renderer = new PipelineRenderer();
        using var cts = new CancellationTokenSource();
        var job = new VideoJob("x", "v", dir.File("v.mp4"), Tiny("A panda.") with { Steps = 3 });
        var progress = new Inline(p =>
        {
            if (p.Stage == PipelineStages.Denoise && p.Step == 1) cts.Cancel();
        });
        Assert.ThrowsAny<OperationCanceledException>(() => renderer.Render(job, progress, cts.Token));
        Assert.Empty(Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories));

        // The renderer is still usable.
        var result = renderer.Render(job, null, CancellationToken.None);
        Assert.Equal(9, VideoProbe.Probe(job.OutputPath).FrameCount);
        Assert.Equal(9, result.Frames.Count);
    }

    [Fact]
    public void DefaultsAreResolvedAndSaidPerModel()
    {
        using var dir = new TempDir();
        using var renderer = new PipelineRenderer();
        var notes = new List<RenderNote>();
        var job = new VideoJob("x", "v", dir.File("v.mp4"), Tiny("A panda.") with { Model = Fixtures.Path5b, Frames = 13, Memory = "auto" });
        var result = renderer.Render(job, null, CancellationToken.None, notes.Add);
        var text = notes.Select(n => (n.IsWarning ? "warning: " : "") + n.Text).ToList();
        Assert.Contains(text, t => t.StartsWith("dtype: F32 — the CPU backend computes in float32 (this model's GPU default is BF16", StringComparison.Ordinal));
        Assert.Contains(text, t => t.StartsWith("scheduler: dpm", StringComparison.Ordinal));
        Assert.Contains(text, t => t.StartsWith("dynamic CFG: on", StringComparison.Ordinal));
        Assert.Contains(text, t => t.StartsWith("memory: full (auto:", StringComparison.Ordinal));
        Assert.Contains(text, t => t.StartsWith("warning: frames: 13", StringComparison.Ordinal));
        var r = result.Render.Sidecar.Resolved;
        Assert.Equal(("dpm", "true", "F32", "16", "full"), (r["scheduler"], r["dynamic_cfg"], r["dtype"], r["frames_decoded"], r["memory"]));
        Assert.Equal(16, result.Render.Sidecar.FrameCount);
        Assert.Equal(13, result.Render.Sidecar.Settings.Frames); // the settings as given
    }

    private sealed class Inline(Action<RenderProgress> report) : IProgress<RenderProgress>
    {
        public void Report(RenderProgress value) => report(value);
    }
}
