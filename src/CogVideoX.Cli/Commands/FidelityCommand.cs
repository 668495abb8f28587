using System.CommandLine;
using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Lab.Metrics;
using CogVideoX.Weights;

namespace CogVideoX.Cli.Commands;

/// <summary>
/// <c>fidelity &lt;fixture folder&gt;…</c>: the fast modes' cost in fidelity — every golden run of the folders rendered on
/// the exact path and in each mode (CPU, float32), the frames' PSNR/SSIM against the exact ones and the times, as a
/// Markdown table (the one in docs/fast-modes.md).
/// </summary>
internal static class FidelityCommand
{
    public static Command Create()
    {
        var folders = new Argument<string[]>("folders")
        {
            Description = "Fixture model folders with golden runs (runs/runs.json), e.g. tests/fixtures/golden/pipeline_2b_style.",
            Arity = ArgumentArity.OneOrMore,
        };
        var steps = new Option<int[]>("--steps")
        {
            Description = "Also render every run at these step counts (the golden runs have 2–4 steps, too few to reuse many).",
            AllowMultipleArgumentsPerToken = true,
        };
        var modes = new Option<string[]>("--mode")
        {
            Description = "A mode to measure, MODE[:THRESHOLD[:EXACT_STEPS]] (repeatable; MODE teacache, fbcache, sage8, fp8 or a combination such as sage8+teacache, or a +fp8 suffix); " +
                "default: teacache 0.1/0.2 and fbcache 0.05/0.6/0.8, each alone and with 2 exact steps; sage8 alone, with 2 exact steps and with teacache 0.1 and fbcache 0.6; " +
                "fp8 alone and with teacache 0.1 and fbcache 0.6, each alone and with 2 exact steps (sage8 and fp8 on the CPU are exact emulations: slow).",
            AllowMultipleArgumentsPerToken = true,
        };
        var cmd = new Command("fidelity", "Measure the fast modes against the exact path on golden runs: PSNR/SSIM of the frames and the time, as a Markdown table.");
        cmd.Arguments.Add(folders);
        cmd.Options.Add(steps);
        cmd.Options.Add(modes);
        cmd.SetAction(parse =>
        {
            var o = parse.InvocationConfiguration.Output;
            var given = parse.GetValue(modes) ?? [];
            var list = given.Length == 0 ? FidelityMode.Defaults : given.Select(FidelityMode.Parse).ToList();
            var stepCounts = new List<int?> { null };
            foreach (var n in parse.GetValue(steps) ?? [])
            {
                GenerationRules.CheckSteps(n);
                stepCounts.Add(n);
            }
            var rows = new List<FidelityRow>();
            foreach (var folder in parse.GetValue(folders)!)
            {
                var runs = stepCounts.SelectMany(n => FidelityStudy.GoldenRuns(folder, n)).ToList();
                using var pipeline = new CogVideoXPipeline(ModelFolder.Open(folder), new PipelineOptions { Backend = CpuBackend.Instance, DType = DType.F32 });
                foreach (var run in runs)
                {
                    parse.InvocationConfiguration.Error.WriteLine($"{run.Name}, {run.Request.Steps} steps: exact and {list.Count} modes…");
                    rows.AddRange(FidelityStudy.Measure(pipeline, run, list));
                }
            }
            o.Write(FidelityStudy.Table(rows));
            return 0;
        });
        return cmd;
    }
}
