using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using CogVideoX.Lab.Metrics;
using CogVideoX.Lab.Specs;
using CogVideoX.Media;

namespace CogVideoX.Lab.Report;

/// <summary>What <see cref="ReportBuilder.Build"/> wrote.</summary>
/// <param name="InlinedVideos">Videos embedded in the page (self-contained reports); the others are linked.</param>
public sealed record ReportResult(string HtmlPath, string AssetsDir, int Videos, int Complete, IReadOnlyList<Finding> Findings,
    bool SelfContained = false, int InlinedVideos = 0);

/// <summary>How the report is written.</summary>
public sealed record ReportOptions
{
    /// <summary>Everything in the one HTML file: images inline, videos inline up to <see cref="InlineVideoBytes"/> in all (linked beyond).</summary>
    public bool SelfContained { get; init; }

    /// <summary>The most video bytes a self-contained page embeds (base64 adds a third); past it the videos stay linked.</summary>
    public long InlineVideoBytes { get; init; } = 64L << 20;
}

/// <summary>
/// Writes a study's report: one HTML page next to the outputs (<c>&lt;spec&gt;.report.html</c>) and its images in
/// <c>&lt;spec&gt;.report/</c>. Videos and images are referenced by relative paths and nothing is fetched from the
/// network, so the page works offline and when the output folder is copied elsewhere; with
/// <see cref="ReportOptions.SelfContained"/> the images (and the videos, up to a size) are inside the page, so the
/// page alone can be sent. Every user string (prompts, names, descriptions) is HTML-escaped.
/// </summary>
public static class ReportBuilder
{
    public static ReportResult Build(StudyPlan plan, string outputDir, bool recomputeMetrics = false, Action<string>? log = null, ReportOptions? options = null)
    {
        options ??= new ReportOptions();
        outputDir = Path.GetFullPath(outputDir);
        var metrics = MetricsStore.Refresh(plan, outputDir, recomputeMetrics, log);
        var runs = ReportData.Collect(plan, outputDir, metrics);
        var findings = Summary.Describe(plan, runs);
        var assetsName = plan.SpecName + ".report";
        var assets = Path.Combine(outputDir, assetsName);
        Directory.CreateDirectory(assets);
        AtomicFile.CleanStale(assets);
        var written = new HashSet<string>(StringComparer.Ordinal);
        var page = new Page(assets, assetsName, outputDir, options, runs);

        var html = new StringBuilder();
        Head(html, plan, runs);
        Overview(html, plan, runs, findings);
        foreach (var exp in plan.Experiments)
            Experiment(html, exp, runs.Where(r => r.Job.Experiment == exp.Name).ToList(), findings, page, written, log);
        Table(html, runs, page);
        Prompts(html, plan);
        Footer(html, plan, page);

        // Images of earlier reports that this one no longer shows.
        foreach (var file in Directory.GetFiles(assets))
            if (!written.Contains(Path.GetFileName(file))) File.Delete(file);
        var htmlPath = Path.Combine(outputDir, plan.SpecName + ".report.html");
        AtomicFile.WriteAllText(htmlPath, html.ToString());
        return new ReportResult(htmlPath, assets, runs.Count, runs.Count(r => r.Complete), findings, options.SelfContained, page.InlinedVideos);
    }

    /// <summary>Where the page's images and videos come from: files next to it, or (self-contained) data: URLs.</summary>
    private sealed class Page
    {
        private readonly HashSet<string> _inlined = new(StringComparer.Ordinal);

        public Page(string assets, string assetsName, string outputDir, ReportOptions options, List<ReportRun> runs)
        {
            (Assets, AssetsName, OutputDir, SelfContained) = (assets, assetsName, outputDir, options.SelfContained);
            if (!SelfContained) return;
            // Videos go in while they fit (in the page's order), so a small study is one file and a large one stays readable.
            long total = 0;
            foreach (var r in runs.Where(r => r.Complete))
            {
                long size = new FileInfo(Path.Combine(outputDir, r.Job.Output)).Length;
                if (total + size > options.InlineVideoBytes) continue;
                total += size;
                _inlined.Add(r.Job.Output);
            }
        }

