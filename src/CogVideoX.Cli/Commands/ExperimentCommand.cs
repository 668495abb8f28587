using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using CogVideoX.Engine;
using CogVideoX.Lab;
using CogVideoX.Lab.Runs;
using CogVideoX.Lab.Specs;
using CogVideoX.Weights;

namespace CogVideoX.Cli.Commands;

/// <summary><c>experiment run SPEC</c> (and the hidden <c>experiment worker</c> that <c>--devices</c> starts once per device).</summary>
internal static class ExperimentCommand
{
    private static readonly Argument<string> s_spec = new("spec") { Description = "The experiment spec (YAML), e.g. experiments/cogvideox_study.yaml" };

    private static readonly Option<string?> s_output = new("--output", "-o") { Description = "Write videos here instead of the spec's output_dir" };

    private static readonly Option<string?> s_shard = new("--shard")
    {
        Description = "Run only shard i of n (0-based; job k belongs to shard k mod n), e.g. --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT",
    };

    private static readonly Option<string> s_renderer = new("--renderer")
    {
        Description = "pipeline: CogVideoX; synthetic: test patterns drawn from the settings (rehearse a study without a model)",
        DefaultValueFactory = _ => RendererFactory.Pipeline,
    };

    private static readonly Option<double> s_staleAfter = new("--stale-after-minutes")
    {
        Description = "Take over jobs claimed from another host whose heartbeat is older than this (same-host claims are checked by pid)",
        DefaultValueFactory = _ => 10,
    };

    // Test hook: makes each synthetic step take this long, so runs can be interrupted part-way.
    private static readonly Option<int> s_syntheticStepMs = new("--synthetic-step-ms") { Hidden = true, DefaultValueFactory = _ => 0 };

    public static Command Create(Func<string, string?> environment, Func<GpuCheck> gpu)
    {
        var cmd = new Command("experiment", "Run experiment studies: many videos from one spec, resumable, shardable, spread over GPUs.");
        cmd.Subcommands.Add(CreateRun(environment, gpu));
        cmd.Subcommands.Add(CreateWorker(gpu));
        return cmd;
    }

