using CogVideoX.Diffusion;
using CogVideoX.Lab;
using CogVideoX.Lab.Runs;
using CogVideoX.Lab.Specs;
using CogVideoX.Media;
using CogVideoX.Tests.Pipeline;

namespace CogVideoX.Tests.Lab;

/// <summary>
/// A spec's frames, size and fps follow its model where it leaves them out, as <c>generate</c>'s flags do: 81 frames of
/// 768×1360 at 16 fps for CogVideoX 1.5 (by alias, repo id or folder), 49 of 480×720 at 8 for the 1.0 models.
/// </summary>
public class SpecModelDefaultsTests
{
    private static Dictionary<string, GenerationSettings> Jobs(string yaml)
    {
        using var study = new StudyFolder(yaml);
        return StudyPlan.Expand(SpecParser.Load(study.SpecPath)).Jobs.ToDictionary(j => j.Output, j => j.Settings);
    }

    private static (int, int, int, int) Shape(GenerationSettings s) => (s.Frames, s.Height, s.Width, s.Fps);

    [Fact]
    public void LeftOutSettingsFollowTheModelAndStatedOnesStay()
    {
        var jobs = Jobs($$"""
            defaults: { model: "1.5", steps: 2 }
            experiments:
              alias: { prompts: [panda] }
              i2v_repo: { prompts: [panda], settings: { model: "THUDM/CogVideoX1.5-5B-I2V@main" } }
              folder: { prompts: [panda], settings: { model: "{{CogVideoX15Tests.TextToVideo}}", frames: 17, width: 48 } }
              models: { prompts: [panda], vary: { model: ["2b", "1.5"] }, reference: "2b" }
              frames: { prompts: [panda], vary: { frames: [49, 161] }, reference: 49 }
              one_point_oh: { prompts: [panda], settings: { model: "{{Fixtures.Path5b}}" } }
            prompt_dir: ../prompts
            """);
        Assert.Equal((81, 768, 1360, 16), Shape(jobs["alias/panda.mp4"]));
        Assert.Equal((81, 768, 1360, 16), Shape(jobs["i2v_repo/panda.mp4"]));
        // A 1.5 folder is told by its config; what the experiment states is kept.
        Assert.Equal((17, 768, 48, 16), Shape(jobs["folder/panda.mp4"]));
        // Varying the model: each video takes its own model's defaults.
        Assert.Equal((49, 480, 720, 8), Shape(jobs["models/model_2b.mp4"]));
        Assert.Equal((81, 768, 1360, 16), Shape(jobs["models/model_1.5.mp4"]));
        // A varied setting is stated: the model's defaults fill in only the rest.
        Assert.Equal((49, 768, 1360, 16), Shape(jobs["frames/frames_49.mp4"]));
        Assert.Equal((161, 768, 1360, 16), Shape(jobs["frames/frames_161.mp4"]));
        Assert.Equal((49, 480, 720, 8), Shape(jobs["one_point_oh/panda.mp4"]));
    }

    [Fact]
    public void StatedDefaultsWinOverTheModels()
    {
        var jobs = Jobs("""
            defaults: { model: "1.5", frames: 49, height: 480, width: 720, fps: 8 }
            experiments:
              stated: { prompts: [panda] }
            prompt_dir: ../prompts
            """);
        Assert.Equal((49, 480, 720, 8), Shape(jobs["stated/panda.mp4"]));
    }

    [Fact]
    public void TheDryRunShowsTheResolvedValues()
    {
        using var study = new StudyFolder("""
            defaults: { model: "1.5", steps: 2, device: cpu }
            experiments:
              base: { prompts: [panda] }
            prompt_dir: ../prompts
            """);
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(["experiment", "run", study.SpecPath, "--dry-run", "--renderer", "synthetic"], stdout, stderr);
        Assert.True(code == 0, stderr.ToString());
        Assert.Contains("panda · 1.5 · 2 steps · guidance 6 · seed 42 · 81 frames · 1360×768 · 16 fps · cpu", stdout.ToString());
    }

    [Fact]
    public void TheSidecarAndTheVideoRecordTheModelsDefaults()
    {
        // The tiny 1.5 folder at a tiny size: frames and fps are left to the model.
        using var study = new StudyFolder($$"""
            defaults: { model: "{{CogVideoX15Tests.TextToVideo}}", steps: 1, height: 32, width: 48, device: cpu }
            experiments:
              base: { prompts: [panda] }
            prompt_dir: ../prompts
            """);
        var spec = SpecParser.Load(study.SpecPath);
        var plan = StudyPlan.Expand(spec).WithDevice("cpu");
        var summary = new ExperimentRunner(plan, new RunOptions { OutputDir = spec.OutputDir, Synthetic = true })
            .Run(new SyntheticRenderer(), _ => { }, CancellationToken.None);
        Assert.Equal(1, summary.Rendered);
        var video = Path.Combine(spec.OutputDir, "base", "panda.mp4");
        var sidecar = VideoSidecar.TryLoad(Path.ChangeExtension(video, ".json"))!;
        Assert.Equal((81, 32, 48, 16), Shape(sidecar.Settings));
        var info = VideoProbe.Probe(video);
        Assert.Equal((81, 16.0), (info.FrameCount, info.Fps));
    }

    [Fact]
    public void GenerateAndTheWorkbenchShareOneSetOfDefaults()
    {
        Func<string, string?> noCache = name => name == "HF_HUB_CACHE" ? Path.Combine(Path.GetTempPath(), "cogvideox-no-cache") : null;
        Assert.Same(ModelDefaults.Version15, ModelDefaultsLookup.For("1.5-i2v", noCache));
        Assert.Null(ModelDefaultsLookup.For("5b", noCache));
        var s = new GenerationSettings { Frames = 17 };
        Assert.Equal((17, 768, 1360, 16), Shape(ModelDefaultsLookup.Apply(s, ModelDefaults.Version15, key => key == "frames")));
        Assert.Same(s, ModelDefaultsLookup.Apply(s, ModelDefaults.Version10, _ => false));
        Assert.Same(s, ModelDefaultsLookup.Apply(s, null, _ => false));
    }
}
