using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using CogVideoX.Engine;
using CogVideoX.Lab.Metrics;
using CogVideoX.Lab.Specs;
using CogVideoX.Media;

namespace CogVideoX.Lab.Runs;

/// <summary>
/// Works through a plan's jobs (one shard of them) in one process: skips what is complete (by its sidecar), claims
/// each remaining job so no other process renders it too, renders it, records it in the manifest, and comes back
/// for jobs other processes held until they are finished or their holder died. Killed at any moment, it leaves
/// only temporary files and a claim that the next run recognises as stale.
/// </summary>
public sealed class ExperimentRunner
{
    private readonly StudyPlan _plan;
    private readonly RunOptions _options;
    private readonly Manifest _manifest;
    private HashSet<int> _completeAtStart = [];

    public ExperimentRunner(StudyPlan plan, RunOptions options)
    {
        _plan = plan;
        _options = options;
        _manifest = Manifest.For(options.OutputDir, plan.SpecName);
        if (options.Device is { } device)
        {
            foreach (var job in plan.Jobs)
            {
                if (GenerationSettings.DeviceKind(job.Settings.Device) != GenerationSettings.DeviceKind(device))
                    throw new CogVideoXException(
                        $"{job.Id} is set to run on '{job.Settings.Device}' but this worker's device is '{device}'; " +
                        $"set `device: {GenerationSettings.DeviceKind(device)}` in the spec's defaults (a CPU and a GPU render differ, so the spec says which), " +
                        $"or pass --devices with {GenerationSettings.DeviceKind(job.Settings.Device)} devices", 2);
            }
        }
    }

    public Manifest Manifest => _manifest;

    /// <summary>This run's jobs: the plan's, restricted to the shard.</summary>
    public IReadOnlyList<PlannedJob> Jobs => _plan.Jobs.Where(j => _options.Shard.Contains(j.Index)).ToList();

    /// <summary>What a run would do, without doing anything.</summary>
    public List<DryRunRow> DryRun()
    {
        var rows = new List<DryRunRow>();
        foreach (var job in Jobs)
        {
            var vj = job.ToVideoJob(_options.OutputDir);
            string status, detail;
            if (IsDone(vj))
                (status, detail) = ("complete", "");
            else
            {
                var claim = JobClaim.Status(vj.OutputPath, _options.StaleAfter);
                (status, detail) = claim.Holder is null ? ("todo", "")
                    : claim.Live ? ("claimed", claim.ToString())
                    : ("stale", claim + " (will be redone)");
            }
            rows.Add(new DryRunRow { Index = job.Index, Job = job.Id, Output = job.Output, Status = status, Detail = detail, Settings = Describe(job.Settings) });
        }
        return rows;
    }

    /// <summary>Complete (sidecar, size, checksum) and made by the kind of renderer this run uses.</summary>
    private bool IsDone(VideoJob vj, bool verifyHash = true) =>
        VideoSidecar.IsComplete(vj, verifyHash)
        && (VideoSidecar.TryLoad(vj.SidecarPath)?.ModelIdentity == SyntheticRenderer.Identity) == _options.Synthetic;

    public static string Describe(GenerationSettings s) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{s.PromptName ?? "prompt"} · {s.Model} · {s.Steps} steps · guidance {s.Guidance} · seed {s.Seed} · {s.Frames} frames · {s.Width}×{s.Height} · {s.Device}");

    /// <summary>Work units of a job (steps × latent frames × pixels relative to 720×480), for time estimates.</summary>
    public static double Units(GenerationSettings s) => s.Steps * ((s.Frames - 1) / 4 + 1) * (s.Width * (double)s.Height / (720 * 480));

