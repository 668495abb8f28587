using CogVideoX.Engine;
using static CogVideoX.Tests.Engine.OpTest;

namespace CogVideoX.Tests.Engine;

/// <summary>Conv3d (implicit-im2col GEMM) and Conv2d against float64 loops.</summary>
public class CpuConvTests
{
    /// <summary>A convolution case: input [N, Cin, T, H, W], Cout, kernel, stride and padding per (t, h, w).</summary>
    public readonly record struct Case(int N, int Cin, int T, int H, int W, int Cout, int KT, int KH, int KW, Conv3dParams P)
    {
        public override string ToString() =>
            $"x[{N},{Cin},{T},{H},{W}] w[{Cout},{Cin},{KT},{KH},{KW}] s({P.StrideT},{P.StrideH},{P.StrideW}) p({P.PadT},{P.PadH},{P.PadW})";
    }

    public static readonly Case[] Cases =
    [
        new(1, 1, 1, 1, 1, 1, 1, 1, 1, new(1, 1, 1, 0, 0, 0)),
        new(2, 5, 3, 4, 5, 7, 1, 1, 1, new(1, 1, 1, 0, 0, 0)),      // pointwise: a plain product
        new(1, 3, 4, 7, 9, 2, 1, 1, 1, new(2, 2, 2, 0, 0, 0)),      // 1×1×1 with stride: not pointwise
        new(1, 4, 5, 6, 7, 9, 3, 3, 3, new(1, 1, 1, 1, 1, 1)),      // the VAE's usual 3×3×3, same padding
        new(1, 3, 6, 9, 11, 4, 3, 3, 3, new(2, 2, 2, 0, 1, 1)),     // downsampling stride 2
        new(1, 3, 3, 4, 5, 2, 3, 4, 5, new(1, 1, 1, 0, 0, 0)),      // kernel equal to the input: one output
        new(2, 2, 1, 13, 31, 5, 1, 3, 3, new(1, 1, 1, 0, 1, 1)),    // a 2D convolution in 3D clothing
        new(1, 16, 4, 12, 37, 19, 3, 3, 3, new(1, 1, 1, 2, 1, 1)),  // reduction 432 > one block; rows cross panels
        new(1, 2, 2, 40, 60, 3, 1, 3, 3, new(1, 1, 1, 0, 1, 1)),    // 4800 pixels > one packed block; Cout = 3
        new(1, 5, 2, 3, 3, 3, 2, 2, 2, new(1, 2, 1, 1, 2, 0)),      // padding as large as the kernel
        new(1, 2, 3, 5, 17, 4, 1, 2, 3, new(1, 1, 3, 0, 1, 2)),     // stride 3 along W with padding
    ];