        public string Assets { get; }

        public string AssetsName { get; }

        public string OutputDir { get; }

        public bool SelfContained { get; }

        public int InlinedVideos => _inlined.Count;

        public bool IsInlined(string output) => _inlined.Contains(output);

        /// <summary>The src of an image written to the assets folder.</summary>
        public string Image(string file) => SelfContained
            ? "data:image/png;base64," + Convert.ToBase64String(File.ReadAllBytes(Path.Combine(Assets, file)))
            : Url(AssetsName + "/" + file);

        /// <summary>The src of a finished video.</summary>
        public string Video(string output) => IsInlined(output)
            ? "data:video/mp4;base64," + Convert.ToBase64String(File.ReadAllBytes(Path.Combine(OutputDir, output)))
            : Url(output);
    }

    private static string H(string? text) => WebUtility.HtmlEncode(text ?? "");

    /// <summary>A relative URL (each path segment percent-encoded), HTML-escaped for an attribute.</summary>
    private static string Url(string relative) =>
        H(string.Join("/", relative.Split('/').Select(Uri.EscapeDataString)));

    private static string F(double v, string format) => v.ToString(format, CultureInfo.InvariantCulture);

    private static void Head(StringBuilder h, StudyPlan plan, List<ReportRun> runs)
    {
        h.Append($$"""
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <link rel="icon" href="data:,">
            <title>{{H(plan.SpecName)}} — CogVideoX study report</title>
            <style>
            :root { --ink:#1d2330; --muted:#5d6678; --line:#e3e6ec; --card:#fff; --bg:#f4f5f8; --accent:#3b5bdb; --warn:#fff4d6; --warn-line:#e8c25a; }
            * { box-sizing: border-box; }
            body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; color:var(--ink); background:var(--bg); }
            header.top { background:#1d2330; color:#fff; padding:22px 32px 18px; }
            header.top h1 { margin:0 0 4px; font-size:24px; font-weight:650; }
            header.top p { margin:2px 0; color:#c9cfdb; }
            nav { display:flex; flex-wrap:wrap; gap:6px; padding:10px 32px; background:#fff; border-bottom:1px solid var(--line); position:sticky; top:0; z-index:5; }
            nav a { color:var(--accent); text-decoration:none; padding:3px 10px; border-radius:14px; background:#eef1fb; font-size:13px; }
            main { padding:8px 32px 40px; max-width:1500px; }
            section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:18px 22px; margin:18px 0; }
            h2 { margin:0 0 4px; font-size:20px; }
            h3 { margin:18px 0 8px; font-size:15px; color:var(--muted); text-transform:uppercase; letter-spacing:.04em; }
            .muted { color:var(--muted); }
            .banner { background:var(--warn); border:1px solid var(--warn-line); border-radius:8px; padding:10px 14px; margin:16px 0 0; }
            .stats { display:flex; flex-wrap:wrap; gap:12px; margin:12px 0 4px; }
            .stat { background:#f7f8fb; border:1px solid var(--line); border-radius:8px; padding:8px 14px; min-width:130px; }
            .stat b { display:block; font-size:20px; }
            ul.findings { margin:6px 0 0; padding-left:20px; } ul.findings li { margin:3px 0; }
            .strip { display:flex; gap:14px; overflow-x:auto; padding-bottom:6px; }
            figure.video { margin:0; flex:0 0 auto; width:300px; background:#f7f8fb; border:1px solid var(--line); border-radius:8px; padding:8px; }
            figure.video.reference { border-color:var(--accent); box-shadow:0 0 0 1px var(--accent) inset; }
            figure.video video { width:100%; border-radius:5px; background:#000; display:block; }
            figure.video figcaption { font-size:13px; margin-top:6px; }
            figure.video figcaption b { font-size:14px; }
            .missing { height:170px; display:flex; align-items:center; justify-content:center; background:#eceef3; border-radius:5px; color:var(--muted); }
            .tag { display:inline-block; font-size:11px; padding:0 6px; border-radius:8px; background:var(--accent); color:#fff; margin-left:4px; vertical-align:1px; }
            .charts { display:flex; flex-wrap:wrap; gap:10px; }
            .charts img { width:420px; max-width:100%; border:1px solid var(--line); border-radius:6px; background:#fff; }
            img.grid { max-width:100%; border:1px solid var(--line); border-radius:6px; }
            button.play { font:inherit; font-size:13px; border:1px solid var(--accent); color:var(--accent); background:#fff; border-radius:14px; padding:2px 12px; cursor:pointer; margin-left:8px; }
            details.prompt { margin:6px 0; } details.prompt summary { cursor:pointer; color:var(--muted); }
            .table-wrap { overflow-x:auto; }
            table { border-collapse:collapse; font-size:13px; width:100%; }
            th, td { padding:5px 7px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
            th { position:sticky; top:0; background:#f7f8fb; cursor:pointer; user-select:none; white-space:normal; vertical-align:bottom; }
            th.text, td.text { text-align:left; }
            tr.missing-row td { color:var(--muted); }
            dl.prompts dt { font-weight:600; margin-top:10px; } dl.prompts dd { margin:2px 0 0 0; color:#333; }
            footer { color:var(--muted); font-size:13px; padding:0 32px 30px; }
            </style>
            </head>
            <body>

            """);
    }

