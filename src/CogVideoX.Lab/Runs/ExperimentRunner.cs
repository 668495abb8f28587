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
        var mine = Jobs.Select(j => j.Output).ToHashSet(StringComparer.Ordinal);
        foreach (var job in Jobs)
        {
            var vj = job.ToVideoJob(_options.OutputDir);
            string status, detail;
            if (IsDone(vj))
                (status, detail) = ("complete", "");
            else if (job.SameAs is { } original && (mine.Contains(original) || IsDone(OriginalJob(job)!)))
                (status, detail) = ("same", $"same settings as {original}: gets that file, not rendered again");
            else
            {
                var claim = JobClaim.Status(vj.OutputPath, _options.StaleAfter);
                (status, detail) = claim.Holder is null ? ("todo", "")
                    : claim.Live ? ("claimed", claim.ToString())
                    : ("stale", claim + " (will be redone)");
            }
            rows.Add(new DryRunRow
            {
                Index = job.Index,
                Job = job.Id,
                Output = job.Output,
                Status = status,
                Detail = detail,
                SameAs = job.SameAs,
                Settings = job.Settings,
                Summary = Describe(job.Settings),
            });
        }
        return rows;
    }

    private VideoJob? OriginalJob(PlannedJob job) =>
        job.SameAs is { } original && _plan.JobFor(original) is { } o ? o.ToVideoJob(_options.OutputDir) : null;

    /// <summary>Complete (sidecar, size, checksum) and made by the kind of renderer this run uses.</summary>
    private bool IsDone(VideoJob vj, bool verifyHash = true) =>
        VideoSidecar.IsComplete(vj, verifyHash)
        && (VideoSidecar.TryLoad(vj.SidecarPath)?.ModelIdentity == SyntheticRenderer.Identity) == _options.Synthetic;

    public static string Describe(GenerationSettings s) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{s.PromptName ?? "prompt"} · {s.Model} · {s.Steps} steps · guidance {s.Guidance} · seed {s.Seed} · {s.Frames} frames · {s.Width}×{s.Height} · {s.Fps} fps · {s.Device}");

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
            Units = jobs.Where(j => !_completeAtStart.Contains(j.Index) && j.SameAs is null).Sum(j => Units(j.Settings)),
        });

        var pending = jobs.ToList();
        var inRun = jobs.Select(j => j.Index).ToHashSet();
        int lastWaitingFor = -1, sameFailures = 0;
        string? lastError = null;
        while (pending.Count > 0)
        {
            var held = new List<PlannedJob>();
            foreach (var job in pending)
            {
                cancellation.ThrowIfCancellationRequested();
                var result = RunOne(job, renderer, recorded, inRun, Emit, cancellation);
                if (result is null) held.Add(job);
                else outcomes[job.Index] = result;
                StopWhenNothingCanRun(result, outcomes, ref lastError, ref sameFailures);
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
            Linked = outcomes.Values.Count(o => o.Status == "linked"),
            Failed = outcomes.Values.Count(o => o.Status == "failed"),
            WallSeconds = wall.Elapsed.TotalSeconds,
            Manifest = _manifest.Path,
            Jobs = outcomes.Values.OrderBy(o => o.Index).ToList(),
        };
    }

    /// <summary>
    /// Stops the run when its first videos all failed with the same message (a missing model, a device that cannot
    /// run): the rest would fail the same way, one by one, and the message is worth reading once.
    /// </summary>
    private static void StopWhenNothingCanRun(JobOutcome? result, Dictionary<int, JobOutcome> outcomes, ref string? lastError, ref int sameFailures)
    {
        const int Limit = 3;
        if (result is not { Status: "failed", Error: { } error }) return;
        sameFailures = error == lastError ? sameFailures + 1 : 1;
        lastError = error;
        if (sameFailures >= Limit && !outcomes.Values.Any(o => o.Status is "rendered" or "linked"))
            throw new CogVideoXException($"stopped after the first {sameFailures} videos failed the same way (the others would too): {error.TrimEnd('.', ' ')}. " +
                "Fix that and run the same command again; finished videos are kept.");
    }

    /// <summary>One job: null when another live process holds it (try again later), else what happened.</summary>
    private JobOutcome? RunOne(PlannedJob job, IVideoRenderer renderer, HashSet<string> recorded, HashSet<int> inRun, Action<RunEvent> emit, CancellationToken cancellation)
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

        if (job.SameAs is { } sameAs && _plan.JobFor(sameAs) is { } original)
        {
            var ovj = original.ToVideoJob(_options.OutputDir);
            if (IsDone(ovj, verifyHash: false))
                return Link(job, vj, original, ovj, claim, recorded, emit);
            if (inRun.Contains(original.Index))
            {
                // The original is this run's to render (earlier in the order, or by another worker): wait for it.
                claim.Dispose();
                if (FailedInThisRun(ovj) is { } originalFailed)
                    return new JobOutcome { Index = job.Index, Job = job.Id, Status = "failed", Error = $"{original.Id} (same settings) failed: {originalFailed}", Worker = _options.Worker };
                return null;
            }
            // The original belongs to another shard and is not done: this shard renders its own copy.
        }

        // We own the job: whatever temporary files it has are leftovers of a dead holder.
        int cleaned = CleanTemporaryFiles(vj.OutputPath, onlyDeadOwners: false);
        if (claim.TookOver.Holder is not null || cleaned > 0)
            emit(new RunEvent { Kind = "note", Index = job.Index, Job = job.Id, Message = $"redoing it: {claim.TookOver}{(cleaned > 0 ? $", removed {cleaned} temporary file(s)" : "")}" });

        var renderJob = _options.Device is { } d ? vj with { Settings = vj.Settings with { Device = d } } : vj;
        // The synthetic renderer draws on the CPU whatever the spec says: say so rather than name a GPU it never used.
        var device = _options.Synthetic ? "cpu" : renderJob.Settings.Device;
        var units = Units(job.Settings);
        emit(new RunEvent { Kind = "start", Index = job.Index, Job = job.Id, Units = units, Steps = job.Settings.Steps, Device = _options.Synthetic ? "cpu (synthetic renderer)" : device });
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
            _manifest.Append(Record("done", job, sidecar, device, started, watch.Elapsed.TotalSeconds, metrics));
            recorded.Add(Key(job.Output, sidecar.VideoSha256));
            heartbeat.Dispose();
            AtomicFile.TryDelete(FailurePath(vj.OutputPath));
            claim.ReleaseCompleted();
            emit(new RunEvent { Kind = "done", Index = job.Index, Job = job.Id, Seconds = watch.Elapsed.TotalSeconds, Units = units, PeakMemoryBytes = sidecar.PeakMemoryBytes, Device = device });
            return new JobOutcome { Index = job.Index, Job = job.Id, Status = "rendered", Seconds = watch.Elapsed.TotalSeconds, Device = device, Worker = _options.Worker };
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
                _manifest.Append(Record("failed", job, null, device, started, watch.Elapsed.TotalSeconds, null, message));
            }
            catch (Exception m) when (FileErrors.IsFileError(m))
            {
                message += $" (the manifest could not record this failure: {FileErrors.Describe(m)})";
            }
            WriteFailure(vj.OutputPath, message);
            emit(new RunEvent { Kind = "failed", Index = job.Index, Job = job.Id, Message = message, Seconds = watch.Elapsed.TotalSeconds });
            return new JobOutcome { Index = job.Index, Job = job.Id, Status = "failed", Seconds = watch.Elapsed.TotalSeconds, Device = device, Worker = _options.Worker, Error = message };
        }
    }

    /// <summary>
    /// A job with the same settings as a finished one gets its file — a hard link, else a copy — and a sidecar of
    /// its own naming it, so it is complete like any other output; the manifest line says which video it is.
    /// </summary>
    private JobOutcome Link(PlannedJob job, VideoJob vj, PlannedJob original, VideoJob ovj, JobClaim claim, HashSet<string> recorded, Action<RunEvent> emit)
    {
        var started = DateTimeOffset.UtcNow;
        var watch = Stopwatch.StartNew();
        var sidecar = VideoSidecar.TryLoad(ovj.SidecarPath)!;
        CleanTemporaryFiles(vj.OutputPath, onlyDeadOwners: false);
        var how = SharedFile.LinkOrCopy(ovj.OutputPath, vj.OutputPath);
        var own = sidecar with { VideoFile = Path.GetFileName(vj.OutputPath), SameAs = original.Output };
        own.Save(vj.SidecarPath);
        _manifest.Append(Record("linked", job, own, sidecar.Device, started, watch.Elapsed.TotalSeconds, null) with { SameAs = original.Output, Linked = how });
        recorded.Add(Key(job.Output, own.VideoSha256));
        claim.ReleaseCompleted();
        emit(new RunEvent { Kind = "linked", Index = job.Index, Job = job.Id, Message = $"same settings as {original.Id}: {how} of its video", Units = 0 });
        return new JobOutcome { Index = job.Index, Job = job.Id, Status = "linked", Device = sidecar.Device, Worker = _options.Worker };
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

    /// <summary>A manifest line: what was rendered (from its sidecar) or what failed (the job's own settings and the error).</summary>
    private ManifestRecord Record(string kind, PlannedJob job, VideoSidecar? sidecar, string device, DateTimeOffset started, double wallSeconds,
        FrameMetrics? metrics, string? error = null) => new()
        {
            Event = kind,
            Spec = _plan.SpecName,
            RunId = _options.RunId,
            Index = job.Index,
            Experiment = job.Experiment,
            Name = job.Name,
            Output = job.Output,
            Sidecar = sidecar is null ? "" : Path.ChangeExtension(job.Output, ".json"),
            Settings = sidecar?.Settings ?? job.Settings,
            TimingsSeconds = sidecar?.TimingsSeconds ?? [],
            WallSeconds = wallSeconds,
            PeakMemoryBytes = sidecar?.PeakMemoryBytes ?? 0,
            PeakMemoryKind = sidecar?.PeakMemoryKind ?? "",
            Device = device,
            Worker = _options.Worker,
            Host = ProcessIdentity.Current.Host,
            Pid = ProcessIdentity.Current.Pid,
            StartedUtc = started,
            FinishedUtc = DateTimeOffset.UtcNow,
            VideoSha256 = sidecar?.VideoSha256,
            FrameCount = sidecar?.FrameCount ?? 0,
            Metrics = metrics,
            Error = error,
        };

    private HashSet<string> RecordedOutputs() =>
        _manifest.Read().Records.Where(r => r.Event is "done" or "recovered" or "linked").Select(r => Key(r.Output, r.VideoSha256)).ToHashSet(StringComparer.Ordinal);

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


    /// <summary>Forwards render progress synchronously (System.Progress would post to the thread pool, out of order).</summary>
    private sealed class Progress(Action<RenderProgress> handler) : IProgress<RenderProgress>
    {
        public void Report(RenderProgress value) => handler(value);
    }
}