    private static Command CreateRun(Func<string, string?> environment, Func<GpuCheck> gpu)
    {
        var dryRun = new Option<bool>("--dry-run") { Description = "List what would be rendered and what is already complete; change nothing" };
        var devices = new Option<string?>("--devices")
        {
            Description = "One worker process per device, taking jobs as they free up: GPU ordinals (0,1,2), cuda:N, or cpu",
        };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print only failures and the final line" };
        var json = new Option<bool>("--json") { Description = "Print a JSON summary on stdout" };
        var cmd = new Command("run", "Render every video of a spec that is not complete yet; safe to interrupt and run again.")
        {
            s_spec, dryRun, s_shard, devices, s_output, quiet, json, s_renderer, s_staleAfter, s_syntheticStepMs,
        };
        cmd.SetAction((parse, cancellation) =>
        {
            var config = parse.InvocationConfiguration;
            var deviceList = parse.GetValue(devices) is { } d ? DeviceList.Parse(d) : null;
            var (spec, plan, options, deviceChoice) = Load(parse, gpu, deviceList?[0]);
            bool asJson = parse.GetValue(json), isQuiet = parse.GetValue(quiet);
            var stdout = config.Output;
            // Progress and notes on stderr, results on stdout (as generate does), so `> file` keeps only the results.
            var progressOut = config.Error;
            var kind = parse.GetValue(s_renderer)!;

            if (parse.GetValue(dryRun))
                return Task.FromResult(PrintDryRun(stdout, spec, plan, new ExperimentRunner(plan, options), options, asJson, kind, deviceChoice, environment, gpu, config.Error));

            if (!isQuiet && deviceChoice.Reason.Length > 0) progressOut.WriteLine(deviceChoice.Reason);
            // Everything every job needs is checked (and the model downloaded) once, before the first job.
            if (kind == RendererFactory.Pipeline) Preflight(plan, options, progressOut, environment, checkDevices: deviceList is null, cancellation);
            bool interactive = ReferenceEquals(progressOut, Console.Error) && !Console.IsErrorRedirected;
            var console = new RunConsole(progressOut, interactive, isQuiet, deviceList?.Count ?? 1);
            var stepDelay = TimeSpan.FromMilliseconds(parse.GetValue(s_syntheticStepMs));

            RunSummary summary;
            if (deviceList is null)
            {
                var runner = new ExperimentRunner(plan, options);
                var renderer = RendererFactory.Create(kind, stepDelay);
                try
                {
                    summary = runner.Run(renderer, console.Handle, cancellation);
                }
                finally
                {
                    console.EndStatus();
                    (renderer as IDisposable)?.Dispose();
                }
            }
            else
            {
                // Check the devices against the spec once here rather than in every worker.
                foreach (var device in deviceList) _ = new ExperimentRunner(plan, options with { Device = device });
                var launches = deviceList.Select((device, i) => WorkerLaunch(parse, options, device, i)).ToList();
                int[] exitCodes;
                try
                {
                    exitCodes = WorkerPool.Run(launches, console.Handle, console.Log, cancellation);
                }
                finally
                {
                    console.EndStatus();
                }
                summary = new RunSummary
                {
                    Spec = plan.SpecName,
                    RunId = options.RunId,
                    Shard = options.Shard.ToString(),
                    Devices = deviceList,
                    Total = plan.Jobs.Count(j => options.Shard.Contains(j.Index)),
                    AlreadyComplete = console.Outcomes.Values.Count(o => o.Status == "complete"),
                    Rendered = console.Outcomes.Values.Count(o => o.Status == "rendered"),
                    Linked = console.Outcomes.Values.Count(o => o.Status == "linked"),
                    Failed = console.Outcomes.Values.Count(o => o.Status == "failed"),
                    WallSeconds = console.Elapsed.TotalSeconds,
                    Manifest = Manifest.For(options.OutputDir, plan.SpecName).Path,
                    Jobs = console.Outcomes.Values.OrderBy(o => o.Index).ToList(),
                };
                var crashed = exitCodes.Select((code, i) => (code, i)).Where(x => x.code != 0 && x.code != 1).ToList();
                if (crashed.Count > 0)
                    throw new CogVideoXException($"worker(s) {string.Join(", ", crashed.Select(c => $"{c.i} (exit {c.code})"))} stopped abnormally; their messages are above. Run the same command again to finish: completed videos are kept.");
                bool workersLeftSome = summary.Rendered + summary.Linked + summary.AlreadyComplete + summary.Failed < summary.Total;
                // Workers stop when their first videos all fail the same way (no GPU, a broken model): running the
                // same command again would only repeat that.
                if (workersLeftSome && summary.Failed > 0 && summary.Rendered + summary.Linked == 0 && exitCodes.All(code => code != 0))
                    throw new CogVideoXException($"every worker stopped after its first videos failed ({summary.Failed} of {summary.Total} video(s) tried; the messages above say why). " +
                        "Fix that and run the same command again; finished videos are kept.");
                if (workersLeftSome)
                    throw new CogVideoXException($"the workers finished {summary.Rendered + summary.Linked + summary.AlreadyComplete} of {summary.Total} videos; run the same command again to finish the rest");
            }

            var unfinished = summary.Total - summary.Rendered - summary.Linked - summary.AlreadyComplete;
            var line = string.Create(CultureInfo.InvariantCulture,
                $"{plan.SpecName}: {summary.Total} video(s): {summary.Rendered} rendered, {(summary.Linked > 0 ? $"{summary.Linked} linked to identical ones, " : "")}{summary.AlreadyComplete} already complete, {summary.Failed} failed in {RunConsole.Clock(TimeSpan.FromSeconds(summary.WallSeconds))} → {options.OutputDir}");
            if (asJson) stdout.WriteLine(JsonSerializer.Serialize(summary, LabRunJsonContext.Readable.RunSummary));
            else
            {
                stdout.WriteLine(line);
                if (!isQuiet) stdout.WriteLine(unfinished == 0 ? $"manifest: {summary.Manifest}; next: {ReportHint(parse)}" : "failed videos are retried by running the same command again");
            }
            return Task.FromResult(summary.Failed > 0 ? 1 : 0);
        });
        return cmd;
    }

