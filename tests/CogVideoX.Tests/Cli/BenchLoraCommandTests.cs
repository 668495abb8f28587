using CogVideoX.Tests.Models;
using static CogVideoX.Tests.CliRun;

namespace CogVideoX.Tests.Cli;

/// <summary>`bench lora` on the CPU with the tiny fixture model (the figures that matter come from a GPU), and its errors.</summary>
public class BenchLoraCommandTests
{
    private static readonly string[] Tiny = TinyBench();

    [Fact]
    public void MeasuresLoadAndStepWithNoneOneAndTwoAdaptersAndTheUnfusedWork()
    {
        var (code, o, err) = Run(["bench", "lora", "--model-config", Fixtures.Path2b, "--lora-rank", "4", "--lora-targets", "all", .. Tiny]);
        Assert.True(code == 0, err);
        var lines = o.Split('\n');
        Assert.Equal(3, lines.Count(l => l.StartsWith("load ", StringComparison.Ordinal)));
        Assert.Equal(3, lines.Count(l => l.StartsWith("step ", StringComparison.Ordinal)));
        Assert.Equal(2, lines.Count(l => l.StartsWith("unfused ", StringComparison.Ordinal)));
        Assert.Contains(lines, l => l.StartsWith("step ", StringComparison.Ordinal) && l.EndsWith("2 LoRAs fused", StringComparison.Ordinal));
        Assert.Contains("16 layers, rank 4", o); // all 8 linears of each of the 2 blocks

        // A real file takes the place of the first random adapter.
        var file = Path.Combine(LoraTests.LoraFixtures, "2b_b_alpha.safetensors");
        (code, o, err) = Run(["bench", "lora", "--model-config", Fixtures.Path2b, "--lora", file + ":0.5", "--lora-rank", "2", .. Tiny]);
        Assert.True(code == 0, err);
        Assert.Contains("2b_b_alpha.safetensors (11 layers, rank 2)", o);
    }

    [Theory]
    [InlineData("--lora-targets", "mlp", "--lora-targets mlp: use attn")]
    [InlineData("--lora-rank", "0", "--lora-rank 0: the rank must be at least 1")]
    [InlineData("--lora", "x.safetensors:big", "is not a number")]
    public void BadArgumentsAreClearErrors(string option, string value, string message)
    {
        var (code, _, err) = Run(["bench", "lora", "--model-config", Fixtures.Path2b, option, value, .. Tiny]);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
    }
}
