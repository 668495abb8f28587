namespace CogVideoX.Tests.Cli;

/// <summary>`bench` stages on the CPU with the tiny fixture models (the full-size runs need a GPU), and its errors.</summary>
public class BenchCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    private static readonly string[] Tiny = ["--device", "cpu", "--frames", "9", "--height", "32", "--width", "48", "--repeats", "1", "--warmup", "0"];

    [Fact]
    public void StagesRunOnTheFixtureModelsAndPrintTheirTimes()
    {
        var (code, o, err) = Run(["bench", "all", "--model-config", Fixtures.Path5b, .. Tiny]);
        Assert.True(code == 0, err);
        Assert.Contains("device: cpu", o);
        Assert.Contains("model: pipeline_5b_style", o);
        Assert.Contains("BF16", o);
        foreach (var stage in new[] { "transformer ", "vae ", "t5 " })
            Assert.Contains(o.Split('\n'), line => line.StartsWith(stage, StringComparison.Ordinal) && line.Contains(" s   peak"));
    }

    [Fact]
    public void PipelineRunsTheRealPipelineInTheModesAsked()
    {
        // The stage options the other benchmarks take work here too (--model-config, --dtype auto); the memory modes
        // and the comparison are BenchPipelineCommandTests'.
        var (code, o, err) = Run("bench", "pipeline", "--model-config", Fixtures.Path2b, "--steps", "2", "--device", "cpu", "--frames", "9",
            "--height", "32", "--width", "48", "--dtype", "auto", "--memory", "full", "--warmup-steps", "0");
        Assert.True(code == 0, err);
        Assert.Contains("F32 on cpu", o);
        Assert.Contains("video 1/1: loads", o);
        Assert.Contains(o.Split('\n'), line => line.TrimStart().StartsWith("full ", StringComparison.Ordinal) && line.Contains("(reference)"));
    }

    [Theory]
    [InlineData("--model-config", "7b", "--model-config '7b': use 2b, 5b, 1.5, 1.5-i2v, or a folder")]
    [InlineData("--frames", "10", "--frames 10: CogVideoX takes 4k + 1 frames")]
    [InlineData("--height", "100", "both must be positive multiples of 16")]
    [InlineData("--dtype", "f8", "--dtype 'f8': use f16, bf16, f32 or auto")]
    [InlineData("--repeats", "0", "--repeats and --steps must be at least 1")]
    public void BadArgumentsAreClearErrors(string option, string value, string message)
    {
        var args = new List<string> { "bench", "transformer", "--device", "cpu", option, value };
        if (option != "--model-config") args.AddRange(["--model-config", Fixtures.Path2b]);
        var (code, _, err) = Run([.. args]);
        Assert.NotEqual(0, code);
        Assert.Contains(message, err);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void GoldenParityNeedsTheFixtureFolder()
    {
        var (code, _, err) = Run("selftest", "--golden", "--device", "cpu", "--fixtures", "/nonexistent/fixtures");
        Assert.NotEqual(0, code);
        Assert.Contains("not a golden fixture folder", err);
    }
}
