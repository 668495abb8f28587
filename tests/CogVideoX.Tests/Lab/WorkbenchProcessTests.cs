using System.Text.Json;
using CogVideoX.Lab;
using CogVideoX.Lab.Runs;
using CogVideoX.Lab.Specs;
using CogVideoX.Media;

namespace CogVideoX.Tests.Lab;

/// <summary>
/// `experiment run` as users run it: a separate process, killed with SIGKILL, sharded, spread over worker
/// processes — checking afterwards that every video exists once, intact, and nothing is left behind.
/// </summary>
[Collection(WorkbenchProcesses.Name)]
public class WorkbenchProcessTests
{
    private static List<PlannedJob> Jobs(StudyFolder study) => StudyPlan.Expand(SpecParser.Load(study.SpecPath)).Jobs.ToList();

    /// <summary>Whatever is under a final name is whole: videos decode with every frame, sidecars parse.</summary>
    private static void AssertNothingCorrupt(StudyFolder study)
    {
        foreach (var job in Jobs(study))
        {
            var vj = job.ToVideoJob(study.Outputs);
            if (File.Exists(vj.OutputPath))
                Assert.Equal(job.Settings.Frames, VideoProbe.Probe(vj.OutputPath).FrameCount);
            if (File.Exists(vj.SidecarPath))
            {
                Assert.NotNull(VideoSidecar.TryLoad(vj.SidecarPath));
                Assert.True(VideoSidecar.IsComplete(vj), $"{job.Id}: a sidecar under its final name but the video does not match it");
            }
        }
    }

    private static void AssertAllCompleteExactlyOnce(StudyFolder study)
    {
        var jobs = Jobs(study);
        Assert.All(jobs, j => Assert.True(VideoSidecar.IsComplete(j.ToVideoJob(study.Outputs)), j.Id));
        var finished = LabAssert.Finished(study.Outputs);
        Assert.Equal(jobs.Select(j => j.Output).Order(), finished.Keys.Order());
        foreach (var (output, records) in finished)
            Assert.True(records.Count == 1, $"{output} recorded {records.Count} times: {string.Join(", ", records.Select(r => $"{r.Event} by pid {r.Pid}"))}");
        LabAssert.Clean(study.Outputs);
    }

    [Fact]
    public void KilledAtRandomMomentsItResumesWithNothingLostOrCorrupted()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var random = new Random();
        var kills = new List<string>();
        for (int round = 0; round < 3; round++)
        {
            using var run = new CliProcess(study.Root, "experiment", "run", study.SpecPath, "--renderer", "synthetic", "--synthetic-step-ms", "150");
            // Anywhere from start-up to the last video: a whole run sleeps 7 × 2 × 150 ms in its steps alone, so the
            // first round is always cut short; later rounds may finish first, which is fine too.
            var delay = TimeSpan.FromMilliseconds(random.Next(250, 2500));
            if (run.Process.WaitForExit(delay)) continue;
            run.Process.Kill(); // SIGKILL: no handler runs, nothing is flushed
            run.Process.WaitForExit();
            kills.Add($"{delay.TotalMilliseconds:0} ms");
            AssertNothingCorrupt(study);
        }
        var resumed = CliProcess.RunOk(study.Root, "experiment", "run", study.SpecPath, "--renderer", "synthetic", "--json");
        var summary = JsonSerializer.Deserialize(resumed.StdOut, CogVideoX.Lab.Runs.LabRunJsonContext.Default.RunSummary)!;
        Assert.Equal(7, summary.Rendered + summary.AlreadyComplete);
        Assert.Equal(0, summary.Failed);
        AssertAllCompleteExactlyOnce(study);

