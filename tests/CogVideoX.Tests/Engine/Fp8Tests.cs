using CogVideoX.Engine;

namespace CogVideoX.Tests.Engine;

public class E4M3Tests
{
    [Theory]
    [InlineData(0f, 0x00)]
    [InlineData(1f, 0x38)]
    [InlineData(-2f, 0xC0)]
    [InlineData(240f, 0x77)]
    [InlineData(448f, 0x7E)]
    [InlineData(-448f, 0xFE)]
    [InlineData(0.015625f, 0x08)]      // 2⁻⁶, the smallest normal
    [InlineData(0.001953125f, 0x01)]   // 2⁻⁹, the smallest subnormal
    [InlineData(0.013671875f, 0x07)]   // 7 · 2⁻⁹, the largest subnormal
    [InlineData(1.125f, 0x39)]
    [InlineData(0.1f, 0x1D)]           // 0.1 → 0.1015625 = 1.625 · 2⁻⁴
    public void KnownValues(float value, int code)
    {
        Assert.Equal((byte)code, E4M3.FromFloat(value));
    }

    [Theory]
    [InlineData(1.0625f, 0x38)]        // halfway 1.0 | 1.125 → even mantissa 0
    [InlineData(1.1875f, 0x3A)]        // halfway 1.125 | 1.25 → even mantissa 2
    [InlineData(-1.1875f, 0xBA)]
    [InlineData(0.0009765625f, 0x00)]  // 2⁻¹⁰: halfway 0 | 2⁻⁹ → 0
    [InlineData(0.0029296875f, 0x02)]  // 3 · 2⁻¹⁰: halfway 1 | 2 units → 2
    [InlineData(0.0146484375f, 0x08)]  // 7.5 · 2⁻⁹: halfway largest subnormal | smallest normal → normal (8 is even)
    [InlineData(416f, 0x7D)]           // 1.625 · 2⁸ exactly
    [InlineData(432f, 0x7E)]           // halfway 416 | 448 → 448 (mantissa 6 even)
    [InlineData(1.0625001f, 0x39)]     // just above the tie rounds up
    [InlineData(1.0624999f, 0x38)]
    public void TiesRoundToEven(float value, int code)
    {
        Assert.Equal((byte)code, E4M3.FromFloat(value));
    }

    [Theory]
    [InlineData(449f, 0x7E)]
    [InlineData(464f, 0x7E)]           // the tie with the missing 480 saturates too
    [InlineData(1e6f, 0x7E)]
    [InlineData(-1e30f, 0xFE)]
    [InlineData(float.PositiveInfinity, 0x7E)]
    [InlineData(float.NegativeInfinity, 0xFE)]
    public void SaturatesAtTheLargestFinite(float value, int code)
    {
        Assert.Equal((byte)code, E4M3.FromFloat(value));
    }

    [Fact]
    public void NaNStaysNaNAndSignedZeroKeepsItsSign()
    {
        Assert.Equal(0x7F, E4M3.FromFloat(float.NaN) & 0x7F);
        Assert.True(float.IsNaN(E4M3.ToFloat(0x7F)));
        Assert.True(float.IsNaN(E4M3.ToFloat(0xFF)));
        Assert.Equal(0x80, E4M3.FromFloat(-0f));
        Assert.Equal(0x00, E4M3.FromFloat(1e-40f)); // a float32 subnormal
    }

    [Fact]
    public void EveryCodeRoundTripsAndTheTableIsOrdered()
    {
        for (int c = 0; c < 256; c++)
        {
            if ((c & 0x7F) == 0x7F) continue;
            float v = E4M3.ToFloat((byte)c);
            Assert.Equal((byte)c, E4M3.FromFloat(v));
        }
        // Positive codes 0…0x7E increase strictly: 2⁻⁹ steps below 2⁻⁶, then 8 per binade.
        for (int c = 1; c < 0x7F; c++) Assert.True(E4M3.ToFloat((byte)c) > E4M3.ToFloat((byte)(c - 1)));
        Assert.Equal(448f, E4M3.ToFloat(0x7E));
        Assert.Equal(E4M3.MinSubnormal, E4M3.ToFloat(0x01));
        Assert.Equal(E4M3.MinNormal, E4M3.ToFloat(0x08));
    }

