using System.CommandLine;
using CogVideoX.Engine;
using CogVideoX.Lab.Report;
using CogVideoX.Lab.Specs;

namespace CogVideoX.Cli.Commands;

/// <summary><c>report SPEC|DIR</c>: the HTML report of a study (from its spec, or from an output folder's plan files).</summary>
internal static class ReportCommand
{
    public static Command Create()
    {
        var target = new Argument<string>("spec-or-dir") { Description = "An experiment spec (YAML), or an output folder holding <spec>.plan.json" };
        var output = new Option<string?>("--output", "-o") { Description = "With a spec: the output folder, if not the spec's output_dir" };
        var recompute = new Option<bool>("--recompute-metrics") { Description = "Decode every video again and recompute all metrics" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print only the report's path" };
        var cmd = new Command("report", "Write a self-contained HTML report of a study: videos side by side, key frames, charts, a table of runs, and what changed the most.")
        {
            target, output, recompute, quiet,
        };
        cmd.SetAction(parse =>
        {
            var o = parse.InvocationConfiguration.Output;
            bool isQuiet = parse.GetValue(quiet);
            foreach (var (plan, dir) in Resolve(parse.GetValue(target)!, parse.GetValue(output)))
            {
                var result = ReportBuilder.Build(plan, dir, parse.GetValue(recompute), isQuiet ? null : line => o.WriteLine("  " + line));
                if (isQuiet)
                {
                    o.WriteLine(result.HtmlPath);
                    continue;
                }
                o.WriteLine($"{plan.SpecName}: {result.Complete} of {result.Videos} video(s) complete → {result.HtmlPath}");
                foreach (var f in result.Findings) o.WriteLine($"  {f.Experiment}: {f.Sentence}");
            }
            return 0;
        });
        return cmd;
    }

    private static IEnumerable<(StudyPlan Plan, string Dir)> Resolve(string target, string? output)
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
            throw new CogVideoXException($"{dir} does not exist: run `cogvideox experiment run {target}` first");
        return [(StudyPlan.Expand(spec), dir)];
    }
}