    public RunSummary Run(IVideoRenderer renderer, Action<RunEvent> report, CancellationToken cancellation)
    {
        var wall = Stopwatch.StartNew();
        Directory.CreateDirectory(_options.OutputDir);
        _plan.Save(_options.OutputDir);
        var jobs = Jobs;
        var device = _options.Device;
        var outcomes = new Dictionary<int, JobOutcome>();
        var recorded = RecordedOutputs();

        void Emit(RunEvent e) => report(e with { Worker = _options.Worker, Device = e.Device ?? device });

        _completeAtStart = jobs.Where(j => IsDone(j.ToVideoJob(_options.OutputDir), verifyHash: false)).Select(j => j.Index).ToHashSet();
        // Units: the work left, for estimates (jobs found complete later, done by others meanwhile, report theirs).
        Emit(new RunEvent
        {
            Kind = "plan",
            Total = jobs.Count,
            Complete = _completeAtStart.Count,
            Units = jobs.Where(j => !_completeAtStart.Contains(j.Index)).Sum(j => Units(j.Settings)),
        });

        var pending = jobs.ToList();
        int lastWaitingFor = -1;
        while (pending.Count > 0)
        {
            var held = new List<PlannedJob>();
            foreach (var job in pending)
            {
                cancellation.ThrowIfCancellationRequested();
                var result = RunOne(job, renderer, recorded, Emit, cancellation);
                if (result is null) held.Add(job);
                else outcomes[job.Index] = result;
            }
            if (held.Count > 0 && held.Count == pending.Count)
            {
                // Everything left is in other live processes' hands: wait for them to finish (or die).
                if (held.Count != lastWaitingFor)
                    Emit(new RunEvent { Kind = "note", Message = $"waiting for {held.Count} job(s) other processes are rendering" });
                lastWaitingFor = held.Count;
                cancellation.WaitHandle.WaitOne(_options.PollInterval);
            }
            pending = held;
        }
        return new RunSummary
        {
            Spec = _plan.SpecName,
            RunId = _options.RunId,
            Shard = _options.Shard.ToString(),
            Devices = device is null ? [] : [device],
            Total = jobs.Count,
            AlreadyComplete = outcomes.Values.Count(o => o.Status == "complete"),
            Rendered = outcomes.Values.Count(o => o.Status == "rendered"),
            Failed = outcomes.Values.Count(o => o.Status == "failed"),
            WallSeconds = wall.Elapsed.TotalSeconds,
            Manifest = _manifest.Path,
            Jobs = outcomes.Values.OrderBy(o => o.Index).ToList(),
        };
    }

