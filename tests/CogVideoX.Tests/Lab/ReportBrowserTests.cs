using System.Text.Json;
using CogVideoX.Lab;
using CogVideoX.Lab.Report;
using CogVideoX.Lab.Runs;
using CogVideoX.Lab.Specs;
using Microsoft.Playwright;

namespace CogVideoX.Tests.Lab;

/// <summary>The report opened in a real browser: Debian's headless Chromium, driven by Playwright (no browser download).</summary>
[Collection(WorkbenchProcesses.Name)]
public class ReportBrowserTests
{
    public const string Chromium = "/usr/bin/chromium";

    /// <summary>Where the screenshot of the last report test is kept (outside the deleted temp folders, for people to look at).</summary>
    public static string ArtifactsDir => Path.Combine(Path.GetTempPath(), "cogvideox-test-artifacts");

    public static async Task<IBrowser> LaunchChromium(IPlaywright playwright)
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: install Debian's chromium package (`apt-get install chromium`; .ci/run does)");
        return await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"],
        });
    }

    [Fact]
    public async Task TheReportRendersInChromiumWithEveryVideoAndImageAndNoErrors()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var spec = SpecParser.Load(study.SpecPath);
        var plan = StudyPlan.Expand(spec);
        new ExperimentRunner(plan, new RunOptions { OutputDir = spec.OutputDir, Synthetic = true }).Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        var result = ReportBuilder.Build(plan, spec.OutputDir);
        Assert.Equal((7, 7), (result.Videos, result.Complete));

        var html = File.ReadAllText(result.HtmlPath);
        // User strings are escaped: the prompt's markup shows as text and never runs.
        Assert.Contains("A &lt;script&gt;window.__pwned = 1&lt;/script&gt; &amp; &quot;quoted&quot; &#39;prompt&#39; &lt;b&gt;bold&lt;/b&gt;", html);
        // Nothing of the markup survives, and nothing is fetched from the network.
        Assert.All(["<script>window.__pwned", "<b>bold</b>", "http://", "https://"], text => Assert.DoesNotContain(text, html));
        Assert.Contains("guidance 1→12", html);

        // Works where it is copied: move the whole output folder before opening it.
        var copy = study.File("copied", "outputs");
        CopyTree(spec.OutputDir, copy);
        Directory.Delete(spec.OutputDir, recursive: true);
        var page = Path.Combine(copy, Path.GetFileName(result.HtmlPath));

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchChromium(playwright);
        var tab = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1400, Height = 1000 } });
        var errors = new List<string>();
        var requests = new List<string>();
        tab.Console += (_, m) => { if (m.Type == "error") lock (errors) errors.Add(m.Text); };
        tab.PageError += (_, e) => { lock (errors) errors.Add(e); };
        tab.RequestFailed += (_, r) => { lock (errors) errors.Add($"request failed: {r.Url}"); };
        tab.Request += (_, r) => { lock (requests) requests.Add(r.Url); };
        await tab.GotoAsync(new Uri(page).AbsoluteUri, new PageGotoOptions { WaitUntil = WaitUntilState.Load });

        var images = JsonDocument.Parse(await tab.EvaluateAsync<string>("""
            async () => {
              const imgs = Array.from(document.images);
              await Promise.all(imgs.map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; })));
              return JSON.stringify(imgs.map(i => ({ src: i.getAttribute('src'), w: i.naturalWidth })));
            }
            """)).RootElement.EnumerateArray().ToList();
        Assert.True(images.Count >= 1 + 5 + 2 * 7, $"only {images.Count} images");
        Assert.All(images, i => Assert.True(i.GetProperty("w").GetInt32() > 0, $"image {i.GetProperty("src")} did not load"));

        var videos = JsonDocument.Parse(await tab.EvaluateAsync<string>("""
            async () => {
              const vids = Array.from(document.querySelectorAll('video'));
              const results = await Promise.all(vids.map(v => new Promise(resolve => {
                const done = ok => resolve({ src: v.getAttribute('src'), ok, ready: v.readyState, w: v.videoWidth, err: v.error ? v.error.code : 0 });
                if (v.readyState >= 2) return done(true);
                v.addEventListener('loadeddata', () => done(true), { once: true });
                v.addEventListener('error', () => done(false), { once: true });
                v.preload = 'auto';
                v.load();
                setTimeout(() => done(false), 20000);
              })));
              return JSON.stringify(results);
            }
            """)).RootElement.EnumerateArray().ToList();
        Assert.Equal(7, videos.Count);
        foreach (var v in videos)
        {
            var src = v.GetProperty("src").GetString();
            Assert.True(v.GetProperty("ok").GetBoolean() && v.GetProperty("err").GetInt32() == 0 && v.GetProperty("ready").GetInt32() >= 2,
                $"video {src} did not load: {v}");
            Assert.Equal(48, v.GetProperty("w").GetInt32());
        }

        Directory.CreateDirectory(ArtifactsDir);
        var shot = Path.Combine(ArtifactsDir, "lab-report.png");
        await tab.ScreenshotAsync(new PageScreenshotOptions { Path = shot, FullPage = true });
        Assert.True(new FileInfo(shot).Length > 10_000);

        // The page's own script works: play a strip together, sort the table.
        await tab.ClickAsync("button.play[data-strip='strip-guidance']");
        await tab.WaitForTimeoutAsync(400);
        Assert.True(await tab.EvaluateAsync<bool>("() => Array.from(document.querySelectorAll('#strip-guidance video')).every(v => !v.paused)"));
        await tab.ClickAsync("#runs-table th:nth-child(1)");
        Assert.True(await tab.EvaluateAsync<bool>("() => window.__pwned === undefined"), "the prompt's <script> ran");

        Assert.True(errors.Count == 0, "browser errors:\n" + string.Join("\n", errors));
        Assert.All(requests, r => Assert.True(r.StartsWith("file://", StringComparison.Ordinal) || r.StartsWith("data:", StringComparison.Ordinal), $"the page fetched {r}"));
    }

    [Fact]
    public async Task ASelfContainedReportIsOneFileThatWorksAloneAndFitsThePage()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var spec = SpecParser.Load(study.SpecPath);
        var plan = StudyPlan.Expand(spec);
        new ExperimentRunner(plan, new RunOptions { OutputDir = spec.OutputDir, Synthetic = true }).Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        var result = ReportBuilder.Build(plan, spec.OutputDir, options: new ReportOptions { SelfContained = true });
        Assert.Equal((true, 7), (result.SelfContained, result.InlinedVideos));

        // Only the page, in a folder of its own: every image and video must come from inside it.
        var alone = study.File("alone", "report.html");
        Directory.CreateDirectory(Path.GetDirectoryName(alone)!);
        File.Copy(result.HtmlPath, alone);
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await LaunchChromium(playwright);
        var tab = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1400, Height = 1000 } });
        var errors = new List<string>();
        var requests = new List<string>();
        tab.PageError += (_, e) => { lock (errors) errors.Add(e); };
        tab.RequestFailed += (_, r) => { lock (errors) errors.Add($"request failed: {r.Url[..Math.Min(80, r.Url.Length)]}"); };
        tab.Request += (_, r) => { lock (requests) requests.Add(r.Url); };
        await tab.GotoAsync(new Uri(alone).AbsoluteUri, new PageGotoOptions { WaitUntil = WaitUntilState.Load });

        var state = JsonDocument.Parse(await tab.EvaluateAsync<string>("""
            async () => {
              const imgs = Array.from(document.images);
              await Promise.all(imgs.map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; })));
              const vids = Array.from(document.querySelectorAll('video'));
              const loaded = await Promise.all(vids.map(v => new Promise(resolve => {
                if (v.readyState >= 2) return resolve(v.videoWidth);
                v.addEventListener('loadeddata', () => resolve(v.videoWidth), { once: true });
                v.addEventListener('error', () => resolve(0), { once: true });
                v.preload = 'auto'; v.load();
                setTimeout(() => resolve(0), 20000);
              })));
              const wrap = document.querySelector('.table-wrap');
              return JSON.stringify({
                images: imgs.map(i => i.naturalWidth), videos: loaded,
                tableOverflow: wrap.scrollWidth - wrap.clientWidth,
                pageOverflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
              });
            }
            """)).RootElement;
        Assert.True(state.GetProperty("images").GetArrayLength() >= 1 + 5, "too few images");
        Assert.All(state.GetProperty("images").EnumerateArray(), w => Assert.True(w.GetInt32() > 0, "an image did not load"));
        Assert.Equal(7, state.GetProperty("videos").GetArrayLength());
        Assert.All(state.GetProperty("videos").EnumerateArray(), w => Assert.Equal(48, w.GetInt32()));
        // The table of runs fits: no sideways scrolling at a laptop's width.
        Assert.True(state.GetProperty("tableOverflow").GetInt32() <= 0, $"the table scrolls sideways by {state.GetProperty("tableOverflow")} px");
        Assert.True(state.GetProperty("pageOverflow").GetInt32() <= 0, "the page scrolls sideways");
        Assert.True(errors.Count == 0, "browser errors:\n" + string.Join("\n", errors));
        Assert.All(requests, r => Assert.True(r == new Uri(alone).AbsoluteUri || r.StartsWith("data:", StringComparison.Ordinal), $"the page fetched {r[..Math.Min(80, r.Length)]}"));
        Assert.Contains("Self-contained: every image and video is inside this page.", File.ReadAllText(alone));

        Directory.CreateDirectory(ArtifactsDir);
        await tab.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(ArtifactsDir, "lab-report-self-contained.png"), FullPage = true });

        // Past the size limit the videos stay linked (and the page says so).
        var linked = ReportBuilder.Build(plan, spec.OutputDir, options: new ReportOptions { SelfContained = true, InlineVideoBytes = 0 });
        Assert.Equal(0, linked.InlinedVideos);
        var html = File.ReadAllText(linked.HtmlPath);
        Assert.Contains("src=\"guidance/guidance_12.mp4\"", html);
        Assert.Contains("data:image/png;base64,", html);
        Assert.Contains("videos past the size limit are linked", html);
    }

    private static void CopyTree(string from, string to)
    {
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
    }
}