        // And once more: nothing to do.
        var again = CliProcess.RunOk(study.Root, "experiment", "run", study.SpecPath, "--renderer", "synthetic", "--quiet");
        Assert.Contains("0 rendered, 7 already complete", again.StdOut);
        Assert.True(kills.Count > 0, "the run finished before any kill: make the synthetic steps slower");
    }

    [Fact]
    public void OverlappingShardsAndAnUnshardedRunMakeEveryVideoOnce()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        string[] Args(params string[] extra) => ["experiment", "run", study.SpecPath, "--renderer", "synthetic", "--synthetic-step-ms", "40", "--quiet", .. extra];
        // Two Slurm-style shards and, at the same time, a run of the whole spec: claims keep them from colliding.
        using var shard0 = new CliProcess(study.Root, Args("--shard", "0/2"));
        using var shard1 = new CliProcess(study.Root, Args("--shard", "1/2"));
        using var whole = new CliProcess(study.Root, Args());
        foreach (var p in new[] { shard0, shard1, whole })
            Assert.True(p.Wait() == 0, $"exit {p.Process.ExitCode}: {p.StdOut}\n{p.StdErr}");
        AssertAllCompleteExactlyOnce(study);

        // The shard runs rendered only their own jobs (index mod 2).
        var byPid = LabAssert.Finished(study.Outputs).Values.Select(r => r[0]).ToLookup(r => r.Pid);
        Assert.All(byPid[shard0.Process.Id], r => Assert.Equal(0, r.Index % 2));
        Assert.All(byPid[shard1.Process.Id], r => Assert.Equal(1, r.Index % 2));

        // Dry run of a shard alone: its jobs, all complete.
        var dry = CliProcess.RunOk(study.Root, "experiment", "run", study.SpecPath, "--renderer", "synthetic", "--shard", "1/2", "--dry-run", "--json");
        var rows = JsonSerializer.Deserialize(dry.StdOut, CogVideoX.Lab.Runs.LabRunJsonContext.Default.ListDryRunRow)!;
        Assert.Equal([1, 3, 5], rows.Select(r => r.Index));
        Assert.All(rows, r => Assert.Equal("complete", r.Status));
    }

    [Fact]
    public void DevicesRunOneWorkerProcessEachAndShareTheJobs()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var run = CliProcess.RunOk(study.Root, "experiment", "run", study.SpecPath, "--renderer", "synthetic", "--synthetic-step-ms", "150",
            "--devices", "cpu,cpu", "--json");
        var summary = JsonSerializer.Deserialize(run.StdOut, CogVideoX.Lab.Runs.LabRunJsonContext.Default.RunSummary)!;
        Assert.Equal((7, 7, 0), (summary.Total, summary.Rendered, summary.Failed));
        Assert.Equal(["cpu", "cpu"], summary.Devices);
        AssertAllCompleteExactlyOnce(study);

        var records = LabAssert.Finished(study.Outputs).Values.Select(r => r[0]).ToList();
        // Two worker processes, neither of them the parent, both did work, each under its worker id.
        Assert.Equal([0, 1], records.Select(r => r.Worker).Distinct().Order());
        Assert.Equal(2, records.Select(r => r.Pid).Distinct().Count());
        Assert.DoesNotContain(run.Process.Id, records.Select(r => r.Pid));
        Assert.All(records, r => Assert.Equal("cpu", r.Device));
        Assert.Single(records.Select(r => r.RunId).Distinct());
        Assert.Contains("worker 1", run.StdErr);
    }

    [Fact]
    public void KillingTheParentStopsItsWorkersAndTheNextRunFinishes()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        using var run = new CliProcess(study.Root, "experiment", "run", study.SpecPath, "--renderer", "synthetic", "--synthetic-step-ms", "200",
            "--devices", "cpu,cpu");
        // The workers show themselves through their claims.
        var workers = new HashSet<int>();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (workers.Count < 2 && DateTime.UtcNow < deadline && !run.Process.HasExited)
        {
            var claims = Directory.Exists(study.Outputs) ? Directory.GetFiles(study.Outputs, ".*.claim.*", SearchOption.AllDirectories) : [];
            foreach (var claim in claims)
            {
                try
                {
                    workers.Add(JsonSerializer.Deserialize(File.ReadAllText(claim), LabLineJsonContext.Default.ClaimRecord)!.Pid);
                }
                catch (Exception e) when (e is IOException or JsonException)
                {
                }
            }
            Thread.Sleep(30);
        }
        Assert.True(workers.Count == 2, $"saw {workers.Count} worker(s) claim jobs: {run.StdOut}\n{run.StdErr}");
        Assert.DoesNotContain(run.Process.Id, workers);
        run.Process.Kill(); // SIGKILL the parent alone: its workers see their stdin close
        run.Process.WaitForExit();
        foreach (var pid in workers)
        {
            var stop = DateTime.UtcNow.AddSeconds(20);
            while (ProcessIdentity.StartTicksOf(pid) is not null && DateTime.UtcNow < stop) Thread.Sleep(50);
            Assert.True(ProcessIdentity.StartTicksOf(pid) is null, $"worker {pid} outlived its parent");
        }
        AssertNothingCorrupt(study);
        CliProcess.RunOk(study.Root, "experiment", "run", study.SpecPath, "--renderer", "synthetic", "--devices", "cpu,cpu", "--quiet");
        AssertAllCompleteExactlyOnce(study);
    }

    [Fact]
    public void BadInvocationsAreClearErrors()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var p = new CliProcess(study.Root, "experiment", "run", study.SpecPath, "--devices", "0,1", "--renderer", "synthetic");
        Assert.Equal(2, p.Wait());
        Assert.Contains("set to run on 'cpu' but this worker's device is 'cuda:0'", p.StdErr);
        Assert.DoesNotContain("   at ", p.StdErr);

        p = new CliProcess(study.Root, "experiment", "run", study.SpecPath, "--shard", "3/2");
        Assert.Equal(2, p.Wait());
        Assert.Contains("--shard 3/2", p.StdErr);

        p = new CliProcess(study.Root, "report", study.File("nowhere"));
        Assert.Equal(2, p.Wait());
        Assert.Contains("no such spec file or output folder", p.StdErr);

        // Without a pipeline renderer in this build, a real run says so instead of pretending.
        if (!CogVideoX.Cli.RendererFactory.PipelineAvailable)
        {
            p = new CliProcess(study.Root, "experiment", "run", study.SpecPath);
            Assert.Equal(1, p.Wait());
            Assert.Contains("no CogVideoX pipeline renderer yet", p.StdErr);
            Assert.False(Directory.Exists(study.File("outputs", "baseline")) && Directory.GetFiles(study.File("outputs", "baseline"), "*.mp4").Length > 0);
        }
    }
}
