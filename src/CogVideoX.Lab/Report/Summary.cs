using System.Globalization;
using CogVideoX.Lab.Specs;

namespace CogVideoX.Lab.Report;

/// <summary>One finding: a sentence and how large the effect was (|log ratio|), to rank findings.</summary>
public sealed record Finding(string Experiment, string Sentence, double Size);

/// <summary>
/// Writes the report's "what changed the most" in words: for each varied setting, the change from its lowest to
/// its highest value (other settings at their reference), or the spread across values for settings without an
/// order (seeds); and which video is farthest from the reference.
/// </summary>
public static class Summary
{
    /// <summary>Below this relative change a metric "barely changed" and is not mentioned.</summary>
    private const double Noticeable = 0.03;

    /// <summary>Videos needed at both ends before a difference in render time is stated.</summary>
    private const int MinTimed = 2;

    public static List<Finding> Describe(StudyPlan plan, IReadOnlyList<ReportRun> runs)
    {
        var findings = new List<Finding>();
        foreach (var exp in plan.Experiments)
        {
            var expRuns = runs.Where(r => r.Job.Experiment == exp.Name && r.Complete).ToList();
            if (exp.Varied.Count == 0)
            {
                if (Baseline(exp, expRuns) is { } f) findings.Add(f);
                continue;
            }
            foreach (var varied in exp.Varied)
            {
                var slice = Slice(exp, varied, expRuns);
                if (slice.Count < 2) continue;
                findings.Add(varied.Continuous ? Ordered(exp, varied, slice) : Unordered(exp, varied, slice));
            }
            if (Farthest(exp, expRuns) is { } far) findings.Add(far);
        }
        return findings;
    }

    /// <summary>The setting's values in order with the experiment's runs at each (other grid keys at their reference).</summary>
    public static List<(string Value, List<ReportRun> Runs)> Slice(ExperimentPlan exp, VariedPlan varied, IReadOnlyList<ReportRun> runs)
    {
        var values = varied.Continuous
            ? varied.Values.OrderBy(v => double.Parse(v, CultureInfo.InvariantCulture)).ToList()
            : varied.Values.ToList();
        var result = new List<(string, List<ReportRun>)>();
        foreach (var value in values)
        {
            var at = runs.Where(r => r.Job.Values.GetValueOrDefault(varied.Key) == value
                && exp.Varied.Where(o => o.Key != varied.Key).All(o => r.Job.Values.GetValueOrDefault(o.Key) == exp.Reference.GetValueOrDefault(o.Key))).ToList();
            if (at.Count > 0) result.Add((value, at));
        }
        return result;
    }

    private static double? Mean(IEnumerable<ReportRun> runs, MetricDef metric)
    {
        var values = runs.Select(metric.Value).OfType<double>().Where(double.IsFinite).ToList();
        return values.Count == 0 ? null : values.Average();
    }

