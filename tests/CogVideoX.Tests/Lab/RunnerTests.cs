using System.Text.Json;
using CogVideoX.Engine;
using CogVideoX.Lab;
using CogVideoX.Lab.Runs;
using CogVideoX.Lab.Specs;
using CogVideoX.Media;

namespace CogVideoX.Tests.Lab;

public class RunnerTests
{
    private static (StudyPlan Plan, RunOptions Options) Small(StudyFolder study)
    {
        var spec = SpecParser.Load(study.SpecPath);
        return (StudyPlan.Expand(spec), new RunOptions { OutputDir = spec.OutputDir, Synthetic = true });
    }

    [Fact]
    public void ARunRendersEverythingOnceAndASecondRunSkipsIt()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var (plan, options) = Small(study);
        var events = new List<RunEvent>();
        var first = new ExperimentRunner(plan, options).Run(new SyntheticRenderer(), events.Add, CancellationToken.None);
        Assert.Equal((7, 7, 0, 0), (first.Total, first.Rendered, first.AlreadyComplete, first.Failed));
        foreach (var job in plan.Jobs)
        {
            var vj = job.ToVideoJob(options.OutputDir);
            Assert.True(VideoSidecar.IsComplete(vj), job.Id);
            var info = VideoProbe.Probe(vj.OutputPath);
            Assert.Equal((48, 32, job.Settings.Frames), (info.Width, info.Height, info.FrameCount));
        }
        Assert.Equal(7, events.Count(e => e.Kind == "done"));
        Assert.True(events.Count(e => e.Kind == "step") >= 7 * 2);

        var finished = LabAssert.Finished(options.OutputDir);
        Assert.Equal(plan.Jobs.Select(j => j.Output).Order(), finished.Keys.Order());
        Assert.All(finished.Values, records => Assert.Single(records));
        var record = finished["guidance/guidance_12.mp4"][0];
        Assert.Equal(12, record.Settings.Guidance);
        Assert.Equal("cpu", record.Device);
        Assert.True(record.PeakMemoryBytes > 0);
        Assert.True(record.TimingsSeconds["total"] > 0);
        Assert.NotNull(record.Metrics);
        Assert.True(File.Exists(Path.Combine(options.OutputDir, StudyPlan.PlanFileName("small"))));

