using CogVideoX.Engine;
using static CogVideoX.Tests.Engine.OpTest;

namespace CogVideoX.Tests.Engine;

/// <summary>Unary, affine, clamp, binary (with broadcasting), reductions and fill against float64 loops.</summary>
public class CpuElementwiseTests
{
    /// <summary>Element counts: one, primes, not a multiple of any vector width, more than one parallel chunk (32768).</summary>
    public static readonly int[] Counts = [1, 7, 31, 67, 1000, 40001];

    public static TheoryData<UnaryOp, int, Layouts> UnaryCases()
    {
        var data = new TheoryData<UnaryOp, int, Layouts>();
        foreach (var op in Enum.GetValues<UnaryOp>())
        {
            foreach (var n in Counts) data.Add(op, n, Layouts.Contiguous);
            foreach (var layout in AllLayouts.Skip(1)) data.Add(op, 67, layout);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(UnaryCases))]
    public void UnaryMatchesNaive(UnaryOp op, int count, Layouts layout)
    {
        var (lo, hi) = op switch
        {
            UnaryOp.Log or UnaryOp.Sqrt or UnaryOp.Rsqrt => (0.01, 9.0),
            UnaryOp.Sin or UnaryOp.Cos => (-10.0, 10.0),
            UnaryOp.Exp => (-20.0, 20.0),
            _ => (-6.0, 6.0),
        };
        using var x = Make([2, count], layout, count, lo, hi);
        using var y = x.Tensor.Unary(op);
        Assert.Equal(x.Tensor.DType, y.DType);
        var expected = x.Values.Select(v => Reference(op, v)).ToArray();
        var scale = expected.Select(Math.Abs).ToArray();
        expected = StoredAs(y.DType, expected, scale, 2e-6);
        AssertClose(expected, y.ToFloatArray(), 2e-6, 2e-6, Describe(op, count, layout), scale);
    }

    [Fact]
    public void ActivationsPropagateSpecialValuesLikeTorch()
    {
        float[] x = [float.NaN, float.NegativeInfinity, float.PositiveInfinity, -0f, 0f, -100f, 100f];
        using var t = Tensor.FromArray(x, [x.Length]);
        using var silu = t.Silu();
        using var gelu = t.GeluTanh();
        using var relu = t.Unary(UnaryOp.Relu);
        // torch: silu(-inf) = -inf·sigmoid(-inf) = NaN, gelu(-inf) = NaN, relu keeps NaN.
        Assert.Equal([float.NaN, float.NaN, float.PositiveInfinity, 0f, 0f, -0f, 100f], silu.ToFloatArray());
        Assert.Equal([float.NaN, float.NaN, float.PositiveInfinity, 0f, 0f, -0f, 100f], gelu.ToFloatArray());
        Assert.Equal([float.NaN, 0f, float.PositiveInfinity, 0f, 0f, 0f, 100f], relu.ToFloatArray());
    }