    private static Command CreateWorker(Func<GpuCheck> gpu)
    {
        var device = new Option<string>("--device") { Required = true };
        var worker = new Option<int>("--worker") { Required = true };
        var runId = new Option<string>("--run-id") { Required = true };
        var cmd = new Command("worker", "One worker of `experiment run --devices` (started by it; prints events as JSON lines).")
        {
            s_spec, device, worker, runId, s_shard, s_output, s_renderer, s_staleAfter, s_syntheticStepMs,
        };
        cmd.Hidden = true;
        cmd.SetAction((parse, cancellation) =>
        {
            var (_, plan, options, _) = Load(parse, gpu, parse.GetValue(device));
            options = options with { Device = parse.GetValue(device)!, Worker = parse.GetValue(worker), RunId = parse.GetValue(runId)! };
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            WorkerPool.WatchParent(stop, TimeSpan.FromSeconds(10));
            var output = parse.InvocationConfiguration.Output;
            var gate = new object();
            var runner = new ExperimentRunner(plan, options);
            var renderer = RendererFactory.Create(parse.GetValue(s_renderer)!, TimeSpan.FromMilliseconds(parse.GetValue(s_syntheticStepMs)));
            try
            {
                var summary = runner.Run(renderer, e =>
                {
                    var line = JsonSerializer.Serialize(e, LabLineJsonContext.Readable.RunEvent);
                    lock (gate)
                    {
                        output.WriteLine(line);
                        output.Flush();
                    }
                }, stop.Token);
                return Task.FromResult(summary.Failed > 0 ? 1 : 0);
            }
            finally
            {
                (renderer as IDisposable)?.Dispose();
            }
        });
        return cmd;
    }

    /// <summary>
    /// The spec, its plan with <c>device: auto</c> decided (the kind of <paramref name="workerDevice"/> for the workers
    /// of --devices, the CPU for test patterns, else the GPU when one works), and the run's options.
    /// </summary>
    private static (ExperimentSpec Spec, StudyPlan Plan, RunOptions Options, DeviceChoice Device) Load(ParseResult parse, Func<GpuCheck> gpu, string? workerDevice)
    {
        var spec = SpecParser.Load(parse.GetValue(s_spec)!);
        var plan = StudyPlan.Expand(spec);
        var minutes = parse.GetValue(s_staleAfter);
        if (minutes <= 0 || double.IsNaN(minutes))
            throw new CogVideoXException($"--stale-after-minutes must be > 0 (got {minutes.ToString(CultureInfo.InvariantCulture)})", 2);
        var kind = parse.GetValue(s_renderer)!;
        if (!RendererFactory.Kinds.Contains(kind))
            throw new CogVideoXException($"unknown renderer '{kind}'; use one of: {string.Join(", ", RendererFactory.Kinds)}", 2);
        var choice = new DeviceChoice("", "");
        if (plan.Jobs.Any(j => DeviceSelection.IsAuto(j.Settings.Device)))
        {
            choice = kind == RendererFactory.Synthetic ? new DeviceChoice("cpu", "device: cpu — the synthetic renderer draws test patterns on the CPU")
                : workerDevice is not null ? new DeviceChoice(GenerationSettings.DeviceKind(workerDevice), $"device: {workerDevice} — from --devices")
                : DeviceSelection.Resolve(DeviceSelection.Auto, gpu);
            plan = plan.WithDevice(choice.Device);
        }
        var options = new RunOptions
        {
            OutputDir = OutputFolder(parse.GetValue(s_output), spec),
            Shard = parse.GetValue(s_shard) is { } s ? Shard.Parse(s) : Shard.All,
            StaleAfter = TimeSpan.FromMinutes(minutes),
            Synthetic = kind == RendererFactory.Synthetic,
        };
        return (spec, plan, options, choice);
    }