    /// <summary>One job: null when another live process holds it (try again later), else what happened.</summary>
    private JobOutcome? RunOne(PlannedJob job, IVideoRenderer renderer, HashSet<string> recorded, Action<RunEvent> emit, CancellationToken cancellation)
    {
        var vj = job.ToVideoJob(_options.OutputDir);
        if (IsDone(vj))
            return Complete(job, vj, recorded, emit);
        if (FailedInThisRun(vj) is { } failure)
            return new JobOutcome { Index = job.Index, Job = job.Id, Status = "failed", Error = failure, Worker = _options.Worker };

        using var claim = JobClaim.TryAcquire(vj.OutputPath, _options.Worker, _options.RunId, _options.StaleAfter, out var observed);
        if (claim is null)
        {
            emit(new RunEvent { Kind = "held", Index = job.Index, Job = job.Id, Message = observed.ToString() });
            return null;
        }
        // Between our completeness check and our claim another process may have finished it and let go.
        if (IsDone(vj))
        {
            claim.ReleaseCompleted();
            return Complete(job, vj, recorded, emit);
        }
        if (FailedInThisRun(vj) is { } failedMeanwhile)
            return new JobOutcome { Index = job.Index, Job = job.Id, Status = "failed", Error = failedMeanwhile, Worker = _options.Worker };

        // We own the job: whatever temporary files it has are leftovers of a dead holder.
        int cleaned = CleanTemporaryFiles(vj.OutputPath, onlyDeadOwners: false);
        if (claim.TookOver.Holder is not null || cleaned > 0)
            emit(new RunEvent { Kind = "note", Index = job.Index, Job = job.Id, Message = $"redoing it: {claim.TookOver}{(cleaned > 0 ? $", removed {cleaned} temporary file(s)" : "")}" });

        var renderJob = _options.Device is { } d ? vj with { Settings = vj.Settings with { Device = d } } : vj;
        var units = Units(job.Settings);
        emit(new RunEvent { Kind = "start", Index = job.Index, Job = job.Id, Units = units, Steps = job.Settings.Steps, Device = renderJob.Settings.Device });
        var started = DateTimeOffset.UtcNow;
        var watch = Stopwatch.StartNew();
        var beat = TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerSecond, Math.Min(_options.StaleAfter.Ticks / 4, TimeSpan.TicksPerMinute / 2)));
        using var heartbeat = new Timer(_ => claim.Heartbeat(), null, beat, beat);
        var progress = new Progress(p => emit(new RunEvent
        {
            Kind = "step",
            Index = job.Index,
            Job = job.Id,
            Stage = p.Stage,
            Step = p.Step,
            Steps = p.TotalSteps,
            Seconds = p.Elapsed.TotalSeconds,
            Units = units,
        }));
        try
        {
            var result = renderer.Render(renderJob, progress, cancellation);
            var metrics = VideoMetrics.Measure(result.Frames);
            var sidecar = result.Sidecar;
            _manifest.Append(Record("done", job, sidecar, renderJob.Settings.Device, started, watch.Elapsed.TotalSeconds, metrics));
            recorded.Add(Key(job.Output, sidecar.VideoSha256));
            heartbeat.Dispose();
            TryDelete(FailurePath(vj.OutputPath));
            claim.ReleaseCompleted();
            emit(new RunEvent { Kind = "done", Index = job.Index, Job = job.Id, Seconds = watch.Elapsed.TotalSeconds, Units = units, PeakMemoryBytes = sidecar.PeakMemoryBytes, Device = renderJob.Settings.Device });
            return new JobOutcome { Index = job.Index, Job = job.Id, Status = "rendered", Seconds = watch.Elapsed.TotalSeconds, Device = renderJob.Settings.Device, Worker = _options.Worker };
        }
        catch (OperationCanceledException)
        {
            throw;
        }
        catch (Exception e) when (e is CogVideoXException or InvalidOperationException or ArgumentException or OutOfMemoryException || FileErrors.IsFileError(e))
        {
            var message = e is CogVideoXException ? e.Message : FileErrors.Describe(e);
            // On a full disk the manifest may not take the line either: the job still counts as failed, and says so.
            try
            {
                AppendFailure();
            }
            catch (Exception m) when (FileErrors.IsFileError(m))
            {
                message += $" (the manifest could not record this failure: {FileErrors.Describe(m)})";
            }
            WriteFailure(vj.OutputPath, message);
            emit(new RunEvent { Kind = "failed", Index = job.Index, Job = job.Id, Message = message, Seconds = watch.Elapsed.TotalSeconds });
            return new JobOutcome { Index = job.Index, Job = job.Id, Status = "failed", Seconds = watch.Elapsed.TotalSeconds, Device = renderJob.Settings.Device, Worker = _options.Worker, Error = message };

            void AppendFailure() => _manifest.Append(new ManifestRecord
            {
                Event = "failed",
                Spec = _plan.SpecName,
                RunId = _options.RunId,
                Index = job.Index,
                Experiment = job.Experiment,
                Name = job.Name,
                Output = job.Output,
                Settings = job.Settings,
                Device = renderJob.Settings.Device,
                Worker = _options.Worker,
                Host = ProcessIdentity.Current.Host,
                Pid = ProcessIdentity.Current.Pid,
                StartedUtc = started,
                FinishedUtc = DateTimeOffset.UtcNow,
                WallSeconds = watch.Elapsed.TotalSeconds,
                Error = message,
            });
        }
    }

    private JobOutcome Complete(PlannedJob job, VideoJob vj, HashSet<string> recorded, Action<RunEvent> emit)
    {
        var sidecar = VideoSidecar.TryLoad(vj.SidecarPath)!;
        // A live holder has just finished it and records it itself (it appends its line before letting go).
        if (!JobClaim.Status(vj.OutputPath, _options.StaleAfter).Live)
        {
            // Completed by a process killed before it wrote its manifest line: record it now from the sidecar.
            if (!recorded.Contains(Key(job.Output, sidecar.VideoSha256)))
            {
                recorded.UnionWith(RecordedOutputs());
                if (!recorded.Contains(Key(job.Output, sidecar.VideoSha256)))
                {
                    _manifest.Append(Record("recovered", job, sidecar, sidecar.Device, sidecar.CreatedUtc, sidecar.TimingsSeconds.GetValueOrDefault("total"), null));
                    recorded.Add(Key(job.Output, sidecar.VideoSha256));
                }
            }
            // Leftovers of a holder killed after finishing: its claim and temporary files.
            JobClaim.ClearAll(vj.OutputPath);
            CleanTemporaryFiles(vj.OutputPath, onlyDeadOwners: true);
        }
        emit(new RunEvent { Kind = "complete", Index = job.Index, Job = job.Id, Units = _completeAtStart.Contains(job.Index) ? 0 : Units(job.Settings) });
        return new JobOutcome { Index = job.Index, Job = job.Id, Status = "complete", Device = sidecar.Device, Worker = _options.Worker };
    }

    private ManifestRecord Record(string kind, PlannedJob job, VideoSidecar sidecar, string device, DateTimeOffset started, double wallSeconds, FrameMetrics? metrics) => new()
    {
        Event = kind,
        Spec = _plan.SpecName,
        RunId = _options.RunId,
        Index = job.Index,
        Experiment = job.Experiment,
        Name = job.Name,
        Output = job.Output,
        Sidecar = Path.ChangeExtension(job.Output, ".json"),
        Settings = sidecar.Settings,
        TimingsSeconds = sidecar.TimingsSeconds,
        WallSeconds = wallSeconds,
        PeakMemoryBytes = sidecar.PeakMemoryBytes,
        PeakMemoryKind = sidecar.PeakMemoryKind,
        Device = device,
        Worker = _options.Worker,
        Host = ProcessIdentity.Current.Host,
        Pid = ProcessIdentity.Current.Pid,
        StartedUtc = started,
        FinishedUtc = DateTimeOffset.UtcNow,
        VideoSha256 = sidecar.VideoSha256,
        FrameCount = sidecar.FrameCount,
        Metrics = metrics,
    };

    private HashSet<string> RecordedOutputs() =>
        _manifest.Read().Records.Where(r => r.Event is "done" or "recovered").Select(r => Key(r.Output, r.VideoSha256)).ToHashSet(StringComparer.Ordinal);

    private static string Key(string output, string? sha) => output + "\n" + sha;

    private static string FailurePath(string outputPath) =>
        Path.Combine(Path.GetDirectoryName(outputPath)!, $".{Path.GetFileNameWithoutExtension(outputPath)}.failed");

    /// <summary>The error a worker of this same run hit on this job, if any (then it is not retried in this run).</summary>
    private string? FailedInThisRun(VideoJob vj)
    {
        try
        {
            var path = FailurePath(vj.OutputPath);
            if (!File.Exists(path)) return null;
            var marker = JsonSerializer.Deserialize(File.ReadAllBytes(path), LabLineJsonContext.Default.FailureMarker);
            return marker?.RunId == _options.RunId ? marker.Error : null;
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return null;
        }
    }

    private void WriteFailure(string outputPath, string error)
    {
        try
        {
            AtomicFile.WriteAllText(FailurePath(outputPath),
                JsonSerializer.Serialize(new FailureMarker(_options.RunId, error), LabLineJsonContext.Default.FailureMarker));
        }
        catch (Exception e) when (FileErrors.IsFileError(e))
        {
        }
    }

    /// <summary>A job's temporary files removed (see <see cref="VideoOutput.CleanTemporaryFiles"/>).</summary>
    public static int CleanTemporaryFiles(string outputPath, bool onlyDeadOwners) => VideoOutput.CleanTemporaryFiles(outputPath, onlyDeadOwners);

    private static bool TryDelete(string path)
    {
        try
        {
            if (!File.Exists(path)) return false;
            File.Delete(path);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Forwards render progress synchronously (System.Progress would post to the thread pool, out of order).</summary>
    private sealed class Progress(Action<RenderProgress> handler) : IProgress<RenderProgress>
    {
        public void Report(RenderProgress value) => handler(value);
    }
}
