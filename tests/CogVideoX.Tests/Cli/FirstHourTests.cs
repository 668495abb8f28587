using System.Text.Json;
using CogVideoX.Cli;
using CogVideoX.Lab;
using CogVideoX.Lab.Runs;
using CogVideoX.Tests.Lab;

namespace CogVideoX.Tests.Cli;

/// <summary>
/// Issue 23, "the first hour of a new user": the device is chosen and explained, mistyped flags get a suggestion,
/// nothing is overwritten silently, results and progress go to their own streams, and a study that cannot run
/// says so once before its first job.
/// </summary>
public class FirstHourTests
{
    private static readonly Func<GpuCheck> NoGpu = () => GpuCheck.Missing("no CUDA driver (test)");
    private static readonly Func<GpuCheck> AGpu = () => GpuCheck.Found("Test GPU 80GB");

    private static (int Code, string Out, string Err) Run(string[] args, Func<GpuCheck>? gpu = null, Func<string, string?>? environment = null)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(args, stdout, stderr, environment, gpu ?? NoGpu);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private static string[] Tiny(string output, params string[] more) => Tiny(output, 1, more);

    private static string[] Tiny(string output, int steps, params string[] more) =>
        ["generate", "--model", Fixtures.Path2b, "--prompt", "A whale.", "--frames", "9", "--height", "32", "--width", "48", "--steps", $"{steps}", "-o", output, .. more];

    // ---- --device auto ----

    [Fact]
    public void DeviceAutoChoosesTheGpuWhenOneWorksElseTheCpuAndSaysWhy()
    {
        Assert.Equal(new DeviceChoice("cpu", ""), DeviceSelection.Resolve("cpu", AGpu));
        Assert.Equal("cuda:1", DeviceSelection.Resolve("cuda:1", NoGpu).Device);
        var gpu = DeviceSelection.Resolve("auto", AGpu);
        Assert.Equal("cuda", gpu.Device);
        Assert.Contains("found a GPU that works (Test GPU 80GB)", gpu.Reason);
        var cpu = DeviceSelection.Resolve("AUTO", NoGpu);
        Assert.Equal("cpu", cpu.Device);
        Assert.Contains("found no GPU that works (no CUDA driver (test))", cpu.Reason);
        Assert.Contains("takes hours on the CPU", cpu.Reason);
        // The real check on this machine (no GPU) answers without throwing.
        Assert.False(string.IsNullOrEmpty(DeviceSelection.Probe().Detail));
    }

