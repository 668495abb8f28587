using System.CommandLine;
using CogVideoX.Engine;
using CogVideoX.Lab;
using CogVideoX.Lab.Report;
using CogVideoX.Lab.Specs;

namespace CogVideoX.Cli.Commands;

/// <summary><c>report SPEC|DIR</c>: the HTML report of a study (from its spec, or from an output folder's plan files).</summary>
internal static class ReportCommand
{
    /// <param name="gpu">Whether a GPU works: decides <c>device: auto</c> for a spec whose run left no plan file.</param>
    public static Command Create(Func<GpuCheck> gpu)
    {
        var target = new Argument<string>("spec-or-dir") { Description = "An experiment spec (YAML), or an output folder holding <spec>.plan.json" };
        var output = new Option<string?>("--output", "-o") { Description = "With a spec: the output folder, if not the spec's output_dir" };
        var recompute = new Option<bool>("--recompute-metrics") { Description = "Decode every video again and recompute all metrics" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print only the report's path" };
        var selfContained = new Option<bool>("--self-contained")
        {
            Description = "One HTML file that works on its own: images inside it, and videos too while they total at most --inline-videos-mb (past that they stay linked)",
        };
        var inlineMb = new Option<int>("--inline-videos-mb") { Description = "With --self-contained: the most MiB of video to put inside the page", DefaultValueFactory = _ => 64 };
        var cmd = new Command("report",
            "Write the HTML report of a study: videos side by side, key frames, charts, a table of runs, and what changed the most. " +
            "The page links its videos and a folder of images next to it; --self-contained puts them inside the page.")
        {
            target, output, recompute, quiet, selfContained, inlineMb,
        };
        cmd.SetAction(parse =>
        {
            var o = parse.InvocationConfiguration.Output;
            var e = parse.InvocationConfiguration.Error;
            bool isQuiet = parse.GetValue(quiet);
            if (parse.GetValue(inlineMb) < 0)
                throw new CogVideoXException($"--inline-videos-mb must be 0 or more (got {parse.GetValue(inlineMb)}); 0 keeps every video linked", 2);
            var options = new ReportOptions { SelfContained = parse.GetValue(selfContained), InlineVideoBytes = (long)parse.GetValue(inlineMb) << 20 };
            int code = 0;
            foreach (var (plan, dir) in Resolve(parse.GetValue(target)!, parse.GetValue(output), gpu))
            {
                // Work in progress on stderr, the result on stdout.
                var result = ReportBuilder.Build(plan, dir, parse.GetValue(recompute), isQuiet ? null : line => e.WriteLine("  " + line), options);
                if (result.Complete == 0)
                {
                    // Nothing to show usually means the wrong folder (a run with -o DIR reports with the same -o DIR).
                    e.WriteLine($"error: {dir} holds none of the {result.Videos} video(s) of {plan.SpecName}: render them first (`cogvideox experiment run SPEC`), " +
                        "or, if they were written elsewhere with -o DIR, pass the same -o DIR here");
                    code = 1;
                }
                if (isQuiet)
                {
                    o.WriteLine(result.HtmlPath);
                    continue;
                }
                var inlined = result.SelfContained ? $" (self-contained; {result.InlinedVideos} of {result.Complete} video(s) inside the page)" : "";
                o.WriteLine($"{plan.SpecName}: {result.Complete} of {result.Videos} video(s) complete → {result.HtmlPath}{inlined}");
                foreach (var f in result.Findings) o.WriteLine($"  {f.Experiment}: {f.Sentence}");
            }
            return code;
        });
        return cmd;
    }

    private static IEnumerable<(StudyPlan Plan, string Dir)> Resolve(string target, string? output, Func<GpuCheck> gpu)
    {
        if (Directory.Exists(target))
        {
            if (output is not null) throw new CogVideoXException("--output applies to a spec; with a folder the report is written into that folder", 2);
            var plans = Directory.GetFiles(target, "*.plan.json").Order(StringComparer.Ordinal).ToList();
            if (plans.Count == 0)
                throw new CogVideoXException($"{target} holds no *.plan.json: it is not an output folder of `experiment run` (or nothing was run yet); pass the spec instead");
            return plans.Select(p => (StudyPlan.Load(p), Path.GetFullPath(target)));
        }
        if (!File.Exists(target))
            throw new CogVideoXException($"{target}: no such spec file or output folder", 2);
        var spec = SpecParser.Load(target);
        var dir = ExperimentCommand.OutputFolder(output, spec);
        if (!Directory.Exists(dir))
            throw new CogVideoXException($"{dir} does not exist: run `cogvideox experiment run {target}` first, or, if it wrote elsewhere with -o DIR, pass the same -o DIR here");
        var plan = StudyPlan.Expand(spec);
        // The sidecars name the device the run decided for `device: auto` (cuda or cpu); the spec's plan must name the
        // same one or no video matches its job. The run's own plan file says which; without one, decide as a run would.
        if (plan.Jobs.Any(j => DeviceSelection.IsAuto(j.Settings.Device)))
            plan = plan.WithDevice(RunDevice(dir, plan.SpecName) ?? DeviceSelection.Resolve(DeviceSelection.Auto, gpu).Device);
        return [(plan, dir)];
    }

    /// <summary>The device the last run in <paramref name="dir"/> gave <c>device: auto</c>, from its plan file.</summary>
    private static string? RunDevice(string dir, string specName)
    {
        var path = Path.Combine(dir, StudyPlan.PlanFileName(specName));
        if (!File.Exists(path)) return null;
        try
        {
            return StudyPlan.Load(path).Jobs.Select(j => j.Settings.Device).FirstOrDefault(d => d is not null && !DeviceSelection.IsAuto(d));
        }
        catch (CogVideoXException)
        {
            return null; // a damaged plan file: decide as a run would
        }
    }
}