    [Fact]
    public void EveryFloatRoundsToTheNearestCode()
    {
        // Dense sweep: the code chosen is never farther than another code (ties checked above).
        var values = E4M3.Table.Take(0x7F).ToArray();
        for (float x = 0; x < 470; x = x < 0.05f ? x + 1.7e-5f : x * 1.0007f + 1e-6f)
        {
            float got = E4M3.ToFloat(E4M3.FromFloat(x));
            float best = values.MinBy(v => Math.Abs(v - Math.Min(x, 448f)));
            Assert.True(Math.Abs(got - Math.Min(x, 448f)) <= Math.Abs(best - Math.Min(x, 448f)), $"{x}: got {got}, nearest {best}");
        }
    }

    [Theory]
    [InlineData(0f, 1f)]
    [InlineData(448f, 1f)]
    [InlineData(8.96f, 0.02f)]
    [InlineData(float.PositiveInfinity, 1f)]
    public void RowScaleMapsTheLargestMagnitudeTo448(float amax, float scale)
    {
        Assert.Equal(scale, E4M3.RowScale(amax), 6);
    }
}

public class CpuFp8LinearTests
{
    private static float[] Random(int n, int seed, float scale = 1f)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1) * scale).ToArray();
    }

    /// <summary>The E4M3 emulation written out independently: per-row scales, codes, products summed in double.</summary>
    private static double[] Emulated(float[] x, float[] w, float[] bias, int m, int k, int n)
    {
        static (byte[] Codes, float[] Scales) Quantize(float[] v, int rows, int cols)
        {
            var codes = new byte[rows * cols];
            var scales = new float[rows];
            for (int r = 0; r < rows; r++)
            {
                float amax = 0;
                for (int c = 0; c < cols; c++) amax = Math.Max(amax, Math.Abs(v[r * cols + c]));
                scales[r] = amax > 0 ? amax / 448f : 1f;
                for (int c = 0; c < cols; c++) codes[r * cols + c] = E4M3.FromFloat(v[r * cols + c] / scales[r]);
            }
            return (codes, scales);
        }
        var (xc, xs) = Quantize(x, m, k);
        var (wc, ws) = Quantize(w, n, k);
        var y = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double acc = 0;
                for (int t = 0; t < k; t++) acc += (double)E4M3.ToFloat(xc[i * k + t]) * E4M3.ToFloat(wc[j * k + t]);
                y[i * n + j] = acc * xs[i] * ws[j] + bias[j];
            }
        return y;
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 33, 5)]
    [InlineData(19, 64, 48)]
    [InlineData(3, 257, 17)]
    public void MatchesTheEmulationAndStaysWithinTheQuantizationBound(int m, int k, int n)
    {
        var x = Random(m * k, 1, 3f);
        var w = Random(n * k, 2, 0.05f);
        var bias = Random(n, 3, 0.1f);
        using var xt = Tensor.FromArray(x, [m, k]);
        using var wt = Tensor.FromArray(w, [n, k]);
        using var bt = Tensor.FromArray(bias, [n]);
        using var q = wt.QuantizeFp8();
        Assert.Equal((long)n * k + 4L * n, q.Bytes);
        using var yt = xt.LinearFp8(q, bt);
        var y = yt.ToFloatArray();
        var emulated = Emulated(x, w, bias, m, k, n);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double exact = bias[j], magnitude = 0, bound = 0;
                float sx = x.Skip(i * k).Take(k).Max(Math.Abs) / 448f, sw = w.Skip(j * k).Take(k).Max(Math.Abs) / 448f;
                for (int t = 0; t < k; t++)
                {
                    double a = x[i * k + t], b = w[j * k + t];
                    exact += a * b;
                    magnitude += Math.Abs(a * b);
                    // |q(v) − v| ≤ max(|v| / 16, scale · 2⁻¹⁰): half a step of a 3-bit mantissa, or of a subnormal.
                    double ea = Math.Max(Math.Abs(a) / 16, sx / 1024), eb = Math.Max(Math.Abs(b) / 16, sw / 1024);
                    bound += ea * Math.Abs(b) + Math.Abs(a) * eb + ea * eb;
                }
                int idx = i * n + j;
                // The emulation: products exact, only float32 accumulation differs.
                Assert.True(Math.Abs(y[idx] - emulated[idx]) <= 1e-5 * (magnitude + 1), $"[{i},{j}] {y[idx]} vs emulated {emulated[idx]}");
                Assert.True(Math.Abs(y[idx] - exact) <= bound * 1.0001 + 1e-6, $"[{i},{j}] {y[idx]} vs {exact}: error beyond the bound {bound}");
            }
    }

    [Fact]
    public void NormalisedErrorIsWhatE4M3Gives()
    {
        int m = 64, k = 256, n = 96;
        var x = Random(m * k, 4);
        var w = Random(n * k, 5, 0.02f);
        using var xt = Tensor.FromArray(x, [m, k]);
        using var wt = Tensor.FromArray(w, [n, k]);
        using var q = wt.QuantizeFp8();
        using var y = xt.LinearFp8(q);
        using var r = xt.Linear(wt);
        var (_, normalised, _) = CogVideoX.Engine.Testing.OpCatalogue.Errors(y.ToFloatArray(), r.ToFloatArray());
        // Two operands with 3-bit mantissas: a few percent, never exact, never worse than ~2⁻⁴.
        Assert.InRange(normalised, 0.005, 0.0625);
    }

    [Theory]
    [InlineData(DType.F16, Activation.GeluTanh)]
    [InlineData(DType.BF16, Activation.None)]
    [InlineData(DType.F32, Activation.Gelu)]
    public void HalfInputsAndTheActivationFollowTheFloatPath(DType dtype, Activation activation)
    {
        int m = 5, k = 40, n = 9;
        var x = Random(m * k, 6);
        var w = Random(n * k, 7, 0.2f);
        var b = Random(n, 8);
        using var xt = Tensor.FromArray(x, [1, m, k], dtype: dtype);
        using var wt = Tensor.FromArray(w, [n, k], dtype: dtype);
        using var bt = Tensor.FromArray(b, [n], dtype: dtype);
        using var q = wt.QuantizeFp8();
        using var y = xt.LinearFp8(q, bt, activation);
        Assert.Equal([1, m, n], y.ShapeArray());
        Assert.Equal(dtype, y.DType);
        // The same as the F32 fp8 linear of the (rounded) inputs, then the activation, rounded once.
        using var x32 = xt.To(DType.F32);
        using var b32 = bt.To(DType.F32);
        using var plain = x32.LinearFp8(q, b32);
        using var act = plain.Apply(activation);
        using var expected = act.To(dtype);
        Assert.Equal(expected.ToFloatArray(), y.ToFloatArray());
    }

    [Fact]
    public void ZeroRowsAndShapeErrorsAreHandled()
    {
        using var x = Tensor.Zeros(CpuBackend.Instance, DType.F32, 3, 8);
        using var w = Tensor.FromArray(Random(4 * 8, 9), [4, 8]);
        using var q = w.QuantizeFp8();
        using var y = x.LinearFp8(q);
        Assert.All(y.ToFloatArray(), v => Assert.Equal(0f, v));
        using var wrong = Tensor.Zeros(CpuBackend.Instance, DType.F32, 3, 7);
        var e = Assert.Throws<ArgumentException>(() => wrong.LinearFp8(q));
        Assert.Contains("7 features", e.Message);
        using var ids = Tensor.FromArray(new long[] { 1, 2 }, [1, 2]);
        Assert.ThrowsAny<Exception>(() => ids.QuantizeFp8());
    }

    [Fact]
    public void TheCpuHasTheCapability()
    {
        Assert.True(CpuBackend.Instance.Supports(Capability.Fp8Linear));
        Assert.Null(Ops.Fp8Unavailable(CpuBackend.Instance));
    }
}