        var second = new ExperimentRunner(plan, options).Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        Assert.Equal((0, 7), (second.Rendered, second.AlreadyComplete));
        Assert.All(LabAssert.Finished(options.OutputDir).Values, records => Assert.Single(records));
        LabAssert.Clean(options.OutputDir);
    }

    [Fact]
    public void CompletenessIsCheckedThroughTheSidecarNotFilePresence()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var (plan, options) = Small(study);
        new ExperimentRunner(plan, options).Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        var jobs = plan.Jobs.Select(j => j.ToVideoJob(options.OutputDir)).ToList();

        // Truncated video, missing sidecar, tampered video of the same size, sidecar for other settings.
        var truncated = jobs[0];
        var bytes = File.ReadAllBytes(truncated.OutputPath);
        File.WriteAllBytes(truncated.OutputPath, bytes[..(bytes.Length / 2)]);
        File.Delete(jobs[1].SidecarPath);
        var tampered = File.ReadAllBytes(jobs[2].OutputPath);
        tampered[^10] ^= 0xFF;
        File.WriteAllBytes(jobs[2].OutputPath, tampered);
        var other = VideoSidecar.TryLoad(jobs[3].SidecarPath)! with { Settings = jobs[3].Settings with { Seed = 7 } };
        other.Save(jobs[3].SidecarPath);

        var rows = new ExperimentRunner(plan, options).DryRun();
        Assert.Equal(["todo", "todo", "todo", "todo", "complete", "complete", "complete"], rows.Select(r => r.Status));
        var again = new ExperimentRunner(plan, options).Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        Assert.Equal((4, 3), (again.Rendered, again.AlreadyComplete));
        Assert.All(jobs, j => Assert.True(VideoSidecar.IsComplete(j)));
    }

    [Fact]
    public void AStaleClaimIsTakenOverAndItsTemporaryFilesRemoved()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var (plan, options) = Small(study);
        var job = plan.Jobs.First().ToVideoJob(options.OutputDir);
        var dir = Path.GetDirectoryName(job.OutputPath)!;
        Directory.CreateDirectory(dir);
        int dead = Processes.DeadPid();
        // What a process killed mid-render leaves: its claim and a half-written temporary video.
        File.WriteAllText(Path.Combine(dir, $".{job.Name}.claim.0"),
            JsonSerializer.Serialize(new ClaimRecord { Host = Environment.MachineName, Pid = dead, StartTicks = 1, RunId = "old" }, LabLineJsonContext.Default.ClaimRecord));
        File.WriteAllText(Path.Combine(dir, $".{job.Name}.partial-{dead}-abc.mp4"), "half a video");

        var status = JobClaim.Status(job.OutputPath, options.StaleAfter);
        Assert.False(status.Live);
        Assert.Equal("stale", new ExperimentRunner(plan, options).DryRun()[0].Status);

        var events = new List<RunEvent>();
        var summary = new ExperimentRunner(plan, options).Run(new SyntheticRenderer(), events.Add, CancellationToken.None);
        Assert.Equal(7, summary.Rendered);
        Assert.Contains(events, e => e.Kind == "note" && e.Job == job.Experiment + "/" + job.Name && e.Message!.Contains("stale claim") && e.Message.Contains("removed 1 temporary file"));
        Assert.True(VideoSidecar.IsComplete(job));
        LabAssert.Clean(options.OutputDir);
    }

    [Fact]
    public void ClaimsAreExclusiveAndLiveOnesAreRespected()
    {
        using var dir = new TempDir();
        var output = dir.File("exp", "video.mp4");
        var stale = TimeSpan.FromMinutes(10);
        using var mine = JobClaim.TryAcquire(output, 0, "run", stale, out var before);
        Assert.NotNull(mine);
        Assert.Null(before.Holder);
        // Our own process holds it: a second claimant (another worker) is refused.
        Assert.Null(JobClaim.TryAcquire(output, 1, "run", stale, out var seen));
        Assert.True(seen.Live);
        Assert.Equal(Environment.ProcessId, seen.Holder!.Pid);
        mine!.Dispose();
        using var next = JobClaim.TryAcquire(output, 1, "run", stale, out _);
        Assert.NotNull(next);

        // A claim from another host lives while its heartbeat is fresh, and goes stale after.
        var other = dir.File("exp", "remote.mp4");
        var claimFile = dir.File("exp", ".remote.claim.0");
        File.WriteAllText(claimFile, JsonSerializer.Serialize(new ClaimRecord { Host = "some-other-node", Pid = 1, StartTicks = 1 }, LabLineJsonContext.Default.ClaimRecord));
        Assert.True(JobClaim.Status(other, stale).Live);
        File.SetLastWriteTimeUtc(claimFile, DateTime.UtcNow.AddMinutes(-11));
        Assert.False(JobClaim.Status(other, stale).Live);
        using var takeover = JobClaim.TryAcquire(other, 0, "run", stale, out var replaced);
        Assert.NotNull(takeover);
        Assert.Equal("some-other-node", replaced.Holder!.Host);
        Assert.EndsWith(".remote.claim.1", takeover!.Path);
    }

    [Fact]
    public void ConcurrentClaimantsGetEachJobExactlyOnce()
    {
        using var dir = new TempDir();
        var outputs = Enumerable.Range(0, 40).Select(i => dir.File("exp", $"v{i}.mp4")).ToList();
        var winners = new System.Collections.Concurrent.ConcurrentBag<(int Worker, string Output)>();
        var claims = new System.Collections.Concurrent.ConcurrentBag<JobClaim>();
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, worker =>
        {
            foreach (var o in outputs)
            {
                var c = JobClaim.TryAcquire(o, worker, "run", TimeSpan.FromMinutes(10), out _);
                if (c is null) continue;
                winners.Add((worker, o));
                claims.Add(c);
            }
        });
        Assert.Equal(outputs.Order(), winners.Select(w => w.Output).Order());
        foreach (var c in claims) c.Dispose();
    }

    [Fact]
    public void TheManifestToleratesATornLastLineAndSealsIt()
    {
        using var dir = new TempDir();
        var manifest = new Manifest(dir.File("m.jsonl"));
        ManifestRecord R(string name) => new() { Event = "done", Spec = "s", RunId = "r", Experiment = "e", Name = name, Output = $"e/{name}.mp4" };
        manifest.Append(R("a"));
        File.AppendAllText(manifest.Path, "{\"event\":\"done\",\"spec\":\"s\",\"na");
        Assert.Equal((1, 1), (manifest.Read().Records.Count, manifest.Read().Unreadable));
        manifest.Append(R("b"));
        var (records, unreadable) = manifest.Read();
        Assert.Equal(["a", "b"], records.Select(r => r.Name));
        Assert.Equal(1, unreadable);

        // Appends from many threads (each its own file handle and lock) never interleave.
        Parallel.For(0, 64, i => manifest.Append(R($"p{i}")));
        Assert.Equal(66, manifest.Read().Records.Count);
        Assert.Equal(1, manifest.Read().Unreadable);
    }

    [Fact]
    public void AFailedJobIsRecordedAndTheOthersStillRun()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var (plan, options) = Small(study);
        var renderer = new FailingRenderer(failOn: "guidance_12");
        var summary = new ExperimentRunner(plan, options).Run(renderer, _ => { }, CancellationToken.None);
        Assert.Equal((6, 1), (summary.Rendered, summary.Failed));
        var failed = Manifest.For(options.OutputDir, "small").Read().Records.Single(r => r.Event == "failed");
        Assert.Equal("guidance_12", failed.Name);
        Assert.Contains("out of GPU memory (test)", failed.Error);
        Assert.False(File.Exists(plan.Jobs.Single(j => j.Name == "guidance_12").ToVideoJob(options.OutputDir).OutputPath));
        LabAssert.Clean(options.OutputDir);

        // The next run (a new run id) retries it.
        var retry = new ExperimentRunner(plan, options with { RunId = RunOptions.NewRunId() }).Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        Assert.Equal((1, 6), (retry.Rendered, retry.AlreadyComplete));
    }

    [Fact]
    public void WorkersMustRunOnTheSpecsKindOfDevice()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var (plan, options) = Small(study);
        var e = Assert.Throws<CogVideoXException>(() => new ExperimentRunner(plan, options with { Device = "cuda:1" }));
        Assert.Contains("set to run on 'cpu' but this worker's device is 'cuda:1'", e.Message);
        _ = new ExperimentRunner(plan, options with { Device = "cpu" });
    }

    [Fact]
    public void AVideoRenderedOnOneGpuIsCompleteForAnyGpuOfThatKind()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec.Replace("device: cpu", "device: cuda"));
        var (plan, options) = Small(study);
        // Worker 1 of `--devices 0,1` renders for cuda:1; the synthetic renderer draws on the CPU and the manifest says so.
        new ExperimentRunner(plan, options with { Device = "cuda:1", Worker = 1 }).Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        var records = LabAssert.Finished(options.OutputDir).Values.Select(r => r[0]).ToList();
        Assert.All(records, r => Assert.Equal(("cpu", 1), (r.Device, r.Worker)));
        Assert.All(plan.Jobs, j => Assert.Equal("cuda", j.Settings.Device));
        Assert.All(plan.Jobs, j => Assert.True(VideoSidecar.IsComplete(j.ToVideoJob(options.OutputDir)), j.Id));
        // A later run on cuda:0 finds them all complete.
        var again = new ExperimentRunner(plan, options with { Device = "cuda:0" }).Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        Assert.Equal((0, 7), (again.Rendered, again.AlreadyComplete));
    }

    [Fact]
    public void ARealRunReplacesARehearsalsTestPatterns()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var (plan, options) = Small(study);
        new ExperimentRunner(plan, options).Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        // A run with another renderer does not take the synthetic videos for its own.
        var rows = new ExperimentRunner(plan, options with { Synthetic = false }).DryRun();
        Assert.All(rows, r => Assert.Equal("todo", r.Status));
    }

    private sealed class FailingRenderer(string failOn) : IVideoRenderer
    {
        private readonly SyntheticRenderer _inner = new();

        public RenderResult Render(VideoJob job, IProgress<RenderProgress>? progress, CancellationToken cancellation) =>
            job.Name == failOn ? throw new CogVideoXException("out of GPU memory (test)") : _inner.Render(job, progress, cancellation);
    }
}
