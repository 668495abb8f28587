using System.Security.Cryptography;
using CogVideoX.Engine;
using CogVideoX.Lab;
using CogVideoX.Lab.Specs;
using CogVideoX.Media;
using CogVideoX.Tests.Pipeline;

namespace CogVideoX.Tests.Cli;

/// <summary>
/// <c>generate --image</c> and <c>generate --video</c> end to end on the tiny fixture models: the MP4 as ffprobe
/// reads it, the sidecar with the input's path and SHA-256, and the usage errors of the command line.
/// </summary>
public class GenerateInputCommandTests
{
    private const string PandaPrompt = "A panda, dressed in a small red jacket and a tiny hat, sits on a wooden stool in a serene bamboo forest, strumming a miniature acoustic guitar.";

    private static string Inputs => Path.Combine(InputPipelineTests.Folder, "inputs");

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(args, stdout, stderr, gpu: GenerateCommandTests.NoGpu);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private static string Sha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    [Fact]
    public void GenerateImageToVideo()
    {
        using var dir = new TempDir();
        var output = dir.File("i2v.mp4");
        var image = Path.Combine(Inputs, "image_50x70.png");
        var (code, _, stderr) = Run("generate", "--model", InputPipelineTests.I2vModel, "--image", image, "--prompt", PandaPrompt,
            "--frames", "9", "--height", "32", "--width", "48", "--steps", "2", "--output", output);
        Assert.True(code == 0, stderr);
        var info = VideoProbe.Probe(output);
        Assert.Equal((48, 32, 9, "h264", "yuv420p"), (info.Width, info.Height, info.FrameCount, info.Codec, info.PixelFormat));
        var sidecar = VideoSidecar.TryLoad(dir.File("i2v.json"))!;
        Assert.Equal(image, sidecar.Settings.Image);
        Assert.Equal("image-to-video", sidecar.Resolved["task"]);
        Assert.Equal(image, sidecar.Resolved["input_image"]);
        Assert.Equal(Sha256(image), sidecar.Resolved["input_image_sha256"]);
        Assert.Equal("70x50", sidecar.Resolved["input_image_size"]);
        Assert.True(sidecar.TimingsSeconds["vae_encode"] > 0);
        Assert.False(sidecar.Resolved.ContainsKey("strength"));
    }

    [Fact]
    public void GenerateVideoToVideoWithStrength()
    {
        using var dir = new TempDir();
        var output = dir.File("v2v.mp4");
        var video = Path.Combine(Inputs, "video_17x40x56.mp4");
        var (code, _, stderr) = Run("generate", "--model", Fixtures.Path2b, "--video", video, "--strength", "0.5", "--prompt", PandaPrompt,
            "--frames", "9", "--height", "32", "--width", "48", "--steps", "4", "--output", output);
        Assert.True(code == 0, stderr);
        Assert.Contains("denoise 2/2", stderr); // int(4 × 0.5) = 2 steps run
        var info = VideoProbe.Probe(output);
        Assert.Equal((48, 32, 9), (info.Width, info.Height, info.FrameCount));
        var sidecar = VideoSidecar.TryLoad(dir.File("v2v.json"))!;
        Assert.Equal((video, 0.5), (sidecar.Settings.Video, sidecar.Settings.Strength));
        Assert.Equal("video-to-video", sidecar.Resolved["task"]);
        Assert.Equal(Sha256(video), sidecar.Resolved["input_video_sha256"]);
        Assert.Equal("0.5", sidecar.Resolved["strength"]);
        Assert.Equal("9", sidecar.Resolved["input_video_frames_used"]);
        Assert.Equal("499,249", sidecar.Resolved["timesteps"]);
    }

