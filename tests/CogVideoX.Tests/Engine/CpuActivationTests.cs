using CogVideoX.Engine;

namespace CogVideoX.Tests.Engine;

/// <summary>
/// Activations against double-precision formulas, alone and fused into Linear and GroupNorm (which apply them in
/// place). The GPU selftest found both an erf error for |x| ≥ 0.5 and in-place SiLU/tanh-GELU overwriting their input.
/// </summary>
public class CpuActivationTests
{
    private static readonly float[] Points = [-4f, -3f, -2f, -1f, -0.6f, -0.3f, 0f, 0.2f, 0.5f, 0.8f, 1f, 1.5f, 2f, 3f, 4.5f];

    private static double Reference(Activation a, double x) => a switch
    {
        Activation.Gelu => 0.5 * x * (1 + Erf(x / Math.Sqrt(2))),
        Activation.GeluTanh => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
        Activation.Silu => x / (1 + Math.Exp(-x)),
        Activation.Relu => Math.Max(x, 0),
        _ => x,
    };

    /// <summary>erf by its Maclaurin series (|x| ≤ 3.2 here), accurate to double rounding.</summary>
    private static double Erf(double x)
    {
        double sum = 0, term = x;
        for (int n = 0; n < 200; n++)
        {
            sum += term / (2 * n + 1);
            term *= -x * x / (n + 1);
        }
        return 2 / Math.Sqrt(Math.PI) * sum;
    }

    [Theory]
    [InlineData(Activation.Gelu)]
    [InlineData(Activation.GeluTanh)]
    [InlineData(Activation.Silu)]
    [InlineData(Activation.Relu)]
    public void ActivationsMatchTheirFormulasAloneAndInPlace(Activation a)
    {
        using var x = Tensor.FromArray(Points, [Points.Length]);
        using var alone = x.Apply(a);
        // Linear with a 1x1 identity weight applies the activation in place on its output.
        using var x2 = x.Reshape(Points.Length, 1);
        using var one = Tensor.FromArray([1f], [1, 1]);
        using var fused = x2.Linear(one, null, a);
        var got = alone.ToFloatArray();
        var gotFused = fused.ToFloatArray();
        for (int i = 0; i < Points.Length; i++)
        {
            double want = Reference(a, Points[i]);
            Assert.True(Math.Abs(got[i] - want) < 2e-6, $"{a}({Points[i]}) = {got[i]}, expected {want}");
            Assert.True(Math.Abs(gotFused[i] - want) < 2e-6, $"linear+{a}({Points[i]}) = {gotFused[i]}, expected {want}");
        }
    }

    [Fact]
    public void GroupNormAppliesSiluToTheNormalisedValue()
    {
        using var x = Tensor.FromArray(Points, [1, 1, Points.Length]);
        using var y = x.GroupNorm(1, null, null, 0f, Activation.Silu);
        double mean = Points.Average(p => (double)p);
        double std = Math.Sqrt(Points.Average(p => (p - mean) * (p - mean)));
        var got = y.ToFloatArray();
        for (int i = 0; i < Points.Length; i++)
        {
            double want = Reference(Activation.Silu, (Points[i] - mean) / std);
            Assert.True(Math.Abs(got[i] - want) < 1e-5, $"silu(norm({Points[i]})) = {got[i]}, expected {want}");
        }
    }
}
