using static CogVideoX.Tests.CliRun;

namespace CogVideoX.Tests.Cli;

/// <summary>`bench` stages on the CPU with the tiny fixture models (the full-size runs need a GPU), and its errors.</summary>
public class BenchCommandTests
{
    private static readonly string[] Tiny = TinyBench();

    [Fact]
    public void StagesRunOnTheFixtureModelsAndPrintTheirTimes()
    {
        var (code, o, err) = Run(["bench", "all", "--model-config", Fixtures.Path5b, .. Tiny]);
        Assert.True(code == 0, err);
        Assert.Contains("device: cpu", o);
        Assert.Contains("model: pipeline_5b_style", o);
        Assert.Contains("BF16", o);
        foreach (var stage in new[] { "transformer ", "vae ", "encode ", "t5 " })
            Assert.Contains(o.Split('\n'), line => line.StartsWith(stage, StringComparison.Ordinal) && line.Contains(" s   peak"));
    }

    [Fact]
    public void TheFastModesStepSaysHowFarItsOutputIsFromTheExactStep()
    {
        // FP8-only projections cannot run exact linears: the exact step is a second model from the same seed, so the
        // error is the fast modes' alone (not FP8 against FP8).
        var (code, o, err) = Run(["bench", "transformer", "--model-config", Fixtures.Path2b, "--linear", "fp8", "--attention", "sage8", .. Tiny]);
        Assert.True(code == 0, err);
        var line = (o + err).Split('\n').Single(l => l.Contains("fp8 linears + 8-bit attention: relative error of the step's output against the exact step", StringComparison.Ordinal));
        double error = double.Parse(line.Split(' ').Last(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(error, 1e-6, 0.2);
        Assert.Contains("; output relative error ", o);
    }

    [Fact]
    public void TheImageToVideoStepRunsOnTheTinyI2vModel()
    {
        // The full-size stage defaults to real_configs/CogVideoX-5b-I2V (a GPU's work); the tiny model has its layout.
        var (code, o, err) = Run(["bench", "transformer-i2v", "--model-config", CogVideoX.Tests.Pipeline.InputPipelineTests.I2vModel, .. Tiny]);
        Assert.True(code == 0, err);
        Assert.Contains("model: pipeline_5b_i2v_style", o);
        Assert.Contains(o.Split('\n'), line => line.StartsWith("transformer ", StringComparison.Ordinal) && line.Contains(" s   peak"));
    }

    [Fact]
    public void EncodeRunsWholeAndTiledWhereTheTilesFit()
    {
        // The tiny config's default tiles are 16×24 pixels every 13×19: at 32×48 the last row would be 6 pixels high.
        var (code, o, err) = Run(["bench", "encode", "--model-config", Fixtures.Path2b, .. Tiny]);
        Assert.True(code == 0, err);
        Assert.Contains(o.Split('\n'), line => line.StartsWith("encode ", StringComparison.Ordinal) && line.Contains("9 frames 32×48 → 3 latent frames"));
        Assert.Contains("tiled encode skipped", o);
        (code, o, err) = Run(["bench", "encode", "--model-config", Fixtures.Path2b, "--device", "cpu", "--frames", "9", "--height", "64", "--width", "48",
            "--repeats", "1", "--warmup", "0"]);
        Assert.True(code == 0, err);
        Assert.Contains(o.Split('\n'), line => line.StartsWith("encode-tiled ", StringComparison.Ordinal) && line.Contains("tiles of 16×24 pixels"));
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
    [InlineData("--model-config", "7b", "--model-config '7b': use 2b, 5b, 5b-i2v, 1.5, 1.5-i2v, or a folder")]
    [InlineData("--frames", "10", "--frames 10: CogVideoX takes 4k + 1 frames")]
    [InlineData("--height", "100", "both must be positive multiples of 16")]
    [InlineData("--dtype", "f8", "--dtype 'f8': use f16, bf16, f32 or auto")]
    [InlineData("--repeats", "0", "--repeats 0 --warmup 1: at least 1 timed repetition")]
    [InlineData("--warmup", "-1", "--repeats 3 --warmup -1: at least 1 timed repetition and 0 or more")]
    public void BadArgumentsAreClearErrors(string option, string value, string message)
    {
        var args = new List<string> { "bench", "transformer", "--device", "cpu", option, value };
        if (option != "--model-config") args.AddRange(["--model-config", Fixtures.Path2b]);
        var (code, _, err) = Run([.. args]);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.DoesNotContain("   at ", err);
    }

    [Theory]
    [InlineData("--steps")]
    [InlineData("--guidance")]
    public void StageBenchesDoNotTakeThePipelinesOptions(string option)
    {
        // One step of one stage has no steps or guidance to set: only `bench pipeline` takes them.
        var (code, _, err) = Run("bench", "transformer", "--device", "cpu", "--model-config", Fixtures.Path2b, option, "5");
        Assert.Equal(2, code);
        Assert.Contains(option, err);
    }

    [Fact]
    public void GoldenParityNeedsTheFixtureFolder()
    {
        var (code, _, err) = Run("selftest", "--golden", "--device", "cpu", "--fixtures", "/nonexistent/fixtures");
        Assert.NotEqual(0, code);
        Assert.Contains("not a golden fixture folder", err);
    }
}
