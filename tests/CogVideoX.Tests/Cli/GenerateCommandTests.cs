using System.Diagnostics;
using System.Text.Json;
using CogVideoX.Cli.Commands;
using CogVideoX.Engine;
using CogVideoX.Lab;
using CogVideoX.Media;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Cli;

/// <summary>
/// <c>generate</c> end to end on the tiny 2b-style fixture model (a few steps of 9 frames at 48×32 take about a
/// second), and every way its input can be wrong.
/// </summary>
public class GenerateCommandTests
{
    /// <summary>The panda_s42 golden run: with these settings the saved frames are diffusers' frames.</summary>
    private const string PandaPrompt = "A panda, dressed in a small red jacket and a tiny hat, sits on a wooden stool in a serene bamboo forest, strumming a miniature acoustic guitar.";

    /// <summary>--device auto sees no GPU here: these are tests of the CPU reference, on any machine.</summary>
    internal static readonly Func<GpuCheck> NoGpu = () => GpuCheck.Missing("the tests run on the CPU");

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(args, stdout, stderr, gpu: NoGpu);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>A small run of the tiny model: 32×48, the given frames and steps.</summary>
    private static string[] Tiny(string output, int frames, int steps, params string[] more) =>
        ["generate", "--model", Fixtures.Path2b, "--frames", $"{frames}", "--height", "32", "--width", "48", "--steps", $"{steps}", "--output", output, .. more];

