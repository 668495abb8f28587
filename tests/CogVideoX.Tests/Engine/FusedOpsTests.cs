using CogVideoX.Engine;
using CogVideoX.Engine.Testing;

namespace CogVideoX.Tests.Engine;

/// <summary>
/// The fused ops on the CPU reference against the unfused sequence they replace, in float32 (the fused forms round
/// fewer times, so the two agree to a few ulps), and their argument errors.
/// </summary>
public class FusedOpsTests
{
    private static OpInputs Inputs(int seed = 3) => new(CpuBackend.Instance, DType.F32, seed);

    private static void AssertClose(Tensor expected, Tensor actual, double tolerance = 1e-6)
    {
        Assert.Equal(expected.ShapeArray(), actual.ShapeArray());
        var (_, normalised, nonFinite) = OpCatalogue.Errors(actual.ToFloatArray(), expected.ToFloatArray());
        Assert.Equal(0, nonFinite);
        Assert.True(normalised <= tolerance, $"normalised error {normalised:E2}");
    }

    [Fact]
    public void ModulatedLayerNormIsLayerNormThenScaleAndShift()
    {
        var c = Inputs();
        using var x = c.Uniform([2, 7, 40], -2f, 3f);
        using var g = c.Rand(40);
        using var b = c.Rand(40);
        using var scale = c.Rand(2, 1, 40);
        using var shift = c.Rand(2, 1, 40);
        using var normed = x.LayerNorm(g, b, 1e-5f);
        using var onePlus = scale.Affine(1f, 1f);
        using var scaled = normed.Mul(onePlus);
        using var expected = scaled.Add(shift);
        using var actual = x.ModulatedLayerNorm(g, b, scale, shift, 1e-5f);
        AssertClose(expected, actual);
    }

    [Fact]
    public void ModulatedLayerNormWritesOnlyItsRowsOfTheOutputView()
    {
        var c = Inputs();
        using var x = c.Rand(2, 9, 16);
        using var y = Tensor.Full(CpuBackend.Instance, DType.F32, 7, 2, 9, 16);
        using var scale = c.Rand(2, 1, 16);
        using var shift = c.Rand(2, 1, 16);
        using var part = x.Narrow(1, 2, 5);
        using var target = y.Narrow(1, 2, 5);
        part.ModulatedLayerNormInto(null, null, scale, shift, 1e-6f, target);
        using var expected = part.ModulatedLayerNorm(null, null, scale, shift, 1e-6f);
        AssertClose(expected, target, 0);
        using var before = y.Narrow(1, 0, 2);
        Assert.All(before.ToFloatArray(), v => Assert.Equal(7f, v));
    }

    [Fact]
    public void AddMulIsAGatedResidualInPlace()
    {
        var c = Inputs();
        using var x = c.Rand(2, 5, 24);
        using var h = c.Rand(2, 5, 24);
        using var gate = c.Rand(2, 1, 24);
        using var product = h.Mul(gate);
        using var expected = x.Add(product);
        x.AddMulInto(h, gate, x);
        AssertClose(expected, x, 0);
    }

    [Fact]
    public void SpatialGroupNormIsGroupNormTimesUpsampledScalePlusShift()
    {
        var c = Inputs();
        using var x = c.Uniform([1, 8, 2, 6, 8], -2f, 2f);
        using var g = c.Rand(8);
        using var b = c.Rand(8);
        using var scale = c.Rand(1, 8, 2, 3, 2);
        using var shift = c.Rand(1, 8, 2, 3, 2);
        using var normed = x.GroupNorm(4, g, b, 1e-6f);
        using var fullScale = scale.UpsampleNearest(2, 4);
        using var fullShift = shift.UpsampleNearest(2, 4);
        using var scaled = normed.Mul(fullScale);
        using var shifted = scaled.Add(fullShift);
        using var expected = shifted.Silu();
        using var actual = x.SpatialGroupNorm(4, g, b, scale, shift, 1e-6f, Activation.Silu);
        AssertClose(expected, actual);
    }

    [Fact]
    public void UpsampleNearestRepeatsEachValue()
    {
        using var x = Tensor.FromArray([1f, 2f, 3f, 4f], [1, 2, 2]);
        using var y = x.UpsampleNearest(1, 2, 3);
        Assert.Equal([1, 4, 6], y.ShapeArray());
        Assert.Equal(
            new float[] { 1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4 },
            y.ToFloatArray());
    }

    [Fact]
    public void BadModulationShapesAreClearErrors()
    {
        var c = Inputs();
        using var x = c.Rand(2, 5, 8);
        using var wrong = c.Rand(3, 1, 8);
        using var shift = c.Rand(2, 1, 8);
        var e = Assert.Throws<ArgumentException>(() => x.ModulatedLayerNorm(null, null, wrong, shift, 1e-5f));
        Assert.Contains("scale [3, 1, 8] does not broadcast to [2, 5, 8]", e.Message);
        e = Assert.Throws<ArgumentException>(() => x.AddMul(shift, wrong));
        Assert.Contains("gate [3, 1, 8] does not broadcast", e.Message);
        using var v = c.Rand(1, 4, 2, 6, 8);
        using var m = c.Rand(1, 4, 2, 4, 8);
        e = Assert.Throws<ArgumentException>(() => v.SpatialGroupNorm(2, null, null, m, m, 1e-6f));
        Assert.Contains("with h, w dividing 6 × 8", e.Message);
        e = Assert.Throws<ArgumentException>(() => v.UpsampleNearest(2, 0));
        Assert.Contains("factors must be ≥ 1", e.Message);
    }
}
