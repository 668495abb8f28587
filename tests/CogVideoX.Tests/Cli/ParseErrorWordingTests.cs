using CogVideoX.Lab;

namespace CogVideoX.Tests.Cli;

/// <summary>
/// The parser's own messages in the user's terms: an option given twice, a value of the wrong type, and the value
/// of an unknown option (not a second, stray error of its own). Found by running the README's commands.
/// </summary>
public class ParseErrorWordingTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(args, stdout, stderr, null, () => GpuCheck.Missing("no CUDA driver (test)"));
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Theory]
    [InlineData(new[] { "generate", "--prompt-file", "panda_guitar", "--steps", "abc" }, "error: --steps takes a whole number, not 'abc' (e.g. --steps 50)")]
    [InlineData(new[] { "generate", "--prompt-file", "panda_guitar", "--seed", "1.5" }, "error: --seed takes a whole number, not '1.5' (e.g. --seed 42)")]
    [InlineData(new[] { "generate", "--prompt-file", "panda_guitar", "--guidance", "six" }, "error: --guidance takes a number, not 'six' (e.g. --guidance 6)")]
    [InlineData(new[] { "generate", "--prompt-file", "panda_guitar", "--strength", "x" }, "error: --strength takes a number, not 'x' (e.g. --strength 0.5)")]
    [InlineData(new[] { "generate", "--prompt-file", "panda_guitar", "--frames", "9", "--frames", "13" }, "error: --frames is given 2 times ('9', '13'); give it once")]
    [InlineData(new[] { "generate", "--model", "2b", "--prompt", "x", "--model", "5b" }, "error: --model is given 2 times ('2b', '5b'); give it once")]
    [InlineData(new[] { "experiment", "run", "x.yaml", "--stale-after-minutes", "soon" }, "error: --stale-after-minutes takes a number, not 'soon' (e.g. --stale-after-minutes 10)")]
    public void AWrongValueOrARepeatedOptionIsSaidInTheUsersTerms(string[] args, string expected)
    {
        var (code, stdout, stderr) = Run(args);
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Contains(expected, stderr);
        Assert.DoesNotContain("System.", stderr);
        Assert.DoesNotContain("expects a single argument", stderr);
        Assert.Contains("--help` lists every option", stderr);
    }

    [Fact]
    public void TheValueOfAnUnknownOptionIsNotASecondError()
    {
        var (code, _, stderr) = Run("generate", "--prompt-file", "panda_guitar", "--num_inference_steps", "10");
        Assert.Equal(2, code);
        Assert.Contains("has no option --num_inference_steps; did you mean --steps?", stderr);
        Assert.DoesNotContain("'10'", stderr);
        // A stray argument that follows a known option is still named.
        (code, _, stderr) = Run("generate", "--prompt-file", "panda_guitar", "--steps", "10", "11");
        Assert.Equal(2, code);
        Assert.Contains("takes no argument '11' here", stderr);
    }

    [Fact]
    public void TheDeviceReasonQuotesTheFirstSentenceWholeNotCutMidWord()
    {
        const string driver = "CUDA driver (libcuda.so.1) was not found; the CUDA backend needs it. To fix: install the NVIDIA driver " +
            "(nvidia-smi must work); in a container, run it with the GPU exposed (--gpus all). Looked for libcuda.so.1, libcuda.so in: the system library path.";
        Assert.Equal("CUDA driver (libcuda.so.1) was not found; the CUDA backend needs it", DeviceSelection.FirstSentence(driver));
        Assert.Equal("no device", DeviceSelection.FirstSentence("no device.\nmore"));
        var longOne = DeviceSelection.FirstSentence(string.Join(' ', Enumerable.Repeat("word", 60)));
        Assert.EndsWith("word …", longOne);
        Assert.True(longOne.Length <= 162, longOne);
    }
}