    /// <summary>The report command for this run's outputs (with -o when the run was given one).</summary>
    private static string ReportHint(ParseResult parse) =>
        $"cogvideox report {Quote(parse.GetValue(s_spec)!)}{(parse.GetValue(s_output) is { } o ? $" -o {Quote(o)}" : "")}";

    private static string Quote(string path) => path.Any(c => char.IsWhiteSpace(c) || c is '\'' or '"' or '$') ? $"'{path.Replace("'", "'\\''")}'" : path;

    /// <summary>
    /// What every job needs, checked once before the first: ffmpeg, each model (downloaded now if it is neither a
    /// folder nor in the cache, as generate does) and each device — so a run that cannot work stops with one message
    /// instead of failing every job the same way.
    /// </summary>
    /// <param name="checkDevices">False with --devices: the workers open their own GPUs (the parent holds none, so it takes no GPU memory from them).</param>
    private static void Preflight(StudyPlan plan, RunOptions options, TextWriter messages, Func<string, string?> environment, bool checkDevices, CancellationToken cancellation)
    {
        var todo = plan.Jobs.Where(j => options.Shard.Contains(j.Index) && !VideoSidecar.IsComplete(j.ToVideoJob(options.OutputDir), verifyHash: false)).ToList();
        if (todo.Count == 0) return;
        _ = CogVideoX.Media.Ffmpeg.FfmpegPath;
        foreach (var model in todo.Select(j => j.Settings.Model).Distinct(StringComparer.Ordinal))
            ModelResolution.ResolveAsync(model, messages, environment, cancellation).GetAwaiter().GetResult();
        if (!checkDevices) return;
        foreach (var device in todo.Select(j => options.Device ?? j.Settings.Device).Distinct(StringComparer.Ordinal))
        {
            try
            {
                _ = Backends.Get(device);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                throw new CogVideoXException($"device {device} cannot run here ({e.Message}); no video was started. Set `device: auto` or `device: cpu` in the spec's defaults, " +
                    "or run `cogvideox doctor` to see what the GPU lacks", 2);
            }
        }
    }

    /// <summary>
    /// The folder a study's files go to (--output, else the spec's output_dir), checked before any work: it must be a
    /// folder or not exist yet.
    /// </summary>
    internal static string OutputFolder(string? option, ExperimentSpec spec)
    {
        var what = option is null ? $"output_dir of {spec.SourcePath}" : "--output";
        string full;
        try
        {
            full = Path.GetFullPath(option ?? spec.OutputDir);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new CogVideoXException($"{what} '{option}' is not a usable folder path ({e.Message}); give a folder", 2);
        }
        if (File.Exists(full))
            throw new CogVideoXException($"{what} names {full}, which is a file; give a folder (it holds <experiment>/<video>.mp4 and the study's plan, manifest and report)", 2);
        return full;
    }

    private static WorkerLaunch WorkerLaunch(ParseResult parse, RunOptions options, string device, int worker)
    {
        var (exe, prefix) = SelfCommand();
        var args = new List<string>(prefix)
        {
            "experiment", "worker", Path.GetFullPath(parse.GetValue(s_spec)!),
            "--device", device,
            "--worker", worker.ToString(CultureInfo.InvariantCulture),
            "--run-id", options.RunId,
            "--shard", options.Shard.ToString(),
            "--output", options.OutputDir,
            "--renderer", parse.GetValue(s_renderer)!,
            "--stale-after-minutes", parse.GetValue(s_staleAfter).ToString(CultureInfo.InvariantCulture),
            "--synthetic-step-ms", parse.GetValue(s_syntheticStepMs).ToString(CultureInfo.InvariantCulture),
        };
        return new WorkerLaunch(worker, device, exe, args);
    }

