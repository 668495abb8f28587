using CogVideoX.Diffusion;
using CogVideoX.Engine;

namespace CogVideoX.Tests.Diffusion;

/// <summary>Classifier-free guidance and the dynamic-CFG schedules (parity itself is checked by the golden runs).</summary>
public class GuidanceTests
{
    [Theory]
    [InlineData(6.0, true)]
    [InlineData(1.0, false)]
    [InlineData(0.5, false)]
    [InlineData(1.0000001, true)]
    public void CfgRunsOnlyAboveOne(double scale, bool enabled) => Assert.Equal(enabled, Guidance.IsEnabled(scale));

    [Fact]
    public void CombineIsUncondPlusScaledDifferenceInFloat32()
    {
        float[] uncond = [1f, -2f, 0.1f, 3.5f];
        float[] cond = [2f, -2f, 0.3f, -1f];
        var got = new float[4];
        Guidance.Combine(uncond, cond, 6.0, got);
        for (int i = 0; i < 4; i++) Assert.Equal(uncond[i] + 6f * (cond[i] - uncond[i]), got[i]);

        // Batch-2 layout: [uncond; cond].
        var batched = uncond.Concat(cond).ToArray();
        var fromBatch = new float[4];
        Guidance.Apply(batched, 6.0, fromBatch);
        Assert.Equal(got, fromBatch);

        // Scale 1 gives back cond up to rounding; the combination still runs (diffusers applies it whenever CFG is on).
        Guidance.Combine(uncond, cond, 1.0, got);
        Compare.AssertAbs(cond, got, 1e-7, "scale 1");
    }

    [Fact]
    public void StepIndexScheduleRisesFromOneToNearlyOnePlusScale()
    {
        const double g = 6.0;
        const int n = 50;
        var scales = Enumerable.Range(0, n).Select(i => Guidance.DynamicScale(g, i, timestep: 999 - 20 * i, n, DynamicCfgSchedule.StepIndex)).ToArray();
        Assert.Equal(1.0, scales[0]);
        Assert.True(scales.Zip(scales.Skip(1)).All(p => p.Second >= p.First), "non-decreasing");
        Assert.True(scales[25] > scales[0] && scales[^1] > scales[25]);
        Assert.InRange(scales[^1], 1 + 0.95 * g, 1 + g);
        // The timestep does not enter this schedule.
        Assert.Equal(scales[10], Guidance.DynamicScale(g, 10, timestep: 0, n, DynamicCfgSchedule.StepIndex));
    }

    [Fact]
    public void ParityScheduleUsesTheTimestepValue()
    {
        const double g = 6.0;
        // diffusers: 1 + g·(1 − cos(π·((N − t)/N)⁵))/2 with t the timestep; here N = 4 and t = 999, so (N − t)/N = −248.75.
        double expected = 1 + g * ((1 - Math.Cos(Math.PI * Math.Pow(-248.75, 5.0))) / 2);
        Assert.Equal(expected, Guidance.DynamicScale(g, stepIndex: 0, timestep: 999, numInferenceSteps: 4));
        // The step index does not enter it; the scale stays within [1, 1 + g].
        Assert.Equal(expected, Guidance.DynamicScale(g, stepIndex: 3, timestep: 999, numInferenceSteps: 4));
        for (int t = 0; t < 1000; t += 7)
            Assert.InRange(Guidance.DynamicScale(g, 0, t, 50), 1.0, 1 + g);
        // Without dynamic CFG the scale is the user's.
        Assert.Equal(g, Guidance.ScaleAt(g, dynamic: false, 0, 999, 4));
    }

    [Fact]
    public void TensorApplyMatchesHostAndNeedsABatchOfTwo()
    {
        float[] data = [1f, 2f, 3f, -4f, 5f, 6f];
        using var batched = Tensor.FromArray(data, [2, 3]);
        using var guided = Guidance.Apply(batched, 7.5);
        Assert.Equal(new[] { 1, 3 }, guided.ShapeArray());
        var host = new float[3];
        Guidance.Apply(data, 7.5, host);
        Assert.Equal(host, guided.ToFloatArray());

        using var three = Tensor.FromArray(new float[9], [3, 3]);
        Assert.Throws<ArgumentException>(() => Guidance.Apply(three, 6.0));
        Assert.Throws<ArgumentException>(() => Guidance.Apply(new float[5], 6.0, new float[2]));
        Assert.Throws<ArgumentException>(() => Guidance.Combine(new float[2], new float[3], 6.0, new float[2]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Guidance.DynamicScale(6.0, 0, 999, 0));
    }
}