    internal static double Reference(UnaryOp op, double x) => op switch
    {
        UnaryOp.Neg => -x,
        UnaryOp.Exp => Math.Exp(x),
        UnaryOp.Log => Math.Log(x),
        UnaryOp.Sqrt => Math.Sqrt(x),
        UnaryOp.Rsqrt => 1 / Math.Sqrt(x),
        UnaryOp.Sin => Math.Sin(x),
        UnaryOp.Cos => Math.Cos(x),
        UnaryOp.Tanh => Math.Tanh(x),
        UnaryOp.Sigmoid => 1 / (1 + Math.Exp(-x)),
        UnaryOp.Silu => Activate(Activation.Silu, x),
        UnaryOp.GeluTanh => Activate(Activation.GeluTanh, x),
        UnaryOp.Gelu => Activate(Activation.Gelu, x),
        UnaryOp.Relu => Math.Max(x, 0),
        UnaryOp.Abs => Math.Abs(x),
        UnaryOp.Square => x * x,
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    public static TheoryData<int, Layouts> CountsAndLayouts()
    {
        var data = new TheoryData<int, Layouts>();
        foreach (var n in Counts) data.Add(n, Layouts.Contiguous);
        foreach (var layout in AllLayouts.Skip(1)) data.Add(67, layout);
        return data;
    }

    [Theory]
    [MemberData(nameof(CountsAndLayouts))]
    public void AffineAndClampMatchNaive(int count, Layouts layout)
    {
        using var x = Make([1, count], layout, count, -3, 3);
        using var affine = x.Tensor.Affine(1.7f, -0.3f);
        using var clamp = x.Tensor.Clamp(-1.25f, 0.5f);
        var ea = x.Values.Select(v => v * 1.7f - 0.3).ToArray();
        var sa = x.Values.Select(v => Math.Abs(v * 1.7) + 0.3).ToArray();
        ea = StoredAs(affine.DType, ea, sa, 1e-6);
        AssertClose(ea, affine.ToFloatArray(), 1e-7, 1e-6, Describe("affine", count, layout), sa);
        var ec = x.Values.Select(v => Math.Clamp(v, -1.25, 0.5)).ToArray();
        AssertClose(ec, clamp.ToFloatArray(), 0, 0, Describe("clamp", count, layout));
    }

    /// <summary>Operand shapes that broadcast: equal, trailing-dim vector, middle size-1 dims, scalar either side.</summary>
    public static readonly (int[] A, int[] B)[] BroadcastShapes =
    [
        ([1], [1]),
        ([2, 31, 67], [2, 31, 67]),
        ([3, 1, 7], [5, 1]),
        ([4, 13, 33], [33]),
        ([2, 3, 5, 7], [2, 3, 1, 1]),
        ([40001], [1]),
        ([1], [13]),
        ([6, 1], [1, 9]),
    ];

    public static TheoryData<BinaryOp, int, Layouts> BinaryCases()
    {
        var data = new TheoryData<BinaryOp, int, Layouts>();
        foreach (var op in Enum.GetValues<BinaryOp>())
        {
            for (int s = 0; s < BroadcastShapes.Length; s++) data.Add(op, s, Layouts.Contiguous);
            foreach (var layout in AllLayouts.Skip(1))
            {
                data.Add(op, 1, layout);
                data.Add(op, 3, layout);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(BinaryCases))]
    public void BinaryMatchesNaiveWithBroadcasting(BinaryOp op, int shapes, Layouts layout)
    {
        var (aShape, bShape) = BroadcastShapes[shapes];
        using var a = Make(aShape, layout, 61, -2, 2);
        // Keep divisors away from zero; the other operand's layout is the plain one unless both must be half.
        var bLayout = layout is Layouts.F16 or Layouts.BF16 ? layout : Layouts.Permuted;
        var bValues = Random((int)Count(bShape), 62, 0.5, 2).Select((v, i) => i % 2 == 0 ? v : -v).ToArray();
        using var b = FromValues(bValues, bShape, bLayout);
        using var y = a.Tensor.Binary(b.Tensor, op);
        var shape = Ops.BroadcastShape(aShape, bShape);
        Assert.Equal(shape, y.ShapeArray());
        var expected = new double[Count(shape)];
        var scale = new double[expected.Length];
        var idx = new int[shape.Length];
        for (long i = 0; i < expected.Length; i++)
        {
            double va = a.Values[BroadcastIndex(aShape, shape, idx)], vb = b.Values[BroadcastIndex(bShape, shape, idx)];
            expected[i] = op switch
            {
                BinaryOp.Add => va + vb,
                BinaryOp.Sub => va - vb,
                BinaryOp.Mul => va * vb,
                BinaryOp.Div => va / vb,
                BinaryOp.Max => Math.Max(va, vb),
                _ => Math.Min(va, vb),
            };
            scale[i] = op is BinaryOp.Add or BinaryOp.Sub ? Math.Abs(va) + Math.Abs(vb) : Math.Abs(expected[i]);
            for (int d = shape.Length - 1; d >= 0; d--)
            {
                if (++idx[d] < shape[d]) break;
                idx[d] = 0;
            }
        }
        expected = StoredAs(y.DType, expected, scale, 1e-6);
        AssertClose(expected, y.ToFloatArray(), 0, 1e-6, Describe(op, Layout.Format(aShape), Layout.Format(bShape), layout), scale);
    }

    [Fact]
    public void MaxAndMinPropagateNaNLikeTorch()
    {
        using var a = Tensor.FromArray([float.NaN, 1f, 2f, float.NaN, 5f, 6f, 7f, 8f, 9f], [9]);
        using var b = Tensor.FromArray([0f, float.NaN, 3f, 4f, 4f, 4f, 4f, 4f, 4f], [9]);
        using var s = Tensor.FromArray([float.NaN], [1]);
        using var max = a.Maximum(b);
        using var min = a.Minimum(b);
        using var maxScalar = b.Maximum(s);
        Assert.Equal([float.NaN, float.NaN, 3f, float.NaN, 5f, 6f, 7f, 8f, 9f], max.ToFloatArray());
        Assert.Equal([float.NaN, float.NaN, 2f, float.NaN, 4f, 4f, 4f, 4f, 4f], min.ToFloatArray());
        Assert.All(maxScalar.ToFloatArray(), v => Assert.True(float.IsNaN(v)));
    }

    [Fact]
    public void BinaryRejectsShapesThatDoNotBroadcastAndMixedDTypes()
    {
        using var a = Tensor.Zeros(CpuBackend.Instance, DType.F32, 3, 4);
        using var b = Tensor.Zeros(CpuBackend.Instance, DType.F32, 5);
        using var h = Tensor.Zeros(CpuBackend.Instance, DType.F16, 3, 4);
        Assert.Contains("do not broadcast", Assert.Throws<ArgumentException>(() => a.Add(b)).Message);
        Assert.Contains("dtypes differ", Assert.Throws<ArgumentException>(() => a.Add(h)).Message);
    }

    private static long BroadcastIndex(int[] own, int[] shape, int[] idx)
    {
        int lead = shape.Length - own.Length;
        long at = 0;
        for (int d = 0; d < own.Length; d++) at = at * own[d] + (own[d] == 1 ? 0 : idx[lead + d]);
        return at;
    }

    public static TheoryData<ReduceOp, int, Layouts> ReduceCases()
    {
        var data = new TheoryData<ReduceOp, int, Layouts>();
        foreach (var op in Enum.GetValues<ReduceOp>())
        {
            foreach (var n in Counts) data.Add(op, n, Layouts.Contiguous);
            foreach (var layout in AllLayouts.Skip(1)) data.Add(op, 1000, layout);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(ReduceCases))]
    public void ReduceOverLastDimMatchesNaive(ReduceOp op, int k, Layouts layout)
    {
        const int rows = 3;
        using var x = Make([rows, k], layout, k + 5, -1, 2);
        using var y = x.Tensor.Reduce(op);
        Assert.Equal(new[] { rows }, y.ShapeArray());
        var expected = new double[rows];
        var scale = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            var row = x.Values.Skip(r * k).Take(k).ToArray();
            expected[r] = op switch
            {
                ReduceOp.Sum => row.Sum(),
                ReduceOp.Mean => row.Average(),
                ReduceOp.Max => row.Max(),
                _ => row.Min(),
            };
            scale[r] = op switch
            {
                ReduceOp.Sum => row.Sum(Math.Abs),
                ReduceOp.Mean => row.Average(Math.Abs),
                _ => Math.Abs(expected[r]),
            };
        }
        expected = StoredAs(y.DType, expected, scale, 1e-6);
        AssertClose(expected, y.ToFloatArray(), 0, 1e-6, Describe(op, k, layout), scale);
    }

    [Fact]
    public void ReduceOfEmptyDimIsZeroForSumAndAnErrorOtherwise()
    {
        using var x = Tensor.Zeros(CpuBackend.Instance, DType.F32, 3, 0);
        using var sum = x.Sum();
        Assert.Equal(new float[3], sum.ToFloatArray());
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => x.Reduce(ReduceOp.Max)).Message);
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => x.Mean()).Message);
    }

    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    [InlineData(DType.I64)]
    public void FillWritesEveryElementOfContiguousAndStridedTensors(DType dtype)
    {
        using var full = Tensor.Full(CpuBackend.Instance, dtype, 2.5, 3, 40001);
        Assert.All(full.ToFloatArray(), v => Assert.Equal(dtype == DType.I64 ? 2f : 2.5f, v));
        // A strided view: only its elements change.
        using var baseTensor = Tensor.Full(CpuBackend.Instance, dtype, 1, 4, 6);
        using var view = baseTensor.Slice(1, 1, 6, 2);
        CpuBackend.Instance.Fill(view, -3);
        var got = baseTensor.ToFloatArray();
        for (int i = 0; i < 24; i++) Assert.Equal(i % 6 % 2 == 1 ? -3f : 1f, got[i]);
    }
}