    public static TheoryData<int> CaseIndices()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < Cases.Length; i++) data.Add(i);
        return data;
    }

    public static TheoryData<Layouts, bool> LayoutsAndBias()
    {
        var data = new TheoryData<Layouts, bool>();
        foreach (var layout in AllLayouts)
        {
            data.Add(layout, true);
            data.Add(layout, false);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void Conv3dMatchesNaive(int index) => CheckConv3d(Cases[index], Layouts.Contiguous, true);

    [Theory]
    [MemberData(nameof(LayoutsAndBias))]
    public void Conv3dReadsAnyLayoutWithOrWithoutBias(Layouts layout, bool bias) =>
        CheckConv3d(new Case(2, 3, 3, 5, 6, 4, 3, 3, 3, new(1, 1, 1, 1, 1, 1)), layout, bias);

    [Theory]
    [InlineData("Vector512")]
    [InlineData("Vector256")]
    [InlineData("Vector128")]
    public void Conv3dMatchesNaiveWithEveryKernel(string kernel) =>
        CpuGemmTests.WithKernel(kernel, () =>
        {
            CheckConv3d(Cases[7], Layouts.Contiguous, true);
            CheckConv3d(Cases[1], Layouts.Contiguous, true);
        });

    [Theory]
    [InlineData(1, 3, 7, 9, 5, 3, 1, 1)]
    [InlineData(2, 4, 13, 6, 7, 3, 2, 1)]
    [InlineData(1, 2, 8, 8, 3, 1, 1, 0)]
    [InlineData(1, 5, 9, 11, 2, 4, 2, 3)]
    public void Conv2dMatchesNaive(int n, int cin, int h, int w, int cout, int k, int stride, int padding)
    {
        using var x = Make([n, cin, h, w], Layouts.Contiguous, 41);
        using var wt = Make([cout, cin, k, k], Layouts.Contiguous, 42);
        using var b = Make([cout], Layouts.Contiguous, 43);
        using var y = x.Tensor.Conv2d(wt.Tensor, b.Tensor, stride, padding);
        int ho = (h + 2 * padding - k) / stride + 1, wo = (w + 2 * padding - k) / stride + 1;
        Assert.Equal(new[] { n, cout, ho, wo }, y.ShapeArray());
        var c = new Case(n, cin, 1, h, w, cout, 1, k, k, new Conv3dParams(1, stride, stride, 0, padding, padding));
        var (expected, scale) = Naive(c, x.Values, wt.Values, b.Values);
        AssertClose(expected, y.ToFloatArray(), 1e-6, 1e-6 * (1 + Math.Sqrt(cin * k * k)), Describe("conv2d", c), scale);
    }

    [Fact]
    public void Conv3dRejectsBadShapesAndParameters()
    {
        using var x = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 2, 3, 4, 5);
        using var w = Tensor.Zeros(CpuBackend.Instance, DType.F32, 3, 4, 1, 1, 1);
        using var big = Tensor.Zeros(CpuBackend.Instance, DType.F32, 3, 2, 4, 1, 1);
        using var ok = Tensor.Zeros(CpuBackend.Instance, DType.F32, 3, 2, 1, 1, 1);
        using var bias = Tensor.Zeros(CpuBackend.Instance, DType.F32, 4);
        Assert.Contains("channels", Assert.Throws<ArgumentException>(() => x.Conv3d(w, null, new(1, 1, 1, 0, 0, 0))).Message);
        Assert.Contains("larger", Assert.Throws<ArgumentException>(() => x.Conv3d(big, null, new(1, 1, 1, 0, 0, 0))).Message);
        Assert.Contains("stride", Assert.Throws<ArgumentException>(() => x.Conv3d(ok, null, new(0, 1, 1, 0, 0, 0))).Message);
        Assert.Contains("bias", Assert.Throws<ArgumentException>(() => x.Conv3d(ok, bias, new(1, 1, 1, 0, 0, 0))).Message);
    }

    private static void CheckConv3d(Case c, Layouts layout, bool withBias)
    {
        using var x = Make([c.N, c.Cin, c.T, c.H, c.W], layout, 51);
        var weightLayout = layout is Layouts.F16 or Layouts.BF16 ? layout : Layouts.Contiguous;
        using var w = Make([c.Cout, c.Cin, c.KT, c.KH, c.KW], weightLayout, 52);
        using var b = withBias ? Make([c.Cout], weightLayout, 53) : null;
        using var y = x.Tensor.Conv3d(w.Tensor, b?.Tensor, c.P);
        var (expected, scale) = Naive(c, x.Values, w.Values, b?.Values);
        int to = (c.T + 2 * c.P.PadT - c.KT) / c.P.StrideT + 1;
        int ho = (c.H + 2 * c.P.PadH - c.KH) / c.P.StrideH + 1;
        int wo = (c.W + 2 * c.P.PadW - c.KW) / c.P.StrideW + 1;
        Assert.Equal(new[] { c.N, c.Cout, to, ho, wo }, y.ShapeArray());
        double rtol = 1e-6 * (1 + Math.Sqrt(c.Cin * c.KT * c.KH * c.KW));
        expected = StoredAs(y.DType, expected, scale, rtol);
        AssertClose(expected, y.ToFloatArray(), 1e-6, rtol, Describe("conv3d", c, layout, withBias ? "bias" : "no bias", Gemm.Current), scale);
    }

    /// <summary>The definition: y[n, o, t, h, w] = b[o] + Σ x[n, c, t·s − p + a, ...] · w[o, c, a, ...] over in-range taps.</summary>
    private static (double[] Expected, double[] Scale) Naive(Case c, double[] x, double[] w, double[]? b)
    {
        var p = c.P;
        int to = (c.T + 2 * p.PadT - c.KT) / p.StrideT + 1;
        int ho = (c.H + 2 * p.PadH - c.KH) / p.StrideH + 1;
        int wo = (c.W + 2 * p.PadW - c.KW) / p.StrideW + 1;
        var expected = new double[(long)c.N * c.Cout * to * ho * wo];
        var scale = new double[expected.Length];
        long at = 0;
        for (int n = 0; n < c.N; n++)
            for (int o = 0; o < c.Cout; o++)
                for (int t = 0; t < to; t++)
                    for (int i = 0; i < ho; i++)
                        for (int j = 0; j < wo; j++, at++)
                        {
                            double s = b?[o] ?? 0, mag = Math.Abs(s);
                            for (int ci = 0; ci < c.Cin; ci++)
                                for (int a = 0; a < c.KT; a++)
                                    for (int bb = 0; bb < c.KH; bb++)
                                        for (int dd = 0; dd < c.KW; dd++)
                                        {
                                            int it = t * p.StrideT - p.PadT + a, ih = i * p.StrideH - p.PadH + bb, iw = j * p.StrideW - p.PadW + dd;
                                            if (it < 0 || it >= c.T || ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                                            double term = x[(((long)(n * c.Cin + ci) * c.T + it) * c.H + ih) * c.W + iw]
                                                * w[(((o * c.Cin + ci) * c.KT + a) * c.KH + bb) * c.KW + dd];
                                            s += term;
                                            mag += Math.Abs(term);
                                        }
                            expected[at] = s;
                            scale[at] = mag;
                        }
        return (expected, scale);
    }
}
