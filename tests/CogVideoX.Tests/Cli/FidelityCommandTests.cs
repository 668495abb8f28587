namespace CogVideoX.Tests.Cli;

/// <summary><c>cogvideox fidelity</c>: the fast modes against the exact path on golden runs, as a Markdown table.</summary>
public class FidelityCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(args, stdout, stderr, gpu: GenerateCommandTests.NoGpu);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void TheTableHasEveryRunInEveryModeWithPsnrSsimAndTimes()
    {
        var (code, table, stderr) = Run("fidelity", Fixtures.Path2b, "--steps", "6", "--mode", "fbcache:1000", "--mode", "teacache:0.1:2");
        Assert.True(code == 0, stderr);
        var lines = table.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("| run | steps | mode | reused steps | PSNR (dB) | SSIM | max abs | denoise (s) | exact denoise (s) |", lines[0]);
        // 3 golden runs at their own steps and at 6, 2 modes each.
        Assert.Equal(2 + 3 * 2 * 2, lines.Length);
        Assert.Contains("| pipeline_2b_style/panda_s42 | 6 | fbcache 1000 | 4: 1,2,3,4 |", table);
        Assert.Contains("| pipeline_2b_style/panda_s42 | 6 | teacache 0.1, exact 2 | 2: 2,3 |", table);
        // cat_neg_s999 has 2 steps: the first and last are exact, nothing is reused, the frames are the exact ones.
        Assert.Contains("| pipeline_2b_style/cat_neg_s999 | 2 | fbcache 1000 | none | identical | 1.0000 | 0.0000 |", table);
        Assert.Contains("panda_s42, 6 steps: exact and 2 modes", stderr);
    }

    [Theory]
    [InlineData(new[] { "--mode", "warp" }, "mode \"warp\": unknown name 'warp'; MODE is teacache, fbcache, sage8 or fp8, or several joined by +")]
    [InlineData(new[] { "--mode", "teacache:fast" }, "mode \"teacache:fast\" is not understood; write MODE[:THRESHOLD[:EXACT_STEPS]]")]
    [InlineData(new[] { "--steps", "0" }, "steps: 0 is not a valid number of denoising steps")]
    public void BadModesAndStepsAreRefused(string[] flags, string message)
    {
        var (code, stdout, stderr) = Run(["fidelity", Fixtures.Path2b, .. flags]);
        Assert.Equal(2, code);
        Assert.Contains(message, stderr);
        Assert.Equal("", stdout);
    }

    [Fact]
    public void AFolderWithoutGoldenRunsIsRefused()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run("fidelity", dir.Path);
        Assert.Equal(2, code);
        Assert.Contains("runs.json not found: fidelity reads the golden runs of a fixture model folder", stderr);
    }
}