    [Theory]
    [InlineData("3b")]
    [InlineData("THUDM/CogVideoX-2b@bad revision")]
    public void AModelNameThatNamesNothingIsAUsageErrorSaidFirst(string model)
    {
        var (code, _, err) = Run("generate", "--prompt-file", "panda_guitar", "--model", model, "--device", "auto");
        Assert.Equal(2, code);
        Assert.Contains($"{model}: no such folder", err);
        Assert.Contains("pass a diffusers pipeline folder (with model_index.json), a repo id such as THUDM/CogVideoX-2b, or 2b/5b", err);
        // Said before the device is chosen (no "device: cpu — …" note first) or any file is written.
        Assert.DoesNotContain("device:", err);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void GeneratesAnMp4AndItsSidecarOnTheTinyModel()
    {
        using var dir = new TempDir();
        var output = dir.File("videos", "panda.mp4");
        var (code, stdout, stderr) = Run(Tiny(output, 9, 2, "--prompt-file", "panda_guitar", "--fps", "12", "--seed", "7"));
        Assert.True(code == 0, stderr);

        // The MP4, as ffprobe reads it.
        var info = VideoProbe.Probe(output);
        Assert.Equal((48, 32, 9), (info.Width, info.Height, info.FrameCount));
        Assert.Equal(12.0, info.Fps, 3);
        Assert.Equal(("h264", "yuv420p"), (info.Codec, info.PixelFormat));

        // The sidecar: every setting as given, what was resolved, identity, timings, memory, versions, the video's facts.
        var sidecar = VideoSidecar.TryLoad(dir.File("videos", "panda.json"));
        Assert.NotNull(sidecar);
        var s = sidecar!.Settings;
        Assert.Equal(File.ReadAllText(Path.Combine(Fixtures.RepoRoot, "prompts", "panda_guitar.txt")).Trim(), s.Prompt);
        Assert.Equal(("panda_guitar", Fixtures.Path2b, 2, 6.0, 9, 12, 7L, 32, 48), (s.PromptName, s.Model, s.Steps, s.Guidance, s.Frames, s.Fps, s.Seed, s.Height, s.Width));
        Assert.Null(s.Scheduler);
        Assert.Null(s.DType);
        Assert.Equal("ddim", sidecar.Resolved["scheduler"]);
        Assert.Equal("F32", sidecar.Resolved["dtype"]);
        Assert.Equal("false", sidecar.Resolved["dynamic_cfg"]);
        Assert.Equal("9", sidecar.Resolved["frames_decoded"]);
        Assert.Equal("1x3x4x4x6", sidecar.Resolved["latent_shape"]);
        Assert.Equal(Path.GetFullPath(Fixtures.Path2b), sidecar.ModelIdentity);
        Assert.Equal(ModelFolder.Open(Fixtures.Path2b).WeightsChecksum, sidecar.WeightsChecksum);
        Assert.StartsWith("sha256:", sidecar.WeightsChecksum);
        foreach (var stage in new[] { "text_encoder", "denoise", "vae_decode", "encode_video", "total" })
            Assert.True(sidecar.TimingsSeconds[stage] > 0, stage);
        Assert.True(sidecar.PeakMemoryBytes > 0);
        Assert.Equal("host", sidecar.PeakMemoryKind);
        Assert.Equal("cpu", sidecar.Device);
        foreach (var key in new[] { "cogvideox", ".net", "os", "ffmpeg", "backend" })
            Assert.False(string.IsNullOrEmpty(sidecar.Software[key]), key);
        Assert.StartsWith("ffmpeg version", sidecar.Software["ffmpeg"]);
        Assert.Equal(("panda.mp4", 9, 48, 32), (sidecar.VideoFile, sidecar.FrameCount, sidecar.Width, sidecar.Height));
        Assert.Equal(new FileInfo(output).Length, sidecar.VideoBytes);
        Assert.True(VideoSidecar.IsComplete(new VideoJob("generate", "panda", output, s)));
        Assert.Null(sidecar.TruncatedPromptText);

        // Progress on stderr (plain lines when redirected), the summary on stdout, nothing left behind.
        Assert.Contains("denoise 1/2", stderr);
        Assert.Contains("denoise 2/2", stderr);
        Assert.Contains("remaining", stderr);
        Assert.Contains("dtype: F32 — the CPU backend computes in float32", stderr);
        Assert.Contains($"wrote {output} (9 frames, 48×32, 12 fps)", stdout);
        Assert.Contains("denoise", stdout);
        Assert.Equal(["panda.json", "panda.mp4"], Directory.GetFiles(dir.File("videos")).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void SavedTensorsAreTheGoldenRunsFramesAndJsonParses()
    {
        using var dir = new TempDir();
        var output = dir.File("panda.mp4");
        var tensors = dir.File("panda.safetensors");
        var (code, stdout, stderr) = Run("generate", "--model", Fixtures.Path2b, "--prompt", PandaPrompt, "--seed", "42", "--steps", "4",
            "--guidance", "6", "--frames", "9", "--height", "32", "--width", "48", "--output", output, "--save-tensors", tensors, "--json");
        Assert.True(code == 0, stderr);

        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        Assert.Equal(Path.GetFullPath(output), root.GetProperty("video").GetString());
        Assert.Equal(Path.GetFullPath(Path.ChangeExtension(output, ".json")), root.GetProperty("sidecar").GetString());
        Assert.Equal(Path.GetFullPath(tensors), root.GetProperty("tensors").GetString());
        Assert.Equal((9, 48, 32, 8), (root.GetProperty("frames").GetInt32(), root.GetProperty("width").GetInt32(), root.GetProperty("height").GetInt32(), root.GetProperty("fps").GetInt32()));
        Assert.Equal(PandaPrompt, root.GetProperty("settings").GetProperty("prompt").GetString());
        Assert.Equal("ddim", root.GetProperty("resolved").GetProperty("scheduler").GetString());
        Assert.True(root.GetProperty("timings_seconds").GetProperty("denoise").GetDouble() > 0);
        Assert.True(root.GetProperty("peak_memory_bytes").GetInt64() > 0);
        Assert.Equal(0, root.GetProperty("warnings").GetArrayLength());

        // The safetensors file: latents and frames in float32, equal to the reference run's within the README's 2e-3.
        using var file = SafetensorsFile.Open(tensors);
        Assert.Equal(["frames", "latents"], file.Entries.Keys.Order());
        using var golden = SafetensorsFile.Open(Path.Combine(Fixtures.Path2b, "runs", "panda_s42.safetensors"));
        using var frames = file.Load("frames");
        using var latents = file.Load("latents");
        Assert.Equal([9, 3, 32, 48], frames.ShapeArray());
        Assert.Equal(DType.F32, file.Entry("frames").DType);
        Assert.Equal([1, 3, 4, 4, 6], latents.ShapeArray());
        using var goldenFrames = golden.Load("frames");
        using var goldenLatents = golden.Load("latents_after_step3");
        Compare.AssertAbs(goldenFrames.ToFloatArray(), frames.ToFloatArray(), 2e-3, "saved frames");
        Compare.AssertAbs(goldenLatents.ToFloatArray(), latents.ToFloatArray(), 1e-4, "saved latents");
        Assert.Equal("42", file.Metadata["seed"]);
    }

    [Fact]
    public void EveryNonDefaultFlagReachesTheRunAndTheSidecar()
    {
        using var dir = new TempDir();
        var output = dir.File("v.mp4");
        var (code, _, stderr) = Run(Tiny(output, 5, 2, "--prompt", "A whale.", "--negative-prompt", "blurry", "--guidance", "4.5",
            "--scheduler", "dpm", "--no-dynamic-cfg", "--dtype", "bf16", "--memory", "balanced", "--vae-tiling", "--device", "cpu",
            "--attention", "cuDNN", "--cudnn", "conv", "--cudnn-sdpa", "unified"));
        Assert.True(code == 0, stderr);
        var sidecar = VideoSidecar.TryLoad(dir.File("v.json"))!;
        var r = sidecar.Resolved;
        Assert.Equal(("dpm", "trailing", "false", "BF16", "balanced", "true", "true"),
            (r["scheduler"], r["timestep_spacing"], r["dynamic_cfg"], r["dtype"], r["memory"], r["vae_tiling"], r["classifier_free_guidance"]));
        Assert.Equal(("blurry", 4.5, "dpm", false, "bf16", true), (sidecar.Settings.NegativePrompt, sidecar.Settings.Guidance,
            sidecar.Settings.Scheduler, sidecar.Settings.DynamicCfg, sidecar.Settings.DType, sidecar.Settings.VaeTiling));
        // The GPU choices are recorded (the CPU backend ignores them).
        Assert.Equal(("cudnn", "conv", "unified"), (sidecar.Settings.Attention, sidecar.Settings.Cudnn, sidecar.Settings.CudnnSdpa));
        Assert.Equal("8", r["frames_decoded"]); // 5 frames → 2 latent frames → 8, as diffusers
        Assert.Equal(8, VideoProbe.Probe(output).FrameCount);
        Assert.Contains("warning: frames: 5 is not one of the counts", stderr);
    }

    [Fact]
    public void EightBitAttentionRunsAsTheCpuEmulationAndIsRecordedInTheSidecar()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run(Tiny(dir.File("e.mp4"), 9, 3, "--prompt", "A whale.", "--seed", "3"));
        Assert.True(code == 0, stderr);
        (code, _, stderr) = Run(Tiny(dir.File("s.mp4"), 9, 3, "--prompt", "A whale.", "--seed", "3", "--attention", "SAGE8"));
        Assert.True(code == 0, stderr);
        var sidecar = VideoSidecar.TryLoad(dir.File("s.json"))!;
        Assert.Equal("sage8", sidecar.Settings.Attention);
        Assert.Equal(("sage8", "0"), (sidecar.Resolved["attention"], sidecar.Resolved["exact_steps"]));
        Assert.Equal("exact", VideoSidecar.TryLoad(dir.File("e.json"))!.Resolved["attention"]);
        // Not the exact video: the run is refused as "other settings" against the exact one's sidecar.
        Assert.False(VideoSidecar.TryLoad(dir.File("e.json"))!.Settings.DefinesSameVideoAs(sidecar.Settings));

        // --exact-steps 1 of 3 steps: steps 0 and 2 exact, step 1 in 8 bits; 2 of 3 keeps every step exact (a warning).
        (code, _, stderr) = Run(Tiny(dir.File("x.mp4"), 9, 3, "--prompt", "A whale.", "--seed", "3", "--attention", "sage8", "--exact-steps", "1"));
        Assert.True(code == 0, stderr);
        Assert.Equal(("sage8", "1"), (VideoSidecar.TryLoad(dir.File("x.json"))!.Resolved["attention"], VideoSidecar.TryLoad(dir.File("x.json"))!.Resolved["exact_steps"]));
        (code, _, stderr) = Run(Tiny(dir.File("y.mp4"), 9, 3, "--prompt", "A whale.", "--attention", "sage8", "--exact-steps", "2"));
        Assert.True(code == 0, stderr);
        Assert.Contains("no step runs in 8 bits", stderr);
    }

    [Fact]
    public void AnUnknownAttentionValueIsAUsageErrorNamingSage8()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run(Tiny(dir.File("v.mp4"), 9, 2, "--prompt", "A whale.", "--attention", "int8"));
        Assert.Equal(2, code);
        Assert.Contains("--attention='int8' is not understood", stderr);
        Assert.Contains("sage8", stderr);
        Assert.DoesNotContain("   at ", stderr);
    }

    [Fact]
    public void AStepCacheReusesStepsSaysSoInTheProgressAndRecordsItInTheSidecar()
    {
        using var dir = new TempDir();
        // A threshold no step reaches: every step but the first and last reuses the first block cache.
        var (code, _, stderr) = Run(Tiny(dir.File("v.mp4"), 9, 5, "--prompt", "A whale.", "--cache", "fbcache", "--cache-threshold", "1000"));
        Assert.True(code == 0, stderr);
        Assert.Contains("denoise 2/5", stderr);
        Assert.Equal(3, stderr.Split('\n').Count(l => l.Contains("reused (step cache)", StringComparison.Ordinal)));
        Assert.DoesNotContain("denoise 1/5  elapsed", stderr.Split('\n').Where(l => l.Contains("reused", StringComparison.Ordinal)).FirstOrDefault() ?? "");
        var sidecar = VideoSidecar.TryLoad(dir.File("v.json"))!;
        Assert.Equal(("fbcache", 1000.0, 0), (sidecar.Settings.Cache, sidecar.Settings.CacheThreshold, sidecar.Settings.ExactSteps));
        Assert.Equal(("fbcache, threshold 1000", "1", "1,2,3"), (sidecar.Resolved["cache"], sidecar.Resolved["exact_steps"], sidecar.Resolved["cache_reused_steps"]));

        // --exact-steps 2 keeps steps 0, 1 and 3, 4 exact: only step 2 is reused.
        (code, _, stderr) = Run(Tiny(dir.File("w.mp4"), 9, 5, "--prompt", "A whale.", "--cache", "teacache", "--cache-threshold", "1000", "--exact-steps", "2"));
        Assert.True(code == 0, stderr);
        var resolved = VideoSidecar.TryLoad(dir.File("w.json"))!.Resolved;
        Assert.Equal(("teacache, threshold 1000, CogVideoX-2b coefficients", "2", "2"), (resolved["cache"], resolved["exact_steps"], resolved["cache_reused_steps"]));
    }

    [Fact]
    public void Fp8LinearsAreRecordedInTheSidecarWithTheirExactSteps()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run(Tiny(dir.File("v.mp4"), 9, 3, "--prompt", "A whale.", "--linear", "fp8", "--exact-steps", "1", "--quiet"));
        Assert.True(code == 0, stderr);
        Assert.DoesNotContain("exact steps has no effect", stderr);
        var sidecar = VideoSidecar.TryLoad(dir.File("v.json"))!;
        Assert.Equal(("fp8", 1), (sidecar.Settings.Linear, sidecar.Settings.ExactSteps));
        Assert.Equal(("fp8", "1", "none"), (sidecar.Resolved["linear"], sidecar.Resolved["exact_steps"], sidecar.Resolved["cache"]));
        // Not the same video as the exact path's: the settings say so.
        var exact = sidecar.Settings with { Linear = "exact" };
        Assert.False(exact.DefinesSameVideoAs(sidecar.Settings));
        Assert.Contains("linear exact → fp8", exact.Differences(sidecar.Settings));
        Assert.False(sidecar.Settings.DefinesSameVideoAs(sidecar.Settings with { ExactSteps = 0 }));
    }