    [Theory]
    [InlineData("missing-image", "no such image file")]
    [InlineData("image-on-2b", "--model 5b-i2v")]
    [InlineData("no-image-on-i2v", "--image FILE")]
    [InlineData("strength-range", "outside (0, 1]")]
    [InlineData("strength-alone", "video-to-video only")]
    [InlineData("short-video", "--frames 17")]
    [InlineData("garbage-image", "not an image this program can read")]
    public void InputMistakesAreUsageErrors(string mistake, string message)
    {
        using var dir = new TempDir();
        var garbage = dir.File("garbage.webp");
        File.WriteAllText(garbage, "no picture here");
        string image = Path.Combine(Inputs, "image_50x70.png"), video = Path.Combine(Inputs, "video_17x40x56.mp4");
        string[] args = mistake switch
        {
            "missing-image" => ["--model", InputPipelineTests.I2vModel, "--image", dir.File("none.png")],
            "image-on-2b" => ["--model", Fixtures.Path2b, "--image", image],
            "no-image-on-i2v" => ["--model", InputPipelineTests.I2vModel],
            "strength-range" => ["--model", Fixtures.Path2b, "--video", video, "--strength", "1.5"],
            "strength-alone" => ["--model", Fixtures.Path2b, "--strength", "0.5"],
            "short-video" => ["--model", Fixtures.Path2b, "--video", video, "--frames", "21"],
            "garbage-image" => ["--model", InputPipelineTests.I2vModel, "--image", garbage],
            _ => throw new ArgumentOutOfRangeException(nameof(mistake)),
        };
        var (code, _, stderr) = Run(["generate", "--prompt", "A panda.", "--height", "32", "--width", "48", "--steps", "2", "--output", dir.File("x.mp4"), .. args]);
        Assert.Equal(2, code);
        Assert.Contains(message, stderr);
        Assert.DoesNotContain("   at ", stderr); // no stack trace
        Assert.False(File.Exists(dir.File("x.mp4")));
    }

    [Fact]
    public void SpecsTakeImageVideoAndStrength()
    {
        var strength = SettingKey.Find("strength")!;
        Assert.True(strength.TryParse("0.6", false, out var value, out _));
        Assert.Equal(0.6, strength.Apply(new GenerationSettings(), value!).Strength);
        Assert.False(strength.TryParse("1.2", false, out _, out var error));
        Assert.Contains("outside (0, 1]", error);
        Assert.True(SettingKey.Find("image")!.TryParse("a.png", false, out var image, out _));
        Assert.Equal("a.png", SettingKey.Find("image")!.Apply(new GenerationSettings(), image!).Image);
        Assert.True(SettingKey.Find("video")!.TryParse("a.mp4", false, out var video, out _));
        var settings = SettingKey.Find("video")!.Apply(new GenerationSettings(), video!);
        Assert.Contains("video default → a.mp4", new GenerationSettings().Differences(settings));
    }

    [Fact]
    public void TheFiveBImageToVideoAliasNamesThePublishedRepo() =>
        Assert.Equal("THUDM/CogVideoX-5b-I2V", CogVideoX.Weights.ModelLocator.Aliases["5b-i2v"]);
}

/// <summary>A study that varies video-to-video's strength, and one that compares input images, as specs write them.</summary>
public class InputSpecTests
{
    [Fact]
    public void AStudyVariesStrengthAndComparesImages()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("inputs"));
        Directory.CreateDirectory(dir.File("prompts"));
        File.WriteAllText(dir.File("prompts", "panda_guitar.txt"), "A panda plays a guitar.");
        var spec = dir.File("study.yaml");
        File.WriteAllText(spec, """
            name: inputs_study
            output_dir: out
            prompt_dir: prompts
            defaults: { model: 2b, steps: 4, frames: 9, height: 32, width: 48 }
            experiments:
              strength:
                prompts: [panda_guitar]
                settings: { video: inputs/clip.mp4 }
                vary: { strength: [0.25, 0.5, 1] }
                reference: 0.5
              images:
                prompts: [panda_guitar]
                settings: { model: 5b-i2v }
                vary: { image: [inputs/a.png, inputs/b.jpg] }
                reference: inputs/a.png
            """);
        var parsed = SpecParser.Load(spec);
        var jobs = StudyPlan.Expand(parsed).Jobs.ToList();
        Assert.Equal(5, jobs.Count);
        var strengths = jobs.Where(j => j.Settings.Video is not null).ToList();
        Assert.Equal([0.25, 0.5, 1.0], strengths.Select(j => j.Settings.Strength!.Value));
        Assert.All(strengths, j => Assert.Equal(dir.File("inputs", "clip.mp4"), j.Settings.Video)); // relative to the spec
        var images = jobs.Where(j => j.Settings.Image is not null).Select(j => j.Settings.Image).ToList();
        Assert.Equal([dir.File("inputs", "a.png"), dir.File("inputs", "b.jpg")], images);
        Assert.All(jobs, j => Assert.DoesNotContain('/', j.Name)); // paths become safe names
    }
}
