using System.Globalization;
using CogVideoX.Lab.Metrics;
using CogVideoX.Lab.Runs;
using CogVideoX.Lab.Specs;

namespace CogVideoX.Lab.Report;

/// <summary>Everything the report knows about one planned video: its settings, and if finished its sidecar, manifest line and metrics.</summary>
public sealed record ReportRun(PlannedJob Job, bool Complete, VideoSidecar? Sidecar, ManifestRecord? Record, VideoMetricsEntry? Metrics)
{
    public double? TotalSeconds => Sidecar?.TimingsSeconds.TryGetValue("total", out var t) == true ? t : Record?.WallSeconds;

    public double? DenoiseSeconds => Sidecar?.TimingsSeconds.TryGetValue("denoise", out var t) == true ? t : null;

    public double? PeakMemoryGiB => Sidecar is { PeakMemoryBytes: > 0 } s ? s.PeakMemoryBytes / (1024.0 * 1024 * 1024) : null;

    // The sidecar names the device that rendered it (cuda:0); the manifest of a rendered job may hold the plan's (cuda).
    public string? Device => Sidecar?.Device ?? Record?.Device;
}

/// <summary>A quantity the report charts and tabulates per video; <see cref="Short"/> heads its table column.</summary>
public sealed record MetricDef(string Key, string Label, string Unit, Func<ReportRun, double?> Value, bool FromZero, string Format, string Short)
{
    /// <summary>A value for the table; an infinite PSNR (the same pixels) reads "identical".</summary>
    public string Show(double? v) => v switch
    {
        null => "—",
        double d when double.IsPositiveInfinity(d) => "identical",
        double d => d.ToString(Format, CultureInfo.InvariantCulture),
    };

    public static readonly MetricDef Time = new("time", "render time", "s", r => r.TotalSeconds, true, "0.0", "time (s)");
    public static readonly MetricDef Memory = new("memory", "peak memory", "GiB", r => r.PeakMemoryGiB, true, "0.00", "peak (GiB)");
    public static readonly MetricDef Flicker = new("flicker", "flicker", "mean |Δ| per frame", r => r.Metrics?.Metrics.Flicker, true, "0.0000", "flicker");
    public static readonly MetricDef Sharpness = new("sharpness", "sharpness", "Laplacian variance", r => r.Metrics?.Metrics.Sharpness, true, "0.0", "sharpness");
    public static readonly MetricDef Colourfulness = new("colourfulness", "colourfulness", "Hasler–Süsstrunk", r => r.Metrics?.Metrics.Colourfulness, true, "0.0", "colour");
    // The reference against itself: PSNR ∞ (left out of charts), SSIM 1 — so its point anchors the SSIM chart.
    public static readonly MetricDef Psnr = new("psnr", "PSNR to reference", "dB",
        r => r.Metrics?.Difference?.Psnr ?? (r.Job.IsReference && r.Metrics is not null ? double.PositiveInfinity : null), false, "0.00", "PSNR (dB)");
    public static readonly MetricDef Ssim = new("ssim", "SSIM to reference", "",
        r => r.Metrics?.Difference?.Ssim ?? (r.Job.IsReference && r.Metrics is not null ? 1.0 : null), false, "0.000", "SSIM");

    /// <summary>What each video is on its own (the summary compares these across settings).</summary>
    public static readonly MetricDef[] Intrinsic = [Flicker, Sharpness, Colourfulness];

    public static readonly MetricDef[] All = [Time, Memory, Flicker, Sharpness, Colourfulness, Psnr, Ssim];
}

/// <summary>Gathers a plan's finished videos with their sidecars, manifest lines and metrics.</summary>
public static class ReportData
{
    public static List<ReportRun> Collect(StudyPlan plan, string outputDir, MetricsFile metrics)
    {
        var (records, _) = Manifest.For(outputDir, plan.SpecName).Read();
        // The last line about a given video file (output + checksum) describes it.
        var byVideo = new Dictionary<string, ManifestRecord>(StringComparer.Ordinal);
        foreach (var r in records.Where(r => r.Event is "done" or "recovered" or "linked"))
            byVideo[r.Output + "\n" + r.VideoSha256] = r;
        var runs = new List<ReportRun>();
        foreach (var job in plan.Jobs)
        {
            var vj = job.ToVideoJob(outputDir);
            bool complete = VideoSidecar.IsComplete(vj, verifyHash: false);
            var sidecar = complete ? VideoSidecar.TryLoad(vj.SidecarPath) : null;
            ManifestRecord? record = sidecar is null ? null : byVideo.GetValueOrDefault(job.Output + "\n" + sidecar.VideoSha256);
            var entry = complete && metrics.Videos.TryGetValue(job.Output, out var m) && m.VideoSha256 == sidecar?.VideoSha256 ? m : null;
            runs.Add(new ReportRun(job, complete, sidecar, record, entry));
        }
        return runs;
    }
}
