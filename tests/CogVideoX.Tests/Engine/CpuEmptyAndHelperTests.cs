using CogVideoX.Engine;
using static CogVideoX.Tests.Engine.OpTest;

namespace CogVideoX.Tests.Engine;

/// <summary>Empty tensors through every op that allows them, the thin Ops helpers, and host copies out of range.</summary>
public class CpuEmptyAndHelperTests
{
    private static Tensor Zeros(params int[] shape) => Tensor.Zeros(CpuBackend.Instance, DType.F32, shape);

    [Fact]
    public void EmptyTensorsGiveEmptyResultsOfTheRightShape()
    {
        // The scope releases the many inline temporaries below.
        using var scope = new TensorScope();
        using var x = Zeros(2, 0, 5);
        using var unary = x.Silu();
        using var affine = x.Affine(2, 1);
        using var clamp = x.Clamp(0, 1);
        using var other = Zeros(1, 1, 5);
        using var binary = x.Add(other);
        using var softmax = x.Softmax();
        using var layerNorm = x.LayerNorm(null, null, 1e-5f);
        using var rmsNorm = x.RmsNorm(null, 1e-6f);
        using var groupNorm = Zeros(0, 4, 3).GroupNorm(2, null, null, 1e-6f);
        using var contiguous = x.Transpose(0, 2).Contiguous();
        foreach (var t in new[] { unary, affine, clamp, binary, softmax, layerNorm, rmsNorm })
            Assert.Equal(new[] { 2, 0, 5 }, t.ShapeArray());
        Assert.Equal(new[] { 0, 4, 3 }, groupNorm.ShapeArray());
        Assert.Equal(new[] { 5, 0, 2 }, contiguous.ShapeArray());

        using var noQueries = Ops.Attention(Zeros(1, 2, 0, 8), Zeros(1, 2, 3, 8), Zeros(1, 2, 3, 8), null, 1f);
        Assert.Equal(new[] { 1, 2, 0, 8 }, noQueries.ShapeArray());
        using var rotary = Zeros(1, 2, 0, 4).Rotary(Zeros(0, 4), Zeros(0, 4));
        Assert.Equal(new[] { 1, 2, 0, 4 }, rotary.ShapeArray());
        using var table = Zeros(3, 4);
        using var ids = Tensor.FromArray(ReadOnlySpan<long>.Empty, [0]);
        using var rows = table.Embedding(ids);
        Assert.Equal(new[] { 0, 4 }, rows.ShapeArray());
        using var conv = Zeros(0, 2, 3, 3, 3).Conv3d(Zeros(4, 2, 1, 1, 1), null, new Conv3dParams(1, 1, 1, 0, 0, 0));
        Assert.Equal(new[] { 0, 4, 3, 3, 3 }, conv.ShapeArray());
        using var padded = x.Pad([(1, 1), (2, 0)], 3f);
        Assert.Equal(new[] { 4, 2, 5 }, padded.ShapeArray());
        Assert.All(padded.ToFloatArray(), v => Assert.Equal(3f, v));
    }

    [Fact]
    public void AttentionWithNoKeysIsZero()
    {
        using var scope = new TensorScope();
        // softmax over nothing weights nothing: the output is the empty sum, 0 (as torch's math attention gives).
        using var y = Ops.Attention(Zeros(1, 1, 3, 4), Zeros(1, 1, 0, 4), Zeros(1, 1, 0, 4), null, 1f);
        Assert.All(y.ToFloatArray(), v => Assert.Equal(0f, v));
    }

    [Theory]
    [InlineData(Activation.None)]
    [InlineData(Activation.Relu)]
    [InlineData(Activation.Silu)]
    [InlineData(Activation.Gelu)]
    [InlineData(Activation.GeluTanh)]
    public void ApplyMatchesTheActivation(Activation activation)
    {
        using var x = Make([3, 17], Layouts.Permuted, 5, -4, 4);
        using var y = x.Tensor.Apply(activation);
        var expected = x.Values.Select(v => Activate(activation, v)).ToArray();
        AssertClose(expected, y.ToFloatArray(), 1e-6, 2e-6, Describe("apply", activation));
    }

    [Fact]
    public void NamedHelpersRunTheirOps()
    {
        using var x = Make([2, 5], Layouts.Contiguous, 6, -2, 2);
        using var scaled = x.Tensor.Scale(3f);
        using var neg = x.Tensor.Neg();
        using var exp = x.Tensor.Exp();
        using var sin = x.Tensor.Sin();
        using var cos = x.Tensor.Cos();
        using var gelu = x.Tensor.Gelu();
        using var mean = x.Tensor.Mean();
        AssertClose(x.Values.Select(v => 3 * v).ToArray(), scaled.ToFloatArray(), 1e-6, 1e-6, "scale");
        AssertClose(x.Values.Select(v => -v).ToArray(), neg.ToFloatArray(), 0, 0, "neg");
        AssertClose(x.Values.Select(Math.Exp).ToArray(), exp.ToFloatArray(), 1e-6, 1e-6, "exp");
        AssertClose(x.Values.Select(Math.Sin).ToArray(), sin.ToFloatArray(), 1e-6, 1e-6, "sin");
        AssertClose(x.Values.Select(Math.Cos).ToArray(), cos.ToFloatArray(), 1e-6, 1e-6, "cos");
        AssertClose(x.Values.Select(v => Activate(Activation.Gelu, v)).ToArray(), gelu.ToFloatArray(), 1e-6, 1e-6, "gelu");
        AssertClose([x.Values.Take(5).Average(), x.Values.Skip(5).Average()], mean.ToFloatArray(), 1e-6, 1e-6, "mean");
    }

    [Fact]
    public void HostCopiesOutsideTheStorageAreRefused()
    {
        using var t = Zeros(4);
        var backend = CpuBackend.Instance;
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.CopyFromHost(new byte[8], t.Storage, 12));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.CopyFromHost(new byte[4], t.Storage, -4));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.CopyToHost(t.Storage, 8, new byte[12]));
        Assert.Contains("do not fill", Assert.Throws<ArgumentException>(() => Tensor.FromArray([1f, 2f], [3])).Message);
    }
}