    [Fact]
    public void ExactStepsWithoutACacheWarns()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run(Tiny(dir.File("v.mp4"), 9, 2, "--prompt", "A whale.", "--exact-steps", "1", "--quiet"));
        Assert.True(code == 0, stderr);
        Assert.Contains("warning: exact steps has no effect without a fast mode", stderr);
        Assert.Equal("", VideoSidecar.TryLoad(dir.File("v.json"))!.Resolved["cache_reused_steps"]);
    }

    [Fact]
    public void LowMemoryOnTheCpuRunsAsBalancedAndSaysSo()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run(Tiny(dir.File("v.mp4"), 9, 1, "--prompt", "A whale.", "--memory", "low", "--device", "cpu"));
        Assert.True(code == 0, stderr);
        Assert.Contains("memory: low runs as balanced on cpu: this backend does not stream weights", stderr);
        var r = VideoSidecar.TryLoad(dir.File("v.json"))!.Resolved;
        Assert.Equal(("low", "false"), (r["memory"], r["vae_tiling"]));
        Assert.StartsWith("memory: low runs as balanced on cpu", r["memory_reason"]);
    }

    [Fact]
    public void ALongPromptIsToldWhichWordsWereCut()
    {
        using var dir = new TempDir();
        var words = string.Join(' ', Enumerable.Range(0, 300).Select(i => $"word{i}"));
        var (code, _, stderr) = Run(Tiny(dir.File("long.mp4"), 1, 1, "--prompt", words, "--quiet"));
        Assert.True(code == 0, stderr);
        Assert.Contains("warning: The prompt is", stderr);
        Assert.Contains("the model reads 226; these words were cut: \"word", stderr);
        Assert.Contains("word299\"", stderr);
        Assert.DoesNotContain("denoise 1/1", stderr); // --quiet: no progress, only warnings
        var sidecar = VideoSidecar.TryLoad(dir.File("long.json"))!;
        Assert.EndsWith("word298 word299", sidecar.TruncatedPromptText);
        Assert.DoesNotContain("word0 ", sidecar.TruncatedPromptText);
    }

    [Fact]
    public void FramesOffTheTrainedCountsWarnAndDecodeAsDiffusers()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run(Tiny(dir.File("v.mp4"), 13, 1, "--prompt", "A whale."));
        Assert.True(code == 0, stderr);
        Assert.Contains("warning: frames: 13 is not one of the counts CogVideoX 1.0 was trained on", stderr);
        Assert.Contains("decodes into 16 frames", stderr);
        Assert.Equal(16, VideoProbe.Probe(dir.File("v.mp4")).FrameCount);
    }

    // ---- validation: each error is a message and exit code 2, before anything is computed or written ----

    [Theory]
    [InlineData(new[] { "--frames", "50" }, "frames: 50 is not a valid frame count", "the nearest valid values are 49 and 53")]
    [InlineData(new[] { "--frames", "0" }, "frames: 0 is not a valid frame count", "the nearest valid value is 1")]
    [InlineData(new[] { "--height", "100" }, "height: 100 is not a multiple of 16", "96 or 112")]
    [InlineData(new[] { "--width", "50" }, "width: 50 is not a multiple of 16", "48 or 64")]
    [InlineData(new[] { "--width", "8" }, "width: 8 is not a multiple of 16", "is 16")]
    [InlineData(new[] { "--steps", "0" }, "steps: 0 is not a valid number of denoising steps", "use 1 or more")]
    [InlineData(new[] { "--guidance", "-1" }, "guidance: -1 is not a valid guidance scale", "≥ 0")]
    [InlineData(new[] { "--guidance", "NaN" }, "guidance: NaN is not a valid guidance scale", "≥ 0")]
    [InlineData(new[] { "--fps", "0" }, "fps: 0 is out of range", "1 to 240")]
    [InlineData(new[] { "--scheduler", "euler" }, "Unknown scheduler \"euler\"", "ddim, dpm")]
    [InlineData(new[] { "--dtype", "f8" }, "unknown dtype \"f8\"", "bf16")]
    [InlineData(new[] { "--memory", "most" }, "unknown memory mode \"most\"", "balanced")]
    [InlineData(new[] { "--device", "tpu" }, "unknown device 'tpu'", "cpu, cuda or cuda:N")]
    [InlineData(new[] { "--attention", "flash" }, "--attention='flash' is not understood", "use own")]
    [InlineData(new[] { "--cudnn", "maybe" }, "--cudnn='maybe' is not understood", "on, off, attention, conv or autotune")]
    [InlineData(new[] { "--cudnn-sdpa", "fast" }, "--cudnn-sdpa='fast' is not understood", "auto, unified or composite")]
    [InlineData(new[] { "--cache", "turbo" }, "cache: unknown step cache \"turbo\"", "none (every step computed, the default), teacache")]
    [InlineData(new[] { "--cache", "fbcache", "--cache-threshold", "-1" }, "cache threshold: -1 is not valid", "a finite number ≥ 0")]
    [InlineData(new[] { "--cache", "teacache", "--exact-steps", "-2" }, "exact steps: -2 is not valid", "use 0 or more")]
    [InlineData(new[] { "--linear", "int8" }, "linear: unknown mode \"int8\"", "use exact (the model's dtype, the default) or fp8")]
    [InlineData(new[] { "--dynamic-cfg", "--no-dynamic-cfg" }, "--dynamic-cfg and --no-dynamic-cfg both given", "use one")]
    [InlineData(new[] { "--output", "OUT/video.avi" }, "the file name must end in .mp4", "sidecar")]
    [InlineData(new[] { "--save-tensors", "OUT/v.json" }, "would overwrite the video or its sidecar", ".safetensors")]
    [InlineData(new[] { "--prompt", "   " }, "--prompt is empty", "--prompt-file")]
    public void InvalidSettingsAreRefusedWithAClearMessage(string[] flags, string what, string allowed)
    {
        using var dir = new TempDir();
        var output = dir.File("v.mp4");
        var args = new List<string> { "generate", "--model", Fixtures.Path2b, "--output", output };
        if (!flags.Contains("--prompt")) args.AddRange(["--prompt", "A panda."]);
        args.AddRange(flags.Select(f => f.Replace("OUT", dir.Path, StringComparison.Ordinal)));
        if (flags.Contains("--output")) args.RemoveRange(3, 2); // the flag under test replaces the default output
        var (code, stdout, stderr) = Run([.. args]);
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains(what, stderr);
        Assert.Contains(allowed, stderr);
        Assert.Equal("", stdout);
        Assert.Empty(Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public void ADeviceWithoutABackendInThisBuildIsRefused()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run("generate", "--model", Fixtures.Path2b, "--prompt", "A panda.", "--device", "cuda:1", "--output", dir.File("v.mp4"));
        Assert.NotEqual(0, code);
        // This build has no CUDA backend; once one is registered, a machine without that GPU says so instead.
        Assert.Contains("cuda", stderr, StringComparison.OrdinalIgnoreCase);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void PromptAndPromptFileTogetherOrNeitherIsAnError()
    {
        var (code, _, stderr) = Run("generate", "--prompt", "A panda.", "--prompt-file", "panda_guitar");
        Assert.Equal(2, code);
        Assert.Contains("--prompt and --prompt-file both given", stderr);

        (code, _, stderr) = Run("generate", "--model", Fixtures.Path2b);
        Assert.Equal(2, code);
        Assert.Contains("no prompt: use --prompt-file NAME (one of: astronauta_luna, cane_parco", stderr);
    }

    [Fact]
    public void AnUnknownPromptFileListsTheAvailableOnes()
    {
        var (code, _, stderr) = Run("generate", "--prompt-file", "pandaa_guitar", "--model", Fixtures.Path2b);
        Assert.Equal(2, code);
        Assert.Contains("no prompt file named 'pandaa_guitar'", stderr);
        Assert.Contains("available: astronauta_luna, cane_parco, citta_futuristica, gatto_hacker, oceano_balena, panda_guitar, persona_panino, ronaldo_pizza, samurai_pioggia", stderr);
    }

    [Theory]
    [InlineData("../README", "contains a folder separator")]
    [InlineData("..", "contains '..'")]
    [InlineData("/etc/passwd", "is an absolute path")]
    [InlineData("sub/panda", "contains a folder separator")]
    [InlineData("sub\\panda", "contains a folder separator")]
    [InlineData(".hidden", "starts with '.'")]
    [InlineData("panda guitar", "contains characters other than")]
    [InlineData("", "is empty")]
    public void APromptFileNameCannotLeaveThePromptsFolder(string name, string problem)
    {
        var (code, _, stderr) = Run("generate", "--prompt-file", name, "--model", Fixtures.Path2b);
        Assert.Equal(2, code);
        Assert.Contains($"prompt file name '{name}' {problem}", stderr);
        Assert.Contains("without folders", stderr);
    }

    [Fact]
    public void PromptFilesAreFoundInTheCurrentDirectoryFirstAndAnEmptyOneIsAnError()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("prompts"));
        File.WriteAllText(dir.File("prompts", "empty.txt"), " \n\t\n");
        File.WriteAllText(dir.File("prompts", "mine.txt"), "  A red fox runs through fresh snow.\n");
        var folders = new[] { dir.File("prompts"), Path.Combine(Fixtures.RepoRoot, "prompts") };

        var e = Assert.Throws<CogVideoXException>(() => PromptFiles.Load("empty", folders));
        Assert.Contains("empty.txt is empty; write the prompt in it", e.Message);
        Assert.Equal(2, e.ExitCode);
        var mine = PromptFiles.Load("mine.txt", folders);
        Assert.Equal(("mine", "A red fox runs through fresh snow."), (mine.Name, mine.Text));
        Assert.Equal(Path.Combine(Fixtures.RepoRoot, "prompts", "panda_guitar.txt"), PromptFiles.Load("panda_guitar", folders).Path);
        var missing = Assert.Throws<CogVideoXException>(() => PromptFiles.Load("nothing", folders));
        Assert.Contains("available: astronauta_luna, cane_parco, citta_futuristica, empty, gatto_hacker, mine, oceano_balena", missing.Message);

        // The same through the real CLI, run in that folder.
        var cli = ChildCli.Run(dir.Path, null, "generate", "--prompt-file", "empty", "--model", Fixtures.Path2b);
        Assert.Equal(2, cli.ExitCode);
        Assert.Contains("prompts/empty.txt is empty", cli.StdErr);
    }

    [Fact]
    public void MissingFfmpegIsReportedBeforeAnyComputeStarts()
    {
        using var dir = new TempDir();
        var clock = Stopwatch.StartNew();
        var cli = ChildCli.Run(dir.Path, new Dictionary<string, string?> { ["PATH"] = dir.Path, ["COGVIDEOX_FFMPEG"] = null, ["COGVIDEOX_FFPROBE"] = null },
            "generate", "--prompt-file", "panda_guitar", "--model", Fixtures.Path2b, "--frames", "9", "--height", "32", "--width", "48", "--output", dir.File("v.mp4"));
        Assert.Equal(1, cli.ExitCode);
        Assert.Contains("error: ffmpeg was not found on PATH", cli.StdErr);
        Assert.Contains("sudo apt-get install ffmpeg", cli.StdErr);
        Assert.DoesNotContain("loading", cli.StdErr);
        Assert.DoesNotContain("denoise", cli.StdErr);
        Assert.Empty(Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public void SigtermStopsBetweenStepsAndLeavesNoFiles()
    {
        if (!OperatingSystem.IsLinux()) return; // signals are sent with kill(1)
        using var dir = new TempDir();
        var output = dir.File("v.mp4");
        var (process, stderr) = ChildCli.Start(dir.Path, "generate", "--prompt-file", "panda_guitar", "--model", Fixtures.Path2b,
            "--frames", "9", "--height", "32", "--width", "48", "--steps", "500", "--output", output);
        using (process)
        {
            var deadline = DateTime.UtcNow.AddMinutes(1);
            while (!stderr().Contains("denoise 2/500", StringComparison.Ordinal) && !process.HasExited && DateTime.UtcNow < deadline)
                Thread.Sleep(50);
            Assert.False(process.HasExited, stderr());
            using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) kill.WaitForExit();
            Assert.True(process.WaitForExit(TimeSpan.FromMinutes(1)), "did not stop after SIGTERM");
            process.WaitForExit();
            Assert.Equal(130, process.ExitCode);
            Assert.Contains("stopping after the current step", stderr());
            Assert.EndsWith("cancelled", stderr().TrimEnd());
            Assert.DoesNotContain("denoise 500/500", stderr());
            Assert.Empty(Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories));
        }
    }

    [Theory]
    [InlineData("2b", "panda_guitar", "outputs/2b/panda_guitar.mp4")]
    [InlineData("THUDM/CogVideoX-5b@main", "gatto_hacker", "outputs/CogVideoX-5b-main/gatto_hacker.mp4")]
    [InlineData("some/folder/that/does/not/exist/", "x", "outputs/exist/x.mp4")]
    public void DefaultOutputIsOutputsModelPrompt(string model, string prompt, string expected) =>
        Assert.Equal(expected.Replace('/', Path.DirectorySeparatorChar), GenerateCommand.DefaultOutput(model, prompt));

    [Fact]
    public void DefaultOutputOfAFolderModelIsItsName() =>
        Assert.Equal(Path.Combine("outputs", "pipeline_2b_style", "p.mp4"), GenerateCommand.DefaultOutput(Fixtures.Path2b + "/", "p"));

    [Theory]
    [InlineData("A panda, dressed in a small red jacket, plays!", "a_panda_dressed_in_a_small")]
    [InlineData("!!! ???", "prompt")]
    public void TextPromptsAreNamedByTheirFirstWords(string prompt, string slug) => Assert.Equal(slug, GenerateCommand.Slug(prompt));
}

