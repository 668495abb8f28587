using System.CommandLine;
using System.Globalization;
using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Lab;
using CogVideoX.Lab.Benchmarks;

namespace CogVideoX.Cli.Commands;

/// <summary>
/// <c>bench pipeline</c>: the whole pipeline in each memory mode with random weights at full size (see
/// <see cref="PipelineBench"/>): per-stage times, the allocator's peak, the outputs against the full mode's, and the
/// targets. Exit code 1 when a target that applies is missed.
/// </summary>
internal static class BenchPipelineCommand
{
    public static Command Create(Func<GpuCheck> gpuCheck)
    {
        var model = new Option<string>("--model-config", "--model") { Description = "2b, 5b, 1.5 (the published configs, with random weights), a folder of configs, or a pipeline folder with weights.", DefaultValueFactory = _ => "2b" };
        var weights = new Option<string?>("--weights") { Description = "Where random weights are written and reused (default ~/.cache/cogvideox/random-weights/<model>-<dtype>).", HelpName = "FOLDER" };
        var memory = new Option<string>("--memory") { Description = "Memory modes to run, comma-separated, in order: full, balanced, low, auto.", DefaultValueFactory = _ => "full,balanced,low", HelpName = "MODES" };
        var device = new Option<string>("--device") { Description = "auto (the GPU when one works, else the CPU), cuda, cuda:N or cpu.", DefaultValueFactory = _ => DeviceSelection.Auto };
        var dtype = new Option<string>("--dtype") { Description = "f32, f16, bf16 or auto (f16 for 2b and bf16 for 5b on a GPU, f32 on the CPU).", DefaultValueFactory = _ => "auto", HelpName = "f32|f16|bf16|auto" };
        var steps = new Option<int>("--steps") { Description = "Denoising steps.", DefaultValueFactory = _ => 50 };
        var frames = new Option<int>("--frames") { Description = "Video frames (4k+1).", DefaultValueFactory = _ => 49 };
        var height = new Option<int>("--height") { Description = "Height in pixels.", DefaultValueFactory = _ => 480 };
        var width = new Option<int>("--width") { Description = "Width in pixels.", DefaultValueFactory = _ => 720 };
        var guidance = new Option<double>("--guidance") { Description = "Guidance scale (above 1: the transformer runs on a batch of 2).", DefaultValueFactory = _ => 6.0 };
        var seed = new Option<long>("--seed") { Description = "Seed of the latents.", DefaultValueFactory = _ => 42 };
        var warmup = new Option<int>("--warmup-steps") { Description = "Steps of a first, unmeasured video in each mode that loads the models as a sweep's first video does (0: none; the measured video then includes the loads).", DefaultValueFactory = _ => 2 };
        var videos = new Option<int>("--videos") { Description = "Measured videos per mode (after the warm-up); the last is the one compared.", DefaultValueFactory = _ => 1 };
        var tiling = new Option<bool>("--vae-tiling") { Description = "Decode in tiles in every mode (low always does), so the frames of all modes compare exactly." };
        var cache = new Option<string>("--cache") { Description = "Step caching in every mode: none, teacache or fbcache (random weights decide differently from real ones: see docs/fast-modes.md).", DefaultValueFactory = _ => "none", HelpName = "none|teacache|fbcache" };
        var cacheThreshold = new Option<double?>("--cache-threshold") { Description = "The step cache's threshold (teacache 0.1, fbcache 0.05 by default).", HelpName = "X" };
        var exactSteps = new Option<int>("--exact-steps") { Description = "Keep the first and last N steps exact under a fast mode (step cache, --attention sage8, --linear fp8).", HelpName = "N" };
        var linear = new Option<string>("--linear") { Description = "The blocks' projections in every mode: exact or fp8 (FP8 E4M3; sm_89+ GPUs).", DefaultValueFactory = _ => "exact", HelpName = "exact|fp8" };
        var fullSeconds = new Option<double?>("--full-seconds") { Description = "The full mode's total from an earlier run, for the time targets when full is not in --memory.", HelpName = "SECONDS" };
        var cmd = new Command("pipeline",
            "The whole pipeline (text encoder, denoising, VAE) in each memory mode with random weights at full size: per-stage times, peak device memory, " +
            "outputs compared with the full mode, and the targets (balanced ≤ 10 GiB at ≤ 1.1× the full mode's time, low ≤ 4 GiB at ≤ 1.25×).");
        foreach (var o in new Option[] { model, weights, memory, device, dtype, steps, frames, height, width, guidance, seed, warmup, videos, tiling, cache, cacheThreshold, exactSteps, linear, fullSeconds })
            cmd.Options.Add(o);
        var gpu = new GpuFlags();
        gpu.AddTo(cmd);
        cmd.SetAction(parse =>
        {
            var o = parse.InvocationConfiguration.Output;
            var e = parse.InvocationConfiguration.Error;
            var choice = DeviceSelection.Resolve(parse.GetValue(device)!.Trim().ToLowerInvariant(), gpuCheck);
            if (choice.Reason.Length > 0) e.WriteLine(choice.Reason);
            var settings = new PipelineBenchSettings
            {
                Model = parse.GetValue(model)!,
                WeightsFolder = parse.GetValue(weights),
                Modes = parse.GetValue(memory)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                Device = choice.Device,
                DType = parse.GetValue(dtype)!.Trim().Equals("auto", StringComparison.OrdinalIgnoreCase) ? null : RenderPlan.ParseDType(parse.GetValue(dtype)!),
                Steps = parse.GetValue(steps),
                Frames = parse.GetValue(frames),
                Height = parse.GetValue(height),
                Width = parse.GetValue(width),
                Guidance = parse.GetValue(guidance),
                Seed = parse.GetValue(seed),
                Cache = StepCaching.Parse(parse.GetValue(cache)!),
                CacheThreshold = parse.GetValue(cacheThreshold),
                ExactSteps = parse.GetValue(exactSteps),
                Linears = LinearModes.Parse(parse.GetValue(linear)!),
                WarmupSteps = parse.GetValue(warmup),
                Videos = parse.GetValue(videos),
                VaeTiling = parse.GetValue(tiling),
                FullSeconds = parse.GetValue(fullSeconds),
                Gpu = gpu.Read(parse),
                Attention = GpuOptions.ParseAttentionMode(gpu.Names(parse).Attention),
            };
            var result = PipelineBench.Run(settings, line => e.WriteLine(line), new StepLog(e));
            Print(o, result, settings.Videos);
            return result.TargetsMet ? 0 : 1;
        });
        return cmd;
    }

