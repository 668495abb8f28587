using CogVideoX.Engine;
using CogVideoX.Models.Transformer;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Models;

public class RotaryTests
{
    private readonly ITestOutputHelper _output;

    public RotaryTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [InlineData("panda_dpm_dyncfg")]
    [InlineData("whale_dpm_frames13")]
    public void RotaryTablesEqualThePipelines(string run)
    {
        var tensors = Fixtures.LoadAll(Fixtures.GoldenFile("pipeline_5b_style", "runs", run + ".safetensors"));
        try
        {
            var config = TransformerConfig.Load(Path.Combine(Fixtures.GoldenFile("pipeline_5b_style", "transformer"), "config.json"));
            var latents = tensors["initial_latents"];
            using var tables = RotaryTables.Build(config, latents.Dim(1), latents.Dim(3), latents.Dim(4), CpuBackend.Instance, DType.F32);
            var expectedCos = tensors["rotary_cos"];
            var expectedSin = tensors["rotary_sin"];
            Assert.Equal(expectedCos.ShapeArray(), tables.Cos.ShapeArray());
            double cosErr = Compare.MaxAbs(expectedCos.ToFloatArray(), tables.Cos.ToFloatArray());
            double sinErr = Compare.MaxAbs(expectedSin.ToFloatArray(), tables.Sin.ToFloatArray());
            int cosOff = UlpsOff(expectedCos.ToFloatArray(), tables.Cos.ToFloatArray());
            int sinOff = UlpsOff(expectedSin.ToFloatArray(), tables.Sin.ToFloatArray());
            _output.WriteLine($"{run}: rotary cos max abs diff {cosErr:E3} ({cosOff} values 1 ulp off), sin {sinErr:E3} ({sinOff} values 1 ulp off) of {expectedCos.ElementCount}");
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Counts values that differ, asserting none differs by more than one float32 ulp: the arguments are the same
    /// float32 numbers, sin/cos are rounded once here and by torch's 1-ulp vectorised kernels there.
    /// </summary>
    private static int UlpsOff(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        int off = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] == actual[i]) continue;
            off++;
            float e = expected[i];
            Assert.True(actual[i] == MathF.BitIncrement(e) || actual[i] == MathF.BitDecrement(e),
                $"rotary value {i}: {actual[i]:R} vs {e:R} is more than one ulp off");
        }
        return off;
    }

    [Fact]
    public void CropRegionFollowsDiffusers()
    {
        // Values from diffusers' get_resize_crop_region_for_grid; Python's round() takes halves to even.
        Assert.Equal(((0, 0), (30, 45)), RotaryTables.CropRegion(30, 45, 30, 45));
        Assert.Equal(((0, 0), (2, 3)), RotaryTables.CropRegion(3, 4, 2, 3));
        Assert.Equal(((0, 0), (30, 44)), RotaryTables.CropRegion(15, 22, 30, 45));
        Assert.Equal(((10, 0), (21, 45)), RotaryTables.CropRegion(10, 40, 30, 45));
        Assert.Equal(((8, 0), (21, 45)), RotaryTables.CropRegion(13, 45, 30, 45));
        Assert.Equal(((0, 18), (30, 26)), RotaryTables.CropRegion(40, 10, 30, 45));
    }

    [Fact]
    public void LinspaceCountsFromBothEndsAsTorch()
    {
        Assert.Equal(new[] { 0f, 0.75f, 1.5f, 2.25f }, RotaryTables.Linspace(0f, 2.25f, 4));
        Assert.Equal(new[] { 5f }, RotaryTables.Linspace(5f, 9f, 1));
        var v = RotaryTables.Linspace(0.1f, 1.3f, 7);
        Assert.Equal(0.1f, v[0]);
        Assert.Equal(1.3f, v[6]);
    }
}
