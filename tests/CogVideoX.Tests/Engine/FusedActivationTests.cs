using CogVideoX.Engine;

namespace CogVideoX.Tests.Engine;

public class FusedActivationTests
{
    /// <summary>An activation fused into Linear runs in place on the GEMM output; it must equal Linear then the op.</summary>
    [Theory]
    [InlineData(Activation.GeluTanh)]
    [InlineData(Activation.Gelu)]
    [InlineData(Activation.Silu)]
    [InlineData(Activation.Relu)]
    public void FusedLinearActivationEqualsSeparateOp(Activation activation)
    {
        var rng = new Random(7);
        var xs = Enumerable.Range(0, 5 * 300).Select(_ => (float)(rng.NextDouble() * 6 - 3)).ToArray();
        var ws = Enumerable.Range(0, 700 * 300).Select(_ => (float)(rng.NextDouble() - 0.5) * 0.2f).ToArray();
        using var x = Tensor.FromArray(xs, new[] { 5, 300 });
        using var w = Tensor.FromArray(ws, new[] { 700, 300 });
        using var fused = x.Linear(w, null, activation);
        using var plain = x.Linear(w);
        using var separate = plain.Apply(activation);
        Assert.Equal(separate.ToFloatArray(), fused.ToFloatArray());
    }
}