    /// <summary>
    /// How to start this program again: the executable itself (NativeAOT or apphost), or the dotnet host with
    /// cogvideox.dll when running under `dotnet` (or inside a test host).
    /// </summary>
    internal static (string FileName, string[] Prefix) SelfCommand()
    {
        var exe = Environment.ProcessPath ?? "dotnet";
        if (Path.GetFileNameWithoutExtension(exe) == "cogvideox") return (exe, []);
        var dll = Path.Combine(AppContext.BaseDirectory, "cogvideox.dll");
        if (!File.Exists(dll))
            throw new CogVideoXException($"cannot start worker processes: {dll} not found next to {exe}");
        var host = Path.GetFileNameWithoutExtension(exe) == "dotnet" ? exe : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        return (host, [dll]);
    }

    private static int PrintDryRun(TextWriter o, ExperimentSpec spec, StudyPlan plan, ExperimentRunner runner, RunOptions options, bool asJson, string kind,
        DeviceChoice device, Func<string, string?> environment, Func<GpuCheck> gpu, TextWriter error)
    {
        var rows = runner.DryRun();
        // What the run would find: the device and each model (looked for, never downloaded here).
        var checks = new List<string>();
        if (device.Reason.Length > 0) checks.Add(device.Reason);
        var todo = rows.Where(r => r.Status is "todo" or "stale").ToList();
        if (kind == RendererFactory.Pipeline)
        {
            foreach (var d in todo.Select(r => options.Device ?? r.Settings.Device).Distinct(StringComparer.Ordinal).Where(d => d != "cpu"))
            {
                var check = gpu();
                checks.Add(check.Works ? $"device {d}: a GPU works ({check.Detail})" : $"device {d}: NO GPU WORKS HERE ({check.Detail}); the run would stop before its first video — set `device: auto` or `cpu` in the spec");
            }
            foreach (var model in todo.Select(r => r.Settings.Model).Distinct(StringComparer.Ordinal))
            {
                try
                {
                    checks.Add($"model {model}: {ModelLocator.Resolve(model, environment).Identity}");
                }
                catch (CogVideoXException e)
                {
                    bool offline = HubSettings.FromEnvironment(environment).Offline;
                    checks.Add(!ModelLocator.CanDownload(model)
                        ? $"model {model}: NOT USABLE ({e.Message}); the run would stop before its first video"
                        : $"model {model}: not found ({e.Message}); {(offline ? "offline mode is on (HF_HUB_OFFLINE), so the run would stop before its first video" : "the run downloads it once before its first video")}");
                }
            }
        }
        if (asJson)
        {
            foreach (var c in checks) error.WriteLine(c);
            o.WriteLine(JsonSerializer.Serialize(rows, LabRunJsonContext.Readable.ListDryRunRow));
            return 0;
        }
        o.WriteLine($"{spec.Name}: {rows.Count} video(s) in shard {options.Shard} → {options.OutputDir}");
        foreach (var c in checks) o.WriteLine("  " + c);
        int width = Math.Max(5, rows.Count == 0 ? 0 : rows.Max(r => r.Output.Length));
        o.WriteLine($"  {"#",4}  {"status",-9} {"video".PadRight(width)}  settings");
        foreach (var r in rows)
            o.WriteLine($"  {r.Index,4}  {r.Status,-9} {r.Output.PadRight(width)}  {r.Summary}{(string.IsNullOrEmpty(r.Detail) ? "" : "  [" + r.Detail + "]")}");
        int same = rows.Count(r => r.Status == "same");
        o.WriteLine($"{todo.Count} to render, {(same > 0 ? $"{same} with the same settings as another (linked to it, not rendered again), " : "")}{rows.Count(r => r.Status == "complete")} complete, {rows.Count(r => r.Status == "claimed")} being rendered by other processes");
        return 0;
    }
}