    private static void Print(TextWriter o, PipelineBenchResult r, int videos)
    {
        o.WriteLine($"bench pipeline: {r.ModelDescription}; {r.DType.Name()} on {r.Backend}");
        foreach (var m in r.Modes)
        {
            o.WriteLine($"mode {m.Mode}:");
            foreach (var v in m.Videos) o.WriteLine("  " + PipelineBench.Describe(v, videos));
            foreach (var note in m.Measured.Notes) o.WriteLine("  " + note);
        }
        o.WriteLine($"summary (measured video {videos} of each mode):");
        o.WriteLine($"  {"mode",-10} {"total",10} {"× full",7} {"text enc.",10} {"denoise",10} {"decode",9} {"peak",11} {"estimate",10}  outputs vs full");
        foreach (var m in r.Modes)
        {
            var t = m.Measured.Timings;
            string ratio = r.FullSeconds is { } f && f > 0 ? (t.Total.TotalSeconds / f).ToString("0.000", CultureInfo.InvariantCulture) : "—";
            string outputs = m.LatentsMaxDifference is { } l
                ? $"latents max |Δ| {l:G3}, frames max |Δ| {m.FramesMaxDifference:G3}{(m.Measured.VaeTiling != r.Modes[0].Measured.VaeTiling ? " (VAE tiles differ)" : "")}"
                : "(reference)";
            o.WriteLine($"  {m.Mode,-10} {Sec(t.Total),10} {ratio,7} {Sec(t.TextEncoder),10} {Sec(t.Denoise),10} {Sec(t.VaeDecode),9} " +
                $"{MemorySizes.Format(m.Measured.PeakBytes),11} {(m.Measured.Estimate is { } e ? MemorySizes.Format(e.Peak) : "—"),10}  {outputs}");
        }
        if (r.TargetsNotChecked is { } why)
        {
            o.WriteLine($"targets: not checked ({why})");
            return;
        }
        foreach (var t in r.Targets)
        {
            string time = t.TimeRatio is { } x
                ? $"time {x:0.000}× full (≤ {t.MaxTimeRatio:0.00}×) {(t.TimeMet == true ? "pass" : "FAIL")}"
                : "time: not checked (run full in the same invocation or give --full-seconds)";
            o.WriteLine($"target {t.Mode}: peak {MemorySizes.Format(t.PeakBytes)} (≤ {MemorySizes.Format(t.MaxPeakBytes)}) {(t.PeakMet ? "pass" : "FAIL")}; {time}");
        }
        if (r.Targets.Count == 0) o.WriteLine("targets: none of the modes run has one (balanced and low do)");
        else o.WriteLine(r.TargetsMet ? "targets: all met" : "targets: MISSED");
    }

    private static string Sec(TimeSpan t) => PipelineBench.Seconds(t.TotalSeconds);

    /// <summary>Every tenth denoising step on stderr, so a long run shows it is alive.</summary>
    private sealed class StepLog(TextWriter error) : IProgress<PipelineProgress>
    {
        public void Report(PipelineProgress p)
        {
            if (p.Stage != PipelineStages.Denoise || p.Step == 0 || (p.Step % 10 != 0 && p.Step != p.TotalSteps)) return;
            error.WriteLine($"    step {p.Step}/{p.TotalSteps}: {PipelineBench.Seconds(p.LastStep.TotalSeconds)} (denoise {PipelineBench.Seconds(p.StageElapsed.TotalSeconds)})");
        }
    }
}