    [Fact]
    public void GenerateDefaultsToAutoAndRecordsTheDeviceThatRan()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run(Tiny(dir.File("v.mp4")));
        Assert.True(code == 0, stderr);
        Assert.Contains("device: cpu — --device auto found no GPU that works (no CUDA driver (test))", stderr);
        Assert.Equal("cpu", VideoSidecar.TryLoad(dir.File("v.json"))!.Settings.Device);
        // Resolved values keep their JSON types: booleans and numbers, not strings.
        var json = File.ReadAllText(dir.File("v.json"));
        Assert.Contains("\"dynamic_cfg\": false", json);
        Assert.Matches("\"prompt_tokens\": [0-9]+,", json);
        Assert.Contains("\"dtype\": null", json);
    }

    [Fact]
    public void GenerateWithAWorkingGpuChoosesCuda()
    {
        using var dir = new TempDir();
        // The fake check says a GPU works; this machine has none, so the run then fails opening it — after saying why cuda.
        var (code, _, stderr) = Run(Tiny(dir.File("v.mp4")), AGpu);
        Assert.Contains("device: cuda — --device auto found a GPU that works (Test GPU 80GB)", stderr);
        Assert.NotEqual(0, code);
        Assert.DoesNotContain("internal error", stderr);
        Assert.False(File.Exists(dir.File("v.mp4")));
    }

    // ---- flags ----

    [Theory]
    [InlineData(new[] { "generate", "--num_inference_steps", "10" }, "`cogvideox generate` has no option --num_inference_steps; did you mean --steps?")]
    [InlineData(new[] { "generate", "--guidance_scale", "6" }, "did you mean --guidance?")]
    [InlineData(new[] { "generate", "--num-frames", "49" }, "did you mean --frames?")]
    [InlineData(new[] { "generate", "--stpes", "10" }, "did you mean --steps?")]
    [InlineData(new[] { "experiment", "run", "x.yaml", "--ouput", "d" }, "`cogvideox experiment run` has no option --ouput; did you mean --output?")]
    [InlineData(new[] { "generat" }, "has no command 'generat'; did you mean generate?")]
    public void AnUnknownFlagGetsTheNearestOptionNotTheWholeHelp(string[] args, string expected)
    {
        var (code, stdout, stderr) = Run(args);
        Assert.Equal(2, code);
        Assert.Contains(expected, stderr);
        Assert.Contains("--help` lists every option", stderr);
        Assert.DoesNotContain("Options:", stderr + stdout);
        Assert.Equal("", stdout);
    }

    [Fact]
    public void HelpListsGenerateFirstAndVersionLast()
    {
        var (code, stdout, _) = Run(["--help"]);
        Assert.Equal(0, code);
        var commands = stdout[stdout.IndexOf("Commands:", StringComparison.Ordinal)..];
        Assert.True(commands.IndexOf("generate", StringComparison.Ordinal) < commands.IndexOf("experiment", StringComparison.Ordinal));
        Assert.True(commands.IndexOf("doctor", StringComparison.Ordinal) < commands.IndexOf("version", StringComparison.Ordinal));
        Assert.True(commands.IndexOf("selftest", StringComparison.Ordinal) < commands.IndexOf("version", StringComparison.Ordinal));
    }

    // ---- nothing overwritten silently ----

    [Fact]
    public void AnExistingVideoIsNotReplacedWithoutOverwrite()
    {
        using var dir = new TempDir();
        var output = dir.File("v.mp4");
        var (code, _, stderr) = Run(Tiny(output, "-q"));
        Assert.True(code == 0, stderr);
        var before = File.ReadAllBytes(output);

        // The same settings again: that video is there, complete — a success that renders nothing.
        (code, var stdout, stderr) = Run(Tiny(output));
        Assert.True(code == 0, stderr);
        Assert.Contains($"{output} exists already, made with these same settings (9 frames, 48×32, 8 fps; sidecar {dir.File("v.json")}): nothing to render. Add --overwrite to render it again", stdout);
        Assert.DoesNotContain("denoise", stderr);
        Assert.Equal(before, File.ReadAllBytes(output));
        (code, stdout, stderr) = Run(Tiny(output, "--json"));
        Assert.True(code == 0, stderr);
        using (var doc = JsonDocument.Parse(stdout))
        {
            Assert.True(doc.RootElement.GetProperty("already_existed").GetBoolean());
            Assert.Equal(9, doc.RootElement.GetProperty("frames").GetInt32());
        }
        (code, stdout, stderr) = Run(Tiny(output, "-q"));
        Assert.Equal((0, ""), (code, stdout));

        // The same settings, but --save-tensors needs the run, or the video no longer matches its sidecar: refused.
        (code, _, stderr) = Run(Tiny(output, "--save-tensors", dir.File("t.safetensors")));
        Assert.Equal(2, code);
        Assert.Contains($"error: {output} exists already, made with these same settings (but --save-tensors needs the run again); nothing was rendered", stderr);
        var damaged = (byte[])before.Clone();
        damaged[^1] ^= 0xFF;
        File.WriteAllBytes(output, damaged);
        (code, stdout, stderr) = Run(Tiny(output));
        Assert.Equal(2, code);
        Assert.Contains($"error: {output} exists already, made with these same settings, but the video does not match its sidecar (replaced or damaged); nothing was rendered", stderr);
        Assert.Contains("--overwrite", stderr);
        Assert.Equal("", stdout);
        File.WriteAllBytes(output, before);

        (code, _, stderr) = Run(Tiny(output, 2, "--seed", "7"));
        Assert.Equal(2, code);
        Assert.Contains("made with other settings (steps 1 → 2, seed 42 → 7)", stderr);
        Assert.Equal(before, File.ReadAllBytes(output));

        (code, _, stderr) = Run(Tiny(output, 2, "--overwrite", "-q"));
        Assert.True(code == 0, stderr);
        Assert.Equal(2, VideoSidecar.TryLoad(dir.File("v.json"))!.Settings.Steps);
    }

    [Fact]
    public void TheDefaultNameIsRefusedTooAndTheMessageSaysHowToNameAnother()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("outputs", "pipeline_2b_style"));
        var output = Path.Combine("outputs", "pipeline_2b_style", "a_whale.mp4");
        File.WriteAllText(dir.File(output), "an older video");
        // In a child process: the default name is relative to the current directory.
        var cli = ChildCli.Run(dir.Path, null, "generate", "--model", Fixtures.Path2b, "--prompt", "A whale.", "--frames", "9", "--height", "32", "--width", "48", "--steps", "1");
        Assert.Equal(2, cli.ExitCode);
        Assert.Contains($"{output} exists already; nothing was rendered. Give another name with -o FILE (--output), or add --overwrite", cli.StdErr);
        Assert.Equal("an older video", File.ReadAllText(dir.File(output)));
    }

    // ---- progress of every stage ----

    [Fact]
    public void TheDecodeAndTheMp4HaveProgressLinesWithEstimates()
    {
        using var dir = new TempDir();
        // 17 frames: 5 latent frames, decoded in 2 batches.
        var (code, _, stderr) = Run(["generate", "--model", Fixtures.Path2b, "--prompt", "A whale.", "--frames", "17", "--height", "32", "--width", "48", "--steps", "1", "-o", dir.File("v.mp4")]);
        Assert.True(code == 0, stderr);
        Assert.Matches(@"decode 1/2  elapsed \d+:\d\d  remaining \d+:\d\d", stderr);
        Assert.Matches(@"decode 2/2  elapsed \d+:\d\d  remaining 0:00", stderr);
        Assert.Matches(@"MP4 17/17  elapsed \d+:\d\d  remaining 0:00", stderr);
        Assert.True(stderr.IndexOf("decoding the latents…", StringComparison.Ordinal) < stderr.IndexOf("writing the MP4…", StringComparison.Ordinal));
    }

    // ---- the download says what comes and how big before it starts ----

    [Fact]
    public void TheWeightsAreListedWithTheirSizesBeforeTheirTransferStarts()
    {
        var output = new StringWriter();
        var view = new DownloadProgressView(output, live: false);
        view.Planned([("text_encoder/model-00001-of-00002.safetensors", 4_989_000_000L), ("text_encoder/model-00002-of-00002.safetensors", 4_531_000_000L),
            ("transformer/diffusion_pytorch_model.safetensors", 3_400_000_000L), ("vae/diffusion_pytorch_model.safetensors", 431_000_000L)], alreadyCached: 0);
        var lines = output.ToString().ReplaceLineEndings("\n").TrimEnd('\n').Split('\n');
        Assert.Equal("fetching 4 files (12.4 GiB)", lines[0]);
        Assert.Equal("  text_encoder/model-00001-of-00002.safetensors 4.6 GiB, text_encoder/model-00002-of-00002.safetensors 4.2 GiB, " +
            "transformer/diffusion_pytorch_model.safetensors 3.2 GiB, vae/diffusion_pytorch_model.safetensors 411.0 MiB", lines[1]);
    }
}

