using System.Security.Cryptography;
using CogVideoX.Engine;
using CogVideoX.Lab;
using CogVideoX.Lab.Runs;
using CogVideoX.Lab.Specs;
using CogVideoX.Media;

namespace CogVideoX.Tests.Lab;

/// <summary>
/// The video and its sidecar as the renderers write them (<see cref="VideoOutput"/>): a consistent, verified pair
/// or nothing new — on a full disk, a damaged encode, a sidecar path that holds someone else's file, or after a kill.
/// </summary>
public class OutputPairTests
{
    private static VideoJob Job(string path, long seed = 1) => new("x", Path.GetFileNameWithoutExtension(path), path, new GenerationSettings
    {
        Model = "2b",
        Prompt = "A panda.",
        Steps = 1,
        Frames = 5,
        Height = 32,
        Width = 48,
        Seed = seed,
        Device = "cpu",
    });

    private static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    [Fact]
    public void AFullDiskAtTheSidecarLeavesTheEarlierPairAsItWas()
    {
        using var dir = new TempDir();
        var renderer = new SyntheticRenderer();
        var job = Job(dir.File("v.mp4"));
        renderer.Render(job, null, CancellationToken.None);
        var (video, sidecar) = (Sha(job.OutputPath), Sha(job.SidecarPath));

        CogVideoXException e;
        using (FaultyDisk.FullOn(".json"))
            e = Assert.Throws<CogVideoXException>(() => renderer.Render(Job(job.OutputPath, seed: 2), null, CancellationToken.None));
        Assert.StartsWith($"disk full: could not write the sidecar {job.SidecarPath} (no space left on the device of {dir.Path})", e.Message);
        // The new video was complete, but without its sidecar it must not replace the old one.
        Assert.Equal((video, sidecar), (Sha(job.OutputPath), Sha(job.SidecarPath)));
        Assert.True(VideoSidecar.IsComplete(job));
        Assert.Equal(["v.json", "v.mp4"], Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void ATruncatedEncodeLeavesNoVideoAndNoSidecar()
    {
        using var dir = new TempDir();
        var job = Job(dir.File("out", "v.mp4"));
        CogVideoXException e;
        using (FaultyDisk.TruncatingEncodes())
            e = Assert.Throws<CogVideoXException>(() => new SyntheticRenderer().Render(job, null, CancellationToken.None));
        Assert.Contains($"the encoded video {job.OutputPath} came out incomplete and was not kept", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public void ASidecarPathHoldingAnotherFileIsRefusedBeforeAnyWork()
    {
        using var dir = new TempDir();
        const string modelIndex = """{ "_class_name": "CogVideoXPipeline", "_diffusers_version": "0.30.0" }""";
        File.WriteAllText(dir.File("model_index.json"), modelIndex);
        var job = Job(dir.File("model_index.mp4"));
        var e = Assert.Throws<CogVideoXException>(() => new SyntheticRenderer().Render(job, null, CancellationToken.None));
        Assert.Equal(
            $"{job.OutputPath}: its sidecar would be written to {job.SidecarPath}, which exists and is not a cogvideox sidecar — writing it would destroy that file; choose another name or folder for the video",
            e.Message);
        Assert.Equal(2, e.ExitCode);
        Assert.Equal(modelIndex, File.ReadAllText(job.SidecarPath));
        Assert.False(File.Exists(job.OutputPath));

        // An earlier sidecar of ours is replaced as before.
        var ours = Job(dir.File("ours.mp4"));
        new SyntheticRenderer().Render(ours, null, CancellationToken.None);
        Assert.True(VideoSidecar.IsSidecarFile(ours.SidecarPath));
        new SyntheticRenderer().Render(ours with { Settings = ours.Settings with { Seed = 9 } }, null, CancellationToken.None);
        Assert.Equal(9, VideoSidecar.TryLoad(ours.SidecarPath)!.Settings.Seed);
        Assert.False(VideoSidecar.IsSidecarFile(job.SidecarPath));
    }

    [Fact]
    public void TemporaryFilesOfKilledRunsAreRemovedAndLiveOnesKept()
    {
        using var dir = new TempDir();
        var job = Job(dir.File("v.mp4"));
        int dead = Processes.DeadPid();
        // A killed encode and sidecar write leave these; pid 1 is alive, so its file is a live writer's.
        var stale = new[] { dir.File($".v.partial-{dead}-{Guid.NewGuid():N}.mp4"), dir.File($".v.partial-{dead}-{Guid.NewGuid():N}.json") };
        var live = dir.File($".v.partial-1-{Guid.NewGuid():N}.mp4");
        var other = dir.File($".w.partial-{dead}-{Guid.NewGuid():N}.mp4");
        foreach (var f in stale.Append(live).Append(other)) File.WriteAllText(f, "half a video");

        new SyntheticRenderer().Render(job, null, CancellationToken.None);
        Assert.All(stale, f => Assert.False(File.Exists(f), f));
        Assert.True(File.Exists(live));
        Assert.True(File.Exists(other)); // another output's: cleaned by the run that writes that one
        Assert.True(VideoSidecar.IsComplete(job));
    }

    [Fact]
    public void AnExperimentRunOnAFullDiskFailsTheJobCleanlyAndTheNextRunRendersIt()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var spec = SpecParser.Load(study.SpecPath);
        var plan = StudyPlan.Expand(spec);
        var options = new RunOptions { OutputDir = spec.OutputDir, Synthetic = true };
        var events = new List<RunEvent>();
        RunSummary summary;
        using (FaultyDisk.TruncatingEncodes())
            summary = new ExperimentRunner(plan, options).Run(new SyntheticRenderer(), events.Add, CancellationToken.None);
        Assert.Equal((0, 7), (summary.Rendered, summary.Failed));
        Assert.All(summary.Jobs, j => Assert.Contains("came out incomplete and was not kept", j.Error));
        Assert.Contains(events, e => e.Kind == "failed" && e.Message!.Contains("came out incomplete"));
        Assert.Empty(Directory.GetFiles(options.OutputDir, "*.mp4", SearchOption.AllDirectories));
        LabAssert.Clean(options.OutputDir);
        Assert.Equal(7, Manifest.For(options.OutputDir, "small").Read().Records.Count(r => r.Event == "failed"));

        var retry = new ExperimentRunner(plan, options with { RunId = RunOptions.NewRunId() }).Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        Assert.Equal(7, retry.Rendered);
        Assert.All(plan.Jobs, j => Assert.True(VideoSidecar.IsComplete(j.ToVideoJob(options.OutputDir))));
    }

    [Fact]
    public void AnExperimentRunThatCannotWriteItsPlanSaysDiskFullNotInternalError()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code;
        using (FaultyDisk.FullOn(".json"))
            code = CogVideoX.Cli.Cli.Run(["experiment", "run", study.SpecPath, "--renderer", "synthetic"], stdout, stderr);
        Assert.Equal(1, code);
        Assert.StartsWith("error: disk full: No space left on device", stderr.ToString());
        Assert.Contains("free some space or write to another disk", stderr.ToString());
        Assert.DoesNotContain("internal error", stderr.ToString());
    }
}