    private static void Overview(StringBuilder h, StudyPlan plan, List<ReportRun> runs, List<Finding> findings)
    {
        var done = runs.Where(r => r.Complete).ToList();
        var models = done.Select(r => r.Sidecar?.ModelIdentity).OfType<string>().Distinct().ToList();
        var devices = done.Select(r => r.Device).OfType<string>().Distinct().Order().ToList();
        // A place that gets another's file (same settings) was not rendered: its time is that video's, counted once.
        var rendered = done.Where(r => r.Job.SameAs is null).ToList();
        double totalSeconds = rendered.Sum(r => r.TotalSeconds ?? 0);
        var peak = done.Select(r => r.PeakMemoryGiB).OfType<double>().DefaultIfEmpty(0).Max();
        h.Append($"<header class=\"top\"><h1>{H(plan.SpecName)}</h1>");
        if (!string.IsNullOrWhiteSpace(plan.Description)) h.Append($"<p>{H(plan.Description)}</p>");
        h.Append($"<p>Report generated {H(DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture))} · model {H(models.Count == 0 ? "—" : string.Join(", ", models))}</p></header>\n");
        h.Append("<nav><a href=\"#overview\">Overview</a>");
        foreach (var exp in plan.Experiments) h.Append($"<a href=\"#exp-{H(exp.Name)}\">{H(exp.Name)}</a>");
        h.Append("<a href=\"#runs\">All runs</a><a href=\"#prompts\">Prompts</a></nav>\n<main>\n");
        if (models.Contains(SyntheticRenderer.Identity))
            h.Append("<div class=\"banner\"><b>Rehearsal:</b> these videos were drawn by the synthetic renderer (test patterns from the settings), not by CogVideoX. The layout, timings and metrics machinery are real; the pictures are not.</div>\n");
        h.Append("<section id=\"overview\"><h2>Overview</h2><div class=\"stats\">");
        Stat(h, $"{done.Count} / {runs.Count}", "videos complete");
        Stat(h, totalSeconds < 120 ? F(totalSeconds, "0.0") + " s" : totalSeconds < 7200 ? F(totalSeconds / 60, "0.0") + " min" : F(totalSeconds / 3600, "0.0") + " h", "total render time");
        Stat(h, rendered.Count == 0 ? "—" : F(totalSeconds / rendered.Count, "0.0") + " s", "mean per video");
        Stat(h, peak > 0 ? F(peak, peak < 1 ? "0.00" : "0.0") + " GiB" : "—", "highest peak memory");
        Stat(h, devices.Count == 0 ? "—" : string.Join(", ", devices), "devices");
        h.Append("</div>");
        if (findings.Count > 0)
        {
            var headline = findings.OrderByDescending(f => f.Size).First();
            h.Append("<h3>What changed the most</h3>");
            if (headline.Size > 0) h.Append($"<p><b>Biggest effect</b> ({H(headline.Experiment)}): {H(headline.Sentence)}.</p>");
            h.Append("<ul class=\"findings\">");
            foreach (var f in findings) h.Append($"<li><b>{H(f.Experiment)}</b>: {H(f.Sentence)}.</li>");
            h.Append("</ul>");
        }
        else h.Append("<p class=\"muted\">No findings yet: render the study first (<code>cogvideox experiment run SPEC</code>).</p>");
        h.Append("</section>\n");
    }