/// <summary><c>experiment run</c> and <c>report</c> as a newcomer meets them, in process.</summary>
[Collection(WorkbenchProcesses.Name)]
public class FirstHourStudyTests
{
    private static readonly Func<GpuCheck> NoGpu = () => GpuCheck.Missing("no CUDA driver (test)");

    private static (int Code, string Out, string Err) Run(string[] args, Func<string, string?>? environment = null, Func<GpuCheck>? gpu = null)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(args, stdout, stderr, environment, gpu ?? NoGpu);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void TheReportCountsAVideoShownInSeveralPlacesOnce()
    {
        // Seen in the GPU study's report: 8.3 min of render time for 6.3 min of rendering, four hard links of one
        // video counted as if rendered. Here 3 of 6 places share one video: 4 are rendered.
        using var study = new StudyFolder(StudyFolder.SharedSpec);
        var (code, stdout, stderr) = Run(["experiment", "run", study.SpecPath, "--renderer", "synthetic"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("4 rendered, 2 linked", stdout);
        // Every sidecar says 10 s, so the 4 rendered videos took 40 s (the bug said 60).
        var outputs = study.File("outputs");
        var sidecars = Directory.GetFiles(outputs, "*.json", SearchOption.AllDirectories)
            .Where(f => !Path.GetFileName(f).StartsWith("small.", StringComparison.Ordinal)).ToList();
        Assert.Equal(6, sidecars.Count);
        foreach (var json in sidecars)
        {
            var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(json))!;
            node["timings_seconds"]!["total"] = 10.0;
            File.WriteAllText(json, node.ToJsonString());
        }
        (code, _, stderr) = Run(["report", study.SpecPath]);
        Assert.True(code == 0, stderr);
        var html = File.ReadAllText(Path.Combine(outputs, "small.report.html"));
        Assert.Contains("<b>40.0 s</b><span class=\"muted\">total render time</span>", html, StringComparison.Ordinal);
        Assert.Contains("<b>10.0 s</b><span class=\"muted\">mean per video</span>", html, StringComparison.Ordinal);
    }

    [Fact]
    public void TheReportOfASpecWithDeviceAutoFindsTheVideosOnTheDeviceTheRunChose()
    {
        // Found on the GPU machine: `report SPEC` compared the spec's `device: auto` with the sidecars' decided device
        // and reported "0 of 20 complete". The run here decides cpu (synthetic renderer) on a machine whose GPU works.
        Func<GpuCheck> gpu = () => GpuCheck.Found("Test GPU 80GB");
        using var study = new StudyFolder(StudyFolder.SmallSpec.Replace("device: cpu", "device: auto"));
        var (code, _, stderr) = Run(["experiment", "run", study.SpecPath, "--renderer", "synthetic"], gpu: gpu);
        Assert.True(code == 0, stderr);
        (code, var stdout, stderr) = Run(["report", study.SpecPath], gpu: gpu);
        Assert.True(code == 0, stderr);
        Assert.Contains("small: 7 of 7 video(s) complete", stdout);

        // Without the run's plan file the report decides auto as a run here would: cuda, where these cpu videos don't count.
        File.Delete(Path.Combine(study.File("outputs"), "small.plan.json"));
        (code, stdout, _) = Run(["report", study.SpecPath], gpu: gpu);
        Assert.Equal(1, code);
        Assert.Contains("small: 0 of 7 video(s) complete", stdout);
        (code, stdout, stderr) = Run(["report", study.SpecPath]);
        Assert.True(code == 0, stderr);
        Assert.Contains("small: 7 of 7 video(s) complete", stdout);
    }

    [Fact]
    public void ProgressGoesToStderrResultsToStdoutAndTheHintKeepsTheOutputFolder()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var elsewhere = study.File("elsewhere");
        var (code, stdout, stderr) = Run(["experiment", "run", study.SpecPath, "--renderer", "synthetic", "-o", elsewhere]);
        Assert.True(code == 0, stderr);
        Assert.Contains("[1/7]", stderr);
        Assert.Contains("rendering on cpu (synthetic renderer)", stderr);
        Assert.DoesNotContain("[1/7]", stdout);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.Contains("7 rendered", lines[0]);
        Assert.EndsWith($"next: cogvideox report {study.SpecPath} -o {elsewhere}", lines[1].TrimEnd());

        // Following the hint finds the videos; the report's work goes to stderr, its result to stdout.
        (code, stdout, stderr) = Run(["report", study.SpecPath, "-o", elsewhere]);
        Assert.True(code == 0, stderr);
        Assert.Contains("small: 7 of 7 video(s) complete", stdout);
        Assert.Contains("key frames", stderr);
        Assert.DoesNotContain("key frames", stdout);

        // Without the -o the run used, the report says where to look instead of "0 of 7" and success.
        (code, _, stderr) = Run(["report", study.SpecPath]);
        Assert.Equal(1, code);
        Assert.Contains("does not exist: run `cogvideox experiment run", stderr);
        Assert.Contains("pass the same -o DIR here", stderr);
        Directory.CreateDirectory(study.File("empty"));
        (code, stdout, stderr) = Run(["report", study.SpecPath, "-o", study.File("empty")]);
        Assert.Equal(1, code);
        Assert.Contains("holds none of the 7 video(s) of small", stderr);
        Assert.Contains("pass the same -o DIR here", stderr);
        Assert.Contains("small: 0 of 7 video(s) complete", stdout);
    }

