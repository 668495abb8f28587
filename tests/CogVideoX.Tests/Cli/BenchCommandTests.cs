namespace CogVideoX.Tests.Cli;

/// <summary>`bench gemm` runs and reports; bad sizes get a clear message (the timings themselves are not tested).</summary>
public class BenchCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void GemmPrintsTheCpuAndGflops()
    {
        var (code, output, errors) = Run("bench", "gemm", "--m", "17", "--n", "33", "--k", "65", "--repeat", "3");
        Assert.Equal("", errors);
        Assert.Equal(0, code);
        Assert.Contains("cpu: ", output);
        Assert.Contains("GEMM kernel", output);
        Assert.Matches(@"gemm f32 m=17 n=33 k=65: median [0-9.]+ ms, [0-9.]+ GFLOP/s \(best [0-9.]+, 3 runs after warm-up\)", output);
    }

    [Theory]
    [InlineData("--m", "0")]
    [InlineData("--n", "-4")]
    [InlineData("--k", "0")]
    [InlineData("--repeat", "0")]
    public void GemmRejectsNonPositiveSizes(string option, string value)
    {
        var (code, output, errors) = Run("bench", "gemm", option, value);
        Assert.Equal(1, code);
        Assert.Equal("", output);
        Assert.Equal($"error: bench gemm: {option} must be a positive integer, got {value}.", errors.Trim());
    }

    [Fact]
    public void GemmRejectsSizesTooLargeForOneTensor()
    {
        var (code, _, errors) = Run("bench", "gemm", "--m", "100000", "--k", "100000");
        Assert.Equal(1, code);
        Assert.Contains("use smaller sizes", errors);
    }

    [Fact]
    public void BenchListsItsSubcommandsInHelp()
    {
        var (code, output, _) = Run("bench", "--help");
        Assert.Equal(0, code);
        Assert.Contains("gemm", output);
    }
}