    private static void Stat(StringBuilder h, string value, string label) =>
        h.Append($"<div class=\"stat\"><b>{H(value)}</b><span class=\"muted\">{H(label)}</span></div>");

    private static string Caption(PlannedJob job, ExperimentPlan exp) =>
        job.Values.Count == 0 ? job.Settings.PromptName ?? job.Name
        : (exp.Prompts.Count > 1 ? job.Settings.PromptName + " · " : "") + string.Join(" · ", job.Values.Select(v => $"{v.Key} {v.Value}"));

    private static void Experiment(StringBuilder h, ExperimentPlan exp, List<ReportRun> runs, List<Finding> findings, Page page,
        HashSet<string> written, Action<string>? log)
    {
        h.Append($"<section id=\"exp-{H(exp.Name)}\"><h2>{H(exp.Name)}</h2>");
        if (!string.IsNullOrWhiteSpace(exp.Description)) h.Append($"<p>{H(exp.Description)}</p>");
        var what = exp.Varied.Count == 0
            ? $"{exp.Prompts.Count} prompt(s) at the same settings"
            : $"varies {string.Join(" × ", exp.Varied.Select(v => $"{v.Key} ({string.Join(", ", v.Values)})"))}; reference: {string.Join(", ", exp.Reference.Select(r => $"{r.Key} {r.Value}"))}";
        var first = runs.FirstOrDefault()?.Job.Settings;
        h.Append($"<p class=\"muted\">{H(what)}{(first is null ? "" : " · others: " + H(Others(first, exp)))}</p>");
        if (exp.Prompts.Count == 1 && first is not null)
            h.Append($"<details class=\"prompt\"><summary>Prompt: {H(first.PromptName)}</summary><p>{H(first.Prompt)}</p></details>");
        foreach (var f in findings.Where(f => f.Experiment == exp.Name))
            h.Append($"<p>→ {H(f.Sentence)}.</p>");

        h.Append($"<h3>Videos<button class=\"play\" type=\"button\" data-strip=\"strip-{H(exp.Name)}\">▶ play all together</button></h3><div class=\"strip\" id=\"strip-{H(exp.Name)}\">");
        foreach (var r in runs)
        {
            var caption = Caption(r.Job, exp);
            h.Append($"<figure class=\"video{(r.Job.IsReference ? " reference" : "")}\" id=\"v{r.Job.Index}\">");
            if (r.Complete)
                h.Append($"<video controls muted loop playsinline preload=\"metadata\" src=\"{page.Video(r.Job.Output)}\" title=\"{H(caption)}\"></video>");
            else
                h.Append("<div class=\"missing\">not rendered yet</div>");
            h.Append($"<figcaption><b>{H(caption)}</b>{(r.Job.IsReference ? "<span class=\"tag\">reference</span>" : "")}<br><span class=\"muted\">");
            if (r.Complete)
            {
                var bits = new List<string>();
                if (r.TotalSeconds is { } t) bits.Add(F(t, "0.0") + " s");
                if (r.PeakMemoryGiB is { } m) bits.Add(F(m, m < 1 ? "0.00" : "0.0") + " GiB");
                if (r.Metrics is { } me) bits.Add($"sharpness {F(me.Metrics.Sharpness, "0")} · colour {F(me.Metrics.Colourfulness, "0.0")}");
                if (r.Metrics?.Difference is { } d) bits.Add($"SSIM {F(d.Ssim, "0.00")}");
                h.Append(H(string.Join(" · ", bits)));
            }
            else h.Append(H(r.Job.Output));
            h.Append("</span></figcaption></figure>");
        }
        h.Append("</div>");

        var complete = runs.Where(r => r.Complete).ToList();
        if (complete.Count > 0)
        {
            var grid = KeyFrameGrid(exp, complete, page.OutputDir, page.Assets, log);
            written.Add(grid);
            h.Append($"<h3>Key frames (first · middle · last)</h3><img class=\"grid\" alt=\"key frames of {H(exp.Name)}\" src=\"{page.Image(grid)}\">");
            var charts = ExperimentCharts(exp, complete, page.Assets).ToList();
            if (charts.Count > 0)
            {
                h.Append("<h3>Charts</h3><div class=\"charts\">");
                foreach (var (file, title) in charts)
                {
                    written.Add(file);
                    h.Append($"<img alt=\"{H(title)}\" src=\"{page.Image(file)}\">");
                }
                h.Append("</div>");
            }
        }
        h.Append("</section>\n");
    }

    private static string Others(GenerationSettings s, ExperimentPlan exp)
    {
        var varied = exp.Varied.Select(v => v.Key).ToHashSet();
        var parts = new List<string>();
        void Add(string key, string text)
        {
            if (!varied.Contains(key)) parts.Add(text);
        }
        Add("model", $"model {s.Model}");
        Add("steps", $"{s.Steps} steps");
        Add("guidance", $"guidance {SettingKey.Format(s.Guidance)}");
        Add("seed", $"seed {s.Seed}");
        Add("frames", $"{s.Frames} frames");
        Add("height", $"{s.Width}×{s.Height}");
        Add("fps", $"{s.Fps} fps");
        return string.Join(", ", parts);
    }

    /// <summary>The first, middle and last frame of each finished video; named by a hash of the videos so unchanged grids are reused.</summary>
    private static string KeyFrameGrid(ExperimentPlan exp, List<ReportRun> runs, string outputDir, string assets, Action<string>? log)
    {
        var id = string.Join("\n", runs.Select(r => r.Job.Output + " " + r.Sidecar?.VideoSha256 + " " + Caption(r.Job, exp)));
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(id)))[..12];
        var file = $"keyframes_{exp.Name}_{hash}.png";
        var path = Path.Combine(assets, file);
        if (File.Exists(path)) return file;
        log?.Invoke($"key frames: {exp.Name}");
        var rows = new List<(string, VideoFrames)>();
        foreach (var r in runs)
        {
            var video = VideoDecoder.Read(Path.Combine(outputDir, r.Job.Output));
            rows.Add((Caption(r.Job, exp), KeyFrames(video)));
        }
        FrameImages.SaveKeyFrameGrid(rows, path, cellWidth: 220);
        return file;
    }

    /// <summary>Only the key frames, so a grid of many full-size videos does not hold them all in memory.</summary>
    private static VideoFrames KeyFrames(VideoFrames video)
    {
        var indices = FrameImages.KeyFrameIndices(video.Count);
        var data = new float[indices.Length * video.FrameSize];
        for (int i = 0; i < indices.Length; i++) video.Frame(indices[i]).CopyTo(data.AsSpan(i * video.FrameSize));
        return new VideoFrames(data, indices.Length, video.Height, video.Width);
    }

    private static IEnumerable<(string File, string Title)> ExperimentCharts(ExperimentPlan exp, List<ReportRun> runs, string assets)
    {
        var metrics = MetricDef.All.Where(m => runs.Any(r => m.Value(r) is double v && double.IsFinite(v))).ToList();
        if (exp.Varied.Count == 0)
        {
            // A prompt set: one bar per prompt.
            var names = runs.Select(r => r.Job.Settings.PromptName ?? r.Job.Name).ToList();
            foreach (var m in metrics)
            {
                var spec = new ChartSpec
                {
                    Title = $"{m.Label} per prompt",
                    XLabel = "prompt",
                    YLabel = YLabel(m),
                    Series = [new ChartSeries(m.Label, runs.Select((r, i) => ((double)i, m.Value(r) ?? double.NaN)).ToList())],
                    Categories = names,
                    FromZero = true,
                };
                foreach (var chart in Save(spec, $"chart_{exp.Name}_{m.Key}.png", assets)) yield return chart;
            }
            yield break;
        }
        foreach (var varied in exp.Varied)
        {
            // Series: one per prompt × combination of the other grid settings.
            var others = exp.Varied.Where(v => v.Key != varied.Key).ToList();
            var groups = runs.GroupBy(r => string.Join(" · ", (exp.Prompts.Count > 1 ? [r.Job.Settings.PromptName ?? ""] : Array.Empty<string>())
                .Concat(others.Select(o => $"{o.Key} {r.Job.Values.GetValueOrDefault(o.Key)}")))).ToList();
            var categories = varied.Continuous ? null : varied.Values;
            double X(ReportRun r)
            {
                var value = r.Job.Values.GetValueOrDefault(varied.Key) ?? "";
                return varied.Continuous ? double.Parse(value, CultureInfo.InvariantCulture) : varied.Values.ToList().IndexOf(value);
            }
            foreach (var m in metrics)
            {
                var series = groups.Select(g => new ChartSeries(g.Key.Length == 0 ? m.Label : g.Key,
                    g.Select(r => (X(r), m.Value(r) ?? double.NaN)).ToList())).ToList();
                // Time: the denoising loop beside the total, so what scales with steps and frames shows.
                if (m == MetricDef.Time && groups.Count == 1 && runs.Any(r => r.DenoiseSeconds is not null))
                    series = [series[0] with { Label = "total" }, new ChartSeries("denoise", groups[0].Select(r => (X(r), r.DenoiseSeconds ?? double.NaN)).ToList())];
                var spec = new ChartSpec
                {
                    Title = $"{m.Label} vs {varied.Key}",
                    XLabel = varied.Key,
                    YLabel = YLabel(m),
                    Series = series,
                    Categories = categories,
                    FromZero = m.FromZero,
                };
                foreach (var chart in Save(spec, $"chart_{exp.Name}_{m.Key}_vs_{varied.Key}.png", assets)) yield return chart;
            }
        }
    }

    private static string YLabel(MetricDef m) => m.Unit.Length == 0 ? m.Label : $"{m.Label} ({m.Unit})";

    private static IEnumerable<(string, string)> Save(ChartSpec spec, string file, string assets)
    {
        // A chart needs two points to show anything (the reference's own PSNR is ∞ and left out, say).
        if (spec.Series.Sum(s => s.Points.Count(p => double.IsFinite(p.Y))) < 2) yield break;
        Charts.SavePng(spec, Path.Combine(assets, file));
        yield return (file, spec.Title);
    }

    /// <summary>
    /// "exact", or the fast modes joined by " + " and the steps kept exact: "teacache 0.1, exact 1+1" (a cache alone
    /// always computes its first and last step), "sage8 attention", "fp8 linears, exact 2+2", "teacache 0.2 + sage8
    /// attention + fp8 linears" (under 8-bit attention or FP8 linears exact steps are as given: 0, none, is not shown).
    /// </summary>
    internal static string FastMode(GenerationSettings s)
    {
        var key = s.SameVideoKey();
        var modes = new List<string>();
        if (key.Cache != "none") modes.Add(key.CacheThreshold is { } t ? $"{key.Cache} {SettingKey.Format(t)}" : key.Cache);
        if (key.Attention == Engine.GpuOptions.Sage8Name) modes.Add("sage8 attention");
        if (key.Linear == "fp8") modes.Add("fp8 linears");
        if (modes.Count == 0) return "exact";
        return string.Join(" + ", modes) + (key.ExactSteps > 0 ? $", exact {key.ExactSteps}+{key.ExactSteps}" : "");
    }

    /// <summary>True when a run uses a fast mode (a step cache, 8-bit attention, FP8 linears): the table then names it.</summary>
    private static bool IsFastMode(GenerationSettings s) => FastMode(s) != "exact";

    private static void Table(StringBuilder h, List<ReportRun> runs, Page page)
    {
        // Columns that say the same for every run become one sentence, so the table fits the page without scrolling.
        var devices = runs.Select(r => r.Device).OfType<string>().Distinct().ToList();
        var workers = runs.Select(r => r.Record?.Worker).OfType<int>().Distinct().ToList();
        var sizes = runs.Select(r => (r.Job.Settings.Width, r.Job.Settings.Height)).Distinct().ToList();
        bool deviceColumn = devices.Count > 1, workerColumn = workers.Count > 1, sizeColumn = sizes.Count > 1;
        // The fast mode (step cache and threshold, 8-bit attention, FP8 linears, exact steps) of each run, when any run uses one.
        bool modeColumn = runs.Any(r => IsFastMode(r.Job.Settings));
        var same = new List<string>();
        if (!deviceColumn && devices.Count == 1) same.Add($"all on {devices[0]}");
        if (!sizeColumn && sizes.Count == 1) same.Add($"all {sizes[0].Width}×{sizes[0].Height}");
        h.Append($"<section id=\"runs\"><h2>All runs</h2><p class=\"muted\">Click a column to sort. Times and memory from each video's sidecar; metrics recomputed from the MP4s{H(same.Count > 0 ? "; " + string.Join(", ", same) : "")}.</p><div class=\"table-wrap\"><table id=\"runs-table\"><thead><tr>");
        foreach (var c in new[] { "experiment", "video", "prompt" }) h.Append($"<th class=\"text\">{c}</th>");
        foreach (var c in new[] { "steps", "guidance", "seed", "frames" }) h.Append($"<th>{c}</th>");
        if (sizeColumn) h.Append("<th>size</th>");
        if (deviceColumn) h.Append("<th class=\"text\">device</th>");
        if (workerColumn) h.Append("<th>worker</th>");
        if (modeColumn) h.Append("<th class=\"text\">fast mode</th>");
        foreach (var m in MetricDef.All) h.Append($"<th title=\"{H(m.Label)}{(m.Unit.Length > 0 ? $" ({H(m.Unit)})" : "")}\">{H(m.Short)}</th>");
        h.Append("<th>denoise (s)</th></tr></thead><tbody>\n");
        foreach (var r in runs)
        {
            var s = r.Job.Settings;
            h.Append(r.Complete ? "<tr>" : "<tr class=\"missing-row\">");
            var link = page.IsInlined(r.Job.Output) ? $"#v{r.Job.Index}" : Url(r.Job.Output);
            h.Append($"<td class=\"text\">{H(r.Job.Experiment)}</td><td class=\"text\">{(r.Complete ? $"<a href=\"{link}\">{H(r.Job.Name)}</a>" : H(r.Job.Name) + " (not rendered)")}</td><td class=\"text\">{H(s.PromptName)}</td>");
            h.Append($"<td>{s.Steps}</td><td>{H(SettingKey.Format(s.Guidance))}</td><td>{s.Seed}</td><td>{s.Frames}</td>");
            if (sizeColumn) h.Append($"<td data-v=\"{s.Width * s.Height}\">{s.Width}×{s.Height}</td>");
            if (deviceColumn) h.Append($"<td class=\"text\">{H(r.Device ?? "—")}</td>");
            if (workerColumn) h.Append($"<td>{(r.Record is { } rec ? rec.Worker.ToString(CultureInfo.InvariantCulture) : "—")}</td>");
            if (modeColumn) h.Append($"<td class=\"text\">{H(FastMode(s))}</td>");
            foreach (var m in MetricDef.All)
            {
                var v = m.Value(r);
                h.Append($"<td data-v=\"{(v is double d && double.IsFinite(d) ? d.ToString("R", CultureInfo.InvariantCulture) : v is double inf && double.IsPositiveInfinity(inf) ? "1e308" : "")}\">{H(m.Show(v))}</td>");
            }
            h.Append($"<td>{H(r.DenoiseSeconds is { } dn ? F(dn, "0.0") : "—")}</td></tr>\n");
        }
        h.Append("</tbody></table></div></section>\n");
    }

    private static void Prompts(StringBuilder h, StudyPlan plan)
    {
        h.Append("<section id=\"prompts\"><h2>Prompts</h2><dl class=\"prompts\">");
        foreach (var (name, text) in plan.Jobs.Select(j => (j.Settings.PromptName ?? j.Name, j.Settings.Prompt)).Distinct())
            h.Append($"<dt>{H(name)}</dt><dd>{H(text)}</dd>");
        h.Append("</dl></section>\n");
    }

    private static void Footer(StringBuilder h, StudyPlan plan, Page page)
    {
        var where = !page.SelfContained ? "Images are in the folder next to this page and videos are linked relative to it: keep the page next to its experiment folders."
            : page.InlinedVideos == plan.Jobs.Count() ? "Self-contained: every image and video is inside this page."
            : "Self-contained images; videos past the size limit are linked relative to this page (keep it next to its experiment folders to play them).";
        h.Append($"</main><footer>Made by <code>cogvideox report</code> from {H(Path.GetFileName(plan.SourcePath))}. {H(where)}</footer>\n");
        // Sorting the table and playing a strip in step: small, self-contained, no libraries.
        h.Append("""
            <script>
            (function () {
              document.querySelectorAll('button.play').forEach(function (b) {
                b.addEventListener('click', function () {
                  var vids = document.querySelectorAll('#' + CSS.escape(b.dataset.strip) + ' video');
                  var play = Array.prototype.some.call(vids, function (v) { return v.paused; });
                  vids.forEach(function (v) {
                    if (play) { v.currentTime = 0; var p = v.play(); if (p) p.catch(function () {}); } else v.pause();
                  });
                  b.textContent = play ? '❚❚ pause all' : '▶ play all together';
                });
              });
              var table = document.getElementById('runs-table');
              if (!table) return;
              table.querySelectorAll('th').forEach(function (th, col) {
                var asc = true;
                th.addEventListener('click', function () {
                  var body = table.tBodies[0];
                  var rows = Array.prototype.slice.call(body.rows);
                  rows.sort(function (a, b) {
                    var x = a.cells[col], y = b.cells[col];
                    var xv = x.dataset.v !== undefined ? x.dataset.v : x.textContent, yv = y.dataset.v !== undefined ? y.dataset.v : y.textContent;
                    var xn = parseFloat(xv), yn = parseFloat(yv);
                    var r = (!isNaN(xn) && !isNaN(yn)) ? xn - yn : String(xv).localeCompare(String(yv));
                    return asc ? r : -r;
                  });
                  asc = !asc;
                  rows.forEach(function (r) { body.appendChild(r); });
                });
              });
            })();
            </script>
            </body>
            </html>

            """);
    }
}