/// <summary>Runs the CLI (cogvideox.dll from the test's build output) as a child process, with its own directory and environment.</summary>
internal sealed class ChildCli
{
    private ChildCli(int exitCode, string stdout, string stderr) => (ExitCode, StdOut, StdErr) = (exitCode, stdout, stderr);

    public int ExitCode { get; }

    public string StdOut { get; }

    public string StdErr { get; }

    /// <summary>Starts the CLI and returns the process and a reader of its stderr so far (stdout is discarded).</summary>
    public static (Process Process, Func<string> StdErr) Start(string workingDirectory, params string[] args)
    {
        var psi = StartInfo(workingDirectory, null, args);
        var stderr = new System.Text.StringBuilder();
        var p = Process.Start(psi)!;
        p.ErrorDataReceived += (_, e) => { lock (stderr) if (e.Data is not null) stderr.AppendLine(e.Data); };
        p.OutputDataReceived += (_, _) => { };
        p.BeginErrorReadLine();
        p.BeginOutputReadLine();
        return (p, () => { lock (stderr) return stderr.ToString(); });
    }

    public static ChildCli Run(string workingDirectory, IReadOnlyDictionary<string, string?>? environment, params string[] args)
    {
        using var p = Process.Start(StartInfo(workingDirectory, environment, args))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail("cogvideox did not finish within 2 minutes");
        }
        p.WaitForExit();
        return new ChildCli(p.ExitCode, stdout.Result, stderr.Result);
    }

    private static ProcessStartInfo StartInfo(string workingDirectory, IReadOnlyDictionary<string, string?>? environment, string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "cogvideox.dll");
        Assert.True(File.Exists(dll), $"{dll} missing: the test project references the CLI so its build output includes it");
        // The host by its full path: the child may run with an empty PATH.
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h ? h : Environment.ProcessPath!;
        if (!Path.GetFileNameWithoutExtension(host).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
            host = FindDotnet();
        var psi = new ProcessStartInfo(host)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (environment is not null)
            foreach (var (key, value) in environment)
            {
                if (value is null) psi.Environment.Remove(key);
                else psi.Environment[key] = value;
            }
        return psi;
    }

    private static string FindDotnet()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet");
            if (File.Exists(candidate)) return candidate;
        }
        return "dotnet";
    }
}
