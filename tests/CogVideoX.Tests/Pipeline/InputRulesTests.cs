using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Pipeline;

/// <summary>
/// Requests that do not fit the model's task are refused before anything loads (Resolve reads only configs and the
/// tokenizer), with the exit code of a usage error and a message that names what fits.
/// </summary>
public class InputRulesTests
{
    private static readonly InputMedia Image = new("cat.png", "00", [new byte[3 * 8 * 8]], 8, 8, 1);

    private static InputMedia Video(int framesInFile) => new("clip.mp4", "00", [new byte[3 * 8 * 8]], 8, 8, framesInFile);

    private static readonly GenerationRequest Small = new() { Prompt = "A panda.", Steps = 4, Frames = 9, Height = 32, Width = 48 };

    private static CogVideoXException Refused(string model, GenerationRequest request)
    {
        using var pipeline = new CogVideoXPipeline(ModelFolder.Open(model));
        var e = Assert.ThrowsAny<CogVideoXException>(() => pipeline.Resolve(request));
        Assert.Equal(2, e.ExitCode);
        return e;
    }

    [Fact]
    public void AnImageToVideoModelNeedsAnImage()
    {
        var e = Refused(InputPipelineTests.I2vModel, Small);
        Assert.Contains("is an image-to-video model", e.Message);
        Assert.Contains("--image FILE", e.Message);
        Assert.Contains("--model 2b or --model 5b", e.Message);
        var video = Refused(InputPipelineTests.I2vModel, Small with { Video = Video(17) });
        Assert.Contains("takes an image, not a video", video.Message);
    }

    [Fact]
    public void ATextToVideoModelRefusesAnImageAndNamesTheModelThatTakesOne()
    {
        var e = Refused(Fixtures.Path2b, Small with { Image = Image });
        Assert.Contains("cannot start from an image", e.Message);
        Assert.Contains("--model 5b-i2v (THUDM/CogVideoX-5b-I2V) or --model 1.5-i2v (THUDM/CogVideoX1.5-5B-I2V)", e.Message);
        var both = Refused(Fixtures.Path2b, Small with { Image = Image, Video = Video(17) });
        Assert.Contains("not both", both.Message);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-0.5)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void StrengthOutsideZeroToOneIsRefused(double strength)
    {
        var e = Refused(Fixtures.Path2b, Small with { Video = Video(17), Strength = strength });
        Assert.Contains("outside (0, 1]", e.Message);
    }

    [Fact]
    public void StrengthWithoutAVideoIsRefused()
    {
        var e = Refused(Fixtures.Path2b, Small with { Strength = 0.5 });
        Assert.Contains("video-to-video only", e.Message);
    }

    [Fact]
    public void AStrengthThatLeavesNoStepIsRefused()
    {
        var e = Refused(Fixtures.Path2b, Small with { Video = Video(17), Strength = 0.2 }); // int(4 × 0.2) = 0
        Assert.Contains("= 0 steps", e.Message);
        Assert.Contains("at least 5 steps", e.Message);
    }

    [Fact]
    public void AVideoWithTooFewFramesIsRefusedWithTheCountThatFits()
    {
        var e = Refused(Fixtures.Path5b, Small with { Frames = 21, Video = Video(19) });
        Assert.Contains("the video has 19 frames, fewer than the 21", e.Message);
        Assert.Contains("--frames 17", e.Message);
    }

    [Fact]
    public void TheLearnedTableFixesTheSizeAndWarnsOffItsFrameCount()
    {
        var e = Refused(InputPipelineTests.I2vModel, Small with { Image = Image, Height = 48, Width = 48 });
        Assert.Contains("--height 32 --width 48", e.Message);
        using var pipeline = new CogVideoXPipeline(ModelFolder.Open(InputPipelineTests.I2vModel));
        var (_, warnings) = pipeline.Resolve(Small with { Image = Image, Frames = 13 });
        Assert.Contains(warnings, w => w.Contains("learned its positional table for 9 frames", StringComparison.Ordinal));
        var (resolved, quiet) = pipeline.Resolve(Small with { Image = Image });
        Assert.DoesNotContain(quiet, w => w.Contains("positional table", StringComparison.Ordinal));
        Assert.Equal("image-to-video", resolved.Task);
    }

    [Fact]
    public void VideoToVideoCutsTheScheduleAsDiffusersDoes()
    {
        using var pipeline = new CogVideoXPipeline(ModelFolder.Open(Fixtures.Path5b));
        var (resolved, _) = pipeline.Resolve(Small with { Steps = 7, Video = Video(17), Strength = 0.3 });
        Assert.Equal("video-to-video", resolved.Task);
        Assert.Equal([285, 142], resolved.Timesteps); // int(7 × 0.3) = 2 of [999, 856, 713, 570, 428, 285, 142]
        Assert.Equal(0.3, resolved.Strength);
        var (plain, _) = pipeline.Resolve(Small with { Steps = 7 });
        Assert.Equal("text-to-video", plain.Task);
        Assert.Equal(7, plain.Timesteps.Count);
        Assert.Null(plain.Strength);
        Assert.Equal(2, VideoToVideoConditioning.SkippedSteps(10, 0.8));
        Assert.Equal(0, VideoToVideoConditioning.SkippedSteps(10, 1.0));
    }

    [Fact]
    public void InspectNamesTheTask()
    {
        Assert.StartsWith("image-to-video (from model_index.json)", PipelineTasks.Describe(ModelFolder.Open(InputPipelineTests.I2vModel)));
        Assert.StartsWith("text-to-video (from model_index.json)", PipelineTasks.Describe(ModelFolder.Open(Fixtures.Path2b)));
    }
}