    [Fact]
    public void AMissingModelStopsTheRunOnceBeforeTheFirstJob()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec.Replace("  device: cpu", "  device: cpu\n  model: nobody/no-such-model"));
        using var cache = new TempDir();
        string? Offline(string name) => name switch { "HF_HUB_OFFLINE" => "1", "HF_HUB_CACHE" => cache.Path, _ => null };

        // The dry run looks for the model (never downloads) and says what the run would do.
        var (code, stdout, stderr) = Run(["experiment", "run", study.SpecPath, "--dry-run"], Offline);
        Assert.True(code == 0, stderr);
        Assert.Contains("model nobody/no-such-model: not found", stdout);
        Assert.Contains("offline mode is on (HF_HUB_OFFLINE), so the run would stop before its first video", stdout);

        (code, stdout, stderr) = Run(["experiment", "run", study.SpecPath], Offline);
        Assert.NotEqual(0, code);
        Assert.Single(stderr.Split('\n'), l => l.StartsWith("error:", StringComparison.Ordinal));
        Assert.Contains("nobody/no-such-model", stderr);
        Assert.Contains("HF_HUB_OFFLINE", stderr);
        Assert.DoesNotContain("FAILED", stderr + stdout);
        Assert.False(File.Exists(Manifest.For(study.Outputs, "small").Path), "no job may have started");
    }

    [Fact]
    public void ADeviceThatCannotRunStopsTheRunOnceAndTheDryRunSaysSo()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec.Replace("device: cpu", "device: cuda").Replace("  steps: 2", $"  steps: 2\n  model: \"{Fixtures.Path2b}\""));
        var (code, stdout, stderr) = Run(["experiment", "run", study.SpecPath, "--dry-run"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("device cuda: NO GPU WORKS HERE (no CUDA driver (test))", stdout);

        (code, stdout, stderr) = Run(["experiment", "run", study.SpecPath]);
        Assert.Equal(2, code);
        Assert.Contains("error: device cuda cannot run here", stderr);
        Assert.Contains("no video was started", stderr);
        Assert.False(File.Exists(Manifest.For(study.Outputs, "small").Path));
    }

    [Fact]
    public void TheDryRunSaysWhichVideosAreSharedAndHowTheDeviceWasChosen()
    {
        using var study = new StudyFolder(StudyFolder.SharedSpec);
        var (code, stdout, stderr) = Run(["experiment", "run", study.SpecPath, "--dry-run", "--renderer", "synthetic"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("device: cpu — the synthetic renderer draws test patterns on the CPU", stdout);
        Assert.Matches(@"\n\s+2\s+same\s+guidance/guidance_6\.mp4 .*\[same settings as baseline/panda\.mp4: gets that file, not rendered again\]", stdout);
        Assert.Contains("4 to render, 2 with the same settings as another (linked to it, not rendered again), 0 complete", stdout);

        // As JSON: the settings are an object, the line for people a field of its own.
        (code, stdout, stderr) = Run(["experiment", "run", study.SpecPath, "--dry-run", "--renderer", "synthetic", "--json"]);
        Assert.True(code == 0, stderr);
        var rows = JsonDocument.Parse(stdout).RootElement.EnumerateArray().ToList();
        Assert.Equal(JsonValueKind.Object, rows[0].GetProperty("settings").ValueKind);
        Assert.Equal(6, rows[0].GetProperty("settings").GetProperty("guidance").GetDouble());
        Assert.Equal("cpu", rows[0].GetProperty("settings").GetProperty("device").GetString());
        Assert.StartsWith("panda · 2b · 2 steps", rows[0].GetProperty("summary").GetString());
        Assert.Equal("baseline/panda.mp4", rows[2].GetProperty("same_as").GetString());
    }
}
