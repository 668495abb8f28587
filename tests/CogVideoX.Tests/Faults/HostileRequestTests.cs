using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Lab;

namespace CogVideoX.Tests.Faults;

/// <summary>Sizes and prompt files that no run can use are refused before anything is loaded or computed.</summary>
public class HostileRequestTests
{
    private static readonly GenerationRequest Small = new() { Prompt = "p", Steps = 2, Frames = 9, Height = 32, Width = 48 };

    [Theory]
    [InlineData(32, 100_000, "width: 100000 pixels is larger than the 4096 this tool accepts")]
    [InlineData(2147483632, 2147483632, "height: 2147483632 pixels is larger than the 4096 this tool accepts")]
    [InlineData(int.MaxValue, 48, "height: 2147483647 pixels is larger than the 4096 this tool accepts")]
    public void ASideBeyondTheLimitIsRefused(int height, int width, string expected)
    {
        var e = Assert.Throws<CogVideoXException>(() => GenerationRules.Check(Small with { Height = height, Width = width }));
        Assert.Equal(GenerationRules.UsageExitCode, e.ExitCode);
        Assert.StartsWith(expected, e.Message);
        Assert.EndsWith("use at most 4096.", e.Message);
    }

    [Fact]
    public void AVideoOfTooManyPixelsIsRefusedWithTheProduct()
    {
        var e = Assert.Throws<CogVideoXException>(() => GenerationRules.Check(Small with { Frames = 49, Height = 4096, Width = 4096 }));
        Assert.Equal(GenerationRules.UsageExitCode, e.ExitCode);
        Assert.StartsWith("frames × height × width = 49 × 4096 × 4096 = 822,083,584 pixels is more than one video may have here (268,435,456, " +
            "16× the 49 × 480 × 720 the models were trained on)", e.Message);
        // A frame count near int's range is a product that would overflow in 32 bits.
        e = Assert.Throws<CogVideoXException>(() => GenerationRules.Check(Small with { Frames = 2_000_000_001, Height = 4096, Width = 4096 }));
        Assert.Contains("= 33,554,432,016,777,216 pixels", e.Message);
        // The trained size and the largest side at a short length pass.
        Assert.Empty(GenerationRules.Check(Small with { Frames = 49, Height = 480, Width = 720 }));
        GenerationRules.Check(Small with { Frames = 9, Height = 4096, Width = 4096 });
    }

    [Fact]
    public void TheCliRefusesAHugeWidthBeforeLoadingAnything()
    {
        using var dir = new TempDir();
        var stderr = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(["generate", "--model", Fixtures.Path2b, "--prompt", "a cat", "--frames", "9", "--height", "32",
            "--width", "100000", "--steps", "2", "--device", "cpu", "--output", dir.File("v.mp4")], new StringWriter(), stderr);
        Assert.Equal(2, code);
        Assert.StartsWith("error: width: 100000 pixels is larger than the 4096 this tool accepts", stderr.ToString());
        Assert.DoesNotContain("loading", stderr.ToString());
    }

    [Fact]
    public void APromptFileThatIsNotUtf8IsRefusedWithTheByte()
    {
        using var dir = new TempFolder();
        var path = dir.Write("prompts/latin1.txt", [.. "a caf"u8, 0xE9, .. " by the sea"u8]);
        var e = Assert.Throws<CogVideoXException>(() => PromptFiles.Load("latin1", [Path.Combine(dir.Path, "prompts")]));
        Assert.Equal(2, e.ExitCode);
        Assert.Equal($"{path}: not valid UTF-8 text (byte 0xE9 at offset 5); prompt files are read as UTF-8: save the file as UTF-8 " +
            "(or convert it, e.g. iconv -f latin1 -t utf-8), or give the prompt with --prompt TEXT", e.Message);
        // Valid UTF-8, with or without a byte-order mark, still reads.
        dir.Write("prompts/utf8.txt", [0xEF, 0xBB, 0xBF, .. "a café"u8]);
        Assert.Equal("a café", PromptFiles.Load("utf8", [Path.Combine(dir.Path, "prompts")]).Text);
    }
}
