using CogVideoX.Models.Text;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Models;

/// <summary>
/// The parameter lists the VAE decoder and the T5 encoder describe from their configs (used for memory estimates
/// and random-weight benchmark folders) are exactly what the checkpoints hold.
/// </summary>
public class ParameterShapeTests
{
    [Theory]
    [InlineData("pipeline_2b_style")]
    [InlineData("pipeline_5b_style")]
    public void TheVaeDecoderListIsTheCheckpointsDecoderTensors(string style)
    {
        var folder = Fixtures.GoldenFile(style, "vae");
        using var checkpoint = Checkpoint.Open(folder);
        var expected = checkpoint.Names.Where(n => n.StartsWith("decoder.", StringComparison.Ordinal) || n.StartsWith("post_quant_conv.", StringComparison.Ordinal))
            .ToDictionary(n => n, n => checkpoint.Entry(n).Shape);
        var described = CogVideoXVae.DecoderParameterShapes(VaeConfig.Load(Path.Combine(folder, "config.json")));
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), described.Select(d => d.Name).Order(StringComparer.Ordinal));
        foreach (var (name, shape) in described) Assert.Equal(expected[name], shape);
    }

    [Theory]
    [InlineData("pipeline_2b_style")]
    [InlineData("pipeline_5b_style")]
    public void TheT5ListIsTheCheckpoint(string style)
    {
        var folder = Fixtures.GoldenFile(style, "text_encoder");
        using var checkpoint = Checkpoint.Open(folder);
        var described = T5Encoder.ParameterShapes(T5Config.Load(Path.Combine(folder, "config.json")));
        Assert.Equal(checkpoint.Names.Order(StringComparer.Ordinal), described.Select(d => d.Name).Order(StringComparer.Ordinal));
        foreach (var (name, shape) in described) Assert.Equal(checkpoint.Entry(name).Shape, shape);
    }

    [Fact]
    public void TheFullSizeT5XxlEncoderHas4Point76BillionParameters()
    {
        var config = T5Config.Load(Fixtures.GoldenFile("real_configs", "CogVideoX-2b", "text_encoder", "config.json"));
        long parameters = T5Encoder.ParameterShapes(config).Sum(p => p.Shape.Aggregate(1L, (a, b) => a * b));
        Assert.InRange(parameters, 4.76e9, 4.77e9);
    }
}
