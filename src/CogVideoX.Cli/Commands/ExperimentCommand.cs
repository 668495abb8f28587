using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using CogVideoX.Engine;
using CogVideoX.Lab;
using CogVideoX.Lab.Runs;
using CogVideoX.Lab.Specs;

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

    public static Command Create()
    {
        var cmd = new Command("experiment", "Run experiment studies: many videos from one spec, resumable, shardable, spread over GPUs.");
        cmd.Subcommands.Add(CreateRun());
        cmd.Subcommands.Add(CreateWorker());
        return cmd;
    }

    private static Command CreateRun()
    {
        var dryRun = new Option<bool>("--dry-run") { Description = "List what would be rendered and what is already complete; change nothing" };
        var devices = new Option<string?>("--devices")
        {
            Description = "One worker process per device, taking jobs as they free up: GPU ordinals (0,1,2), cuda:N, or cpu",
        };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print only failures and the final line" };
        var json = new Option<bool>("--json") { Description = "Print a JSON summary on stdout (progress goes to stderr)" };
        var cmd = new Command("run", "Render every video of a spec that is not complete yet; safe to interrupt and run again.")
        {
            s_spec, dryRun, s_shard, devices, s_output, quiet, json, s_renderer, s_staleAfter, s_syntheticStepMs,
        };
        cmd.SetAction((parse, cancellation) =>
        {
            var config = parse.InvocationConfiguration;
            var (spec, plan, options) = Load(parse);
            bool asJson = parse.GetValue(json), isQuiet = parse.GetValue(quiet);
            var stdout = config.Output;
            var progressOut = asJson ? config.Error : stdout;

            if (parse.GetValue(dryRun))
                return Task.FromResult(PrintDryRun(stdout, spec, new ExperimentRunner(plan, options), options, asJson));

            var deviceList = parse.GetValue(devices) is { } d ? DeviceList.Parse(d) : null;
            bool interactive = ReferenceEquals(progressOut, Console.Out) && !Console.IsOutputRedirected
                || ReferenceEquals(progressOut, Console.Error) && !Console.IsErrorRedirected;
            var console = new RunConsole(progressOut, interactive, isQuiet, deviceList?.Count ?? 1);
            var kind = parse.GetValue(s_renderer)!;
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
                    Failed = console.Outcomes.Values.Count(o => o.Status == "failed"),
                    WallSeconds = console.Elapsed.TotalSeconds,
                    Manifest = Manifest.For(options.OutputDir, plan.SpecName).Path,
                    Jobs = console.Outcomes.Values.OrderBy(o => o.Index).ToList(),
                };
                var crashed = exitCodes.Select((code, i) => (code, i)).Where(x => x.code != 0 && x.code != 1).ToList();
                if (crashed.Count > 0)
                    throw new CogVideoXException($"worker(s) {string.Join(", ", crashed.Select(c => $"{c.i} (exit {c.code})"))} stopped abnormally; their messages are above. Run the same command again to finish: completed videos are kept.");
                if (summary.Rendered + summary.AlreadyComplete + summary.Failed < summary.Total)
                    throw new CogVideoXException($"the workers finished {summary.Rendered + summary.AlreadyComplete} of {summary.Total} videos; run the same command again to finish the rest");
            }

            var unfinished = summary.Total - summary.Rendered - summary.AlreadyComplete;
            var line = string.Create(CultureInfo.InvariantCulture,
                $"{plan.SpecName}: {summary.Total} video(s): {summary.Rendered} rendered, {summary.AlreadyComplete} already complete, {summary.Failed} failed in {RunConsole.Clock(TimeSpan.FromSeconds(summary.WallSeconds))} → {options.OutputDir}");
            if (asJson) stdout.WriteLine(JsonSerializer.Serialize(summary, LabRunJsonContext.Default.RunSummary));
            else
            {
                stdout.WriteLine(line);
                if (!isQuiet) stdout.WriteLine(unfinished == 0 ? $"manifest: {summary.Manifest}; next: cogvideox report {parse.GetValue(s_spec)}" : "failed videos are retried by running the same command again");
            }
            return Task.FromResult(summary.Failed > 0 ? 1 : 0);
        });
        return cmd;
    }

    private static Command CreateWorker()
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
            var (_, plan, options) = Load(parse);
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
                    var line = JsonSerializer.Serialize(e, LabLineJsonContext.Default.RunEvent);
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

    private static (ExperimentSpec Spec, StudyPlan Plan, RunOptions Options) Load(ParseResult parse)
    {
        var spec = SpecParser.Load(parse.GetValue(s_spec)!);
        var plan = StudyPlan.Expand(spec);
        var minutes = parse.GetValue(s_staleAfter);
        if (minutes <= 0 || double.IsNaN(minutes))
            throw new CogVideoXException($"--stale-after-minutes must be > 0 (got {minutes.ToString(CultureInfo.InvariantCulture)})", 2);
        var kind = parse.GetValue(s_renderer)!;
        if (!RendererFactory.Kinds.Contains(kind))
            throw new CogVideoXException($"unknown renderer '{kind}'; use one of: {string.Join(", ", RendererFactory.Kinds)}", 2);
        var options = new RunOptions
        {
            OutputDir = OutputFolder(parse.GetValue(s_output), spec),
            Shard = parse.GetValue(s_shard) is { } s ? Shard.Parse(s) : Shard.All,
            StaleAfter = TimeSpan.FromMinutes(minutes),
            Synthetic = kind == RendererFactory.Synthetic,
        };
        return (spec, plan, options);
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

    private static int PrintDryRun(TextWriter o, ExperimentSpec spec, ExperimentRunner runner, RunOptions options, bool asJson)
    {
        var rows = runner.DryRun();
        if (asJson)
        {
            o.WriteLine(JsonSerializer.Serialize(rows, LabRunJsonContext.Default.ListDryRunRow));
            return 0;
        }
        o.WriteLine($"{spec.Name}: {rows.Count} video(s) in shard {options.Shard} → {options.OutputDir}");
        int width = Math.Max(5, rows.Count == 0 ? 0 : rows.Max(r => r.Output.Length));
        o.WriteLine($"  {"#",4}  {"status",-9} {"video".PadRight(width)}  settings");
        foreach (var r in rows)
            o.WriteLine($"  {r.Index,4}  {r.Status,-9} {r.Output.PadRight(width)}  {r.Settings}{(string.IsNullOrEmpty(r.Detail) ? "" : "  [" + r.Detail + "]")}");
        o.WriteLine($"{rows.Count(r => r.Status is "todo" or "stale")} to render, {rows.Count(r => r.Status == "complete")} complete, {rows.Count(r => r.Status == "claimed")} being rendered by other processes");
        return 0;
    }
}