    private static Finding Ordered(ExperimentPlan exp, VariedPlan varied, List<(string Value, List<ReportRun> Runs)> slice)
    {
        var (lo, hi) = (slice[0], slice[^1]);
        var changes = new List<(string Phrase, double Size)>();
        foreach (var metric in MetricDef.Intrinsic)
        {
            if (Mean(lo.Runs, metric) is not { } a || Mean(hi.Runs, metric) is not { } b) continue;
            if (Change(metric.Label, a, b) is { } c) changes.Add(c);
        }
        var top = changes.OrderByDescending(c => c.Size).Take(2).ToList();
        var parts = new List<string>(top.Select(t => t.Phrase));
        // One video's time is not a finding (the first job of a run also loads the models): only means of several.
        if (lo.Runs.Count >= MinTimed && hi.Runs.Count >= MinTimed
            && Mean(lo.Runs, MetricDef.Time) is { } t0 && Mean(hi.Runs, MetricDef.Time) is { } t1 && t0 > 0 && Math.Abs(t1 / t0 - 1) >= 0.1)
            parts.Add(t1 > t0 ? $"took {Times(t1 / t0)} as long ({Num(t0)} s → {Num(t1)} s)" : $"ran {Times(t0 / t1)} faster ({Num(t0)} s → {Num(t1)} s)");
        if (Mean(lo.Runs, MetricDef.Memory) is { } m0 && Mean(hi.Runs, MetricDef.Memory) is { } m1 && m0 > 0 && Math.Abs(m1 / m0 - 1) >= 0.1)
            parts.Add($"peak memory {m0.ToString("0.0#", CultureInfo.InvariantCulture)} → {m1.ToString("0.0#", CultureInfo.InvariantCulture)} GiB");
        var subject = $"{varied.Key} {lo.Value}→{hi.Value}";
        var sentence = parts.Count == 0 ? $"{subject} barely changed the videos (every metric within {Percent(Noticeable)})" : $"{subject} {Join(parts)}";
        return new Finding(exp.Name, sentence, top.Count == 0 ? 0 : top[0].Size);
    }

    private static Finding Unordered(ExperimentPlan exp, VariedPlan varied, List<(string Value, List<ReportRun> Runs)> slice)
    {
        var spreads = new List<(string Label, double Spread)>();
        foreach (var metric in MetricDef.Intrinsic)
        {
            var means = slice.Select(s => Mean(s.Runs, metric)).OfType<double>().ToList();
            if (means.Count < 2 || means.Average() <= 0) continue;
            spreads.Add((metric.Label, (means.Max() - means.Min()) / means.Average()));
        }
        var top = spreads.Where(s => s.Spread >= Noticeable).OrderByDescending(s => s.Spread).Take(2).ToList();
        var values = string.Join(", ", slice.Select(s => s.Value));
        var sentence = top.Count == 0
            ? $"changing {varied.Key} ({values}) barely changed the videos' statistics (within {Percent(Noticeable)})"
            : $"changing {varied.Key} ({values}) moved {Join(top.Select((t, i) => i == 0 ? $"{t.Label} by up to {Percent(t.Spread)}" : $"{t.Label} by {Percent(t.Spread)}").ToList())}";
        return new Finding(exp.Name, sentence, top.Count == 0 ? 0 : Math.Log(1 + top[0].Spread));
    }

    private static Finding? Farthest(ExperimentPlan exp, List<ReportRun> runs)
    {
        var far = runs.Where(r => r.Metrics?.Difference is { } d && double.IsFinite(d.Ssim)).OrderBy(r => r.Metrics!.Difference!.Ssim).FirstOrDefault();
        if (far is null) return null;
        var d = far.Metrics!.Difference!;
        var reference = string.Join(", ", exp.Reference.Select(r => $"{r.Key} {r.Value}"));
        var label = string.Join(", ", far.Job.Values.Select(v => $"{v.Key} {v.Value}"));
        if (double.IsPositiveInfinity(d.Psnr))
            return new Finding(exp.Name, $"every video is identical to the reference ({reference}), pixel for pixel", 0);
        return new Finding(exp.Name, $"farthest from the reference ({reference}): {label} — PSNR {d.Psnr.ToString("0.0", CultureInfo.InvariantCulture)} dB, SSIM {d.Ssim.ToString("0.00", CultureInfo.InvariantCulture)}", 0);
    }

    private static Finding? Baseline(ExperimentPlan exp, List<ReportRun> runs)
    {
        if (runs.Count < 2) return null;
        var parts = new List<string>();
        var times = runs.Select(r => r.TotalSeconds).OfType<double>().ToList();
        if (times.Count > 0) parts.Add($"render time {Num(times.Min())}–{Num(times.Max())} s");
        foreach (var metric in new[] { MetricDef.Colourfulness, MetricDef.Sharpness })
        {
            var ranked = runs.Where(r => metric.Value(r) is double v && double.IsFinite(v)).OrderBy(r => metric.Value(r)).ToList();
            if (ranked.Count < 2) continue;
            parts.Add($"{metric.Label} from {Num(metric.Value(ranked[0])!.Value)} ({ranked[0].Job.Name}) to {Num(metric.Value(ranked[^1])!.Value)} ({ranked[^1].Job.Name})");
        }
        return parts.Count == 0 ? null : new Finding(exp.Name, $"across its {runs.Count} prompts: {Join(parts)}", 0);
    }

    /// <summary>"raised sharpness 3.1×" / "lowered colourfulness 12%"; null when within <see cref="Noticeable"/>.</summary>
    public static (string Phrase, double Size)? Change(string label, double from, double to)
    {
        if (from <= 0 && to <= 0) return null;
        if (from <= 0) return ($"raised {label} from 0 to {Num(to)}", 5);
        double ratio = to / from;
        if (Math.Abs(ratio - 1) < Noticeable) return null;
        string phrase = ratio >= 1.5 ? $"raised {label} {Times(ratio)}"
            : ratio > 1 ? $"raised {label} {Percent(ratio - 1)}"
            : ratio <= 0.5 ? $"lowered {label} {Times(1 / ratio)}"
            : $"lowered {label} {Percent(1 - ratio)}";
        return (phrase, Math.Abs(Math.Log(Math.Max(ratio, 1e-9))));
    }

    private static string Times(double r) => r.ToString(r >= 10 ? "0" : "0.0", CultureInfo.InvariantCulture) + "×";

    private static string Percent(double f) => (f * 100).ToString(f < 0.1 ? "0.#" : "0", CultureInfo.InvariantCulture) + "%";

    private static string Num(double v) => Math.Abs(v) >= 100 ? v.ToString("0", CultureInfo.InvariantCulture)
        : Math.Abs(v) >= 10 ? v.ToString("0.0", CultureInfo.InvariantCulture)
        : v.ToString("0.0##", CultureInfo.InvariantCulture);

    private static string Join(IReadOnlyList<string> parts) =>
        parts.Count <= 1 ? string.Concat(parts) : string.Join(", ", parts.Take(parts.Count - 1)) + " and " + parts[^1];
}
