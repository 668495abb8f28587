using CogVideoX.Engine;

namespace CogVideoX.Tests.Engine;

/// <summary>How a test input is laid out in memory; the logical values are the same whatever the layout.</summary>
public enum Layouts
{
    /// <summary>Row-major float32.</summary>
    Contiguous,

    /// <summary>A view with every dim reversed in memory (a permutation of a contiguous tensor).</summary>
    Permuted,

    /// <summary>Every other element of a wider last dim, at an offset (a strided slice).</summary>
    Strided,

    /// <summary>Row-major float16 (values are the float16-rounded ones).</summary>
    F16,

    /// <summary>Row-major bfloat16 (values are the bfloat16-rounded ones).</summary>
    BF16,
}

/// <summary>A test tensor together with its logical values in row-major order, computed without the engine.</summary>
public sealed class TestInput : IDisposable
{
    private readonly Tensor _base;

    public TestInput(Tensor tensor, Tensor baseTensor, double[] values)
    {
        Tensor = tensor;
        _base = baseTensor;
        Values = values;
    }

    public Tensor Tensor { get; }

    public double[] Values { get; }

    public int[] Shape => Tensor.ShapeArray();

    public void Dispose()
    {
        Tensor.Dispose();
        _base.Dispose();
    }
}

/// <summary>Inputs in every layout and dtype, naive index helpers and error assertions shared by the op tests.</summary>
public static class OpTest
{
    public static readonly Layouts[] AllLayouts = Enum.GetValues<Layouts>();

    public static float[] Random(int count, int seed, double lo = -1, double hi = 1)
    {
        var r = new Random(seed);
        var a = new float[count];
        for (int i = 0; i < count; i++) a[i] = (float)(lo + r.NextDouble() * (hi - lo));
        return a;
    }

    public static long Count(int[] shape)
    {
        long n = 1;
        foreach (var d in shape) n *= d;
        return n;
    }

    public static double Round(float v, DType dtype) => dtype switch
    {
        DType.F16 => (double)(Half)v,
        DType.BF16 => BitConverter.Int32BitsToSingle((int)((uint)DTypes.FloatToBF16(v) << 16)),
        _ => v,
    };

    /// <summary>A tensor of the given logical shape filled with random values in [lo, hi), laid out as asked.</summary>
    public static TestInput Make(int[] shape, Layouts layout, int seed, double lo = -1, double hi = 1) =>
        FromValues(Random((int)Count(shape), seed, lo, hi), shape, layout);

    /// <summary>
    /// A tensor holding the given logical (row-major) values in a layout. Memory a strided view skips is filled
    /// with NaN, so a kernel that reads outside the view shows up as NaN in its result.
    /// </summary>
    public static TestInput FromValues(float[] values, int[] shape, Layouts layout)
    {
        int rank = shape.Length;
        switch (layout)
        {
            case Layouts.F16:
            case Layouts.BF16:
                {
                    var dtype = layout == Layouts.F16 ? DType.F16 : DType.BF16;
                    var t = Tensor.FromArray(values, shape, dtype: dtype);
                    return new TestInput(t, t.Alias(), values.Select(v => Round(v, dtype)).ToArray());
                }
            case Layouts.Permuted when rank >= 2:
                {
                    // Storage holds the reversed shape; the view reverses it back, so dim i has the stride of storage dim r-1-i.
                    var stored = shape.Reverse().ToArray();
                    var storedStrides = RowMajorStrides(stored);
                    var strides = Enumerable.Range(0, rank).Select(i => storedStrides[rank - 1 - i]).ToArray();
                    var data = Scatter(values, shape, strides, 0, values.Length);
                    var baseTensor = Tensor.FromArray(data, stored);
                    var view = baseTensor.Permute(Enumerable.Range(0, rank).Reverse().ToArray());
                    return new TestInput(view, baseTensor, values.Select(v => (double)v).ToArray());
                }
            case Layouts.Strided when rank >= 1:
                {
                    // Last dim L is stored 2L+1 wide; the view takes elements 1, 3, 5, ... of each row.
                    var stored = (int[])shape.Clone();
                    stored[^1] = 2 * shape[^1] + 1;
                    var strides = RowMajorStrides(stored);
                    strides[^1] = 2;
                    var data = Scatter(values, shape, strides, 1, (int)Count(stored));
                    var baseTensor = Tensor.FromArray(data, stored);
                    var view = baseTensor.Slice(-1, 1, stored[^1], 2);
                    return new TestInput(view, baseTensor, values.Select(v => (double)v).ToArray());
                }
            default:
                {
                    var t = Tensor.FromArray(values, shape);
                    return new TestInput(t, t.Alias(), values.Select(v => (double)v).ToArray());
                }
        }
    }

    /// <summary>Storage of the given size, NaN everywhere except the view's elements, which get values.</summary>
    private static float[] Scatter(float[] values, int[] shape, long[] strides, long offset, int storageSize)
    {
        var data = new float[storageSize];
        Array.Fill(data, float.NaN);
        var idx = new int[shape.Length];
        for (int i = 0; i < values.Length; i++)
        {
            long at = offset;
            for (int d = 0; d < shape.Length; d++) at += idx[d] * strides[d];
            data[at] = values[i];
            for (int d = shape.Length - 1; d >= 0; d--)
            {
                if (++idx[d] < shape[d]) break;
                idx[d] = 0;
            }
        }
        return data;
    }

    public static long[] RowMajorStrides(int[] shape)
    {
        var s = new long[shape.Length];
        long acc = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            s[i] = acc;
            acc *= shape[i];
        }
        return s;
    }

    /// <summary>Values of a strided view of data, in row-major order of shape.</summary>
    public static double[] Gather(float[] data, int[] shape, long[] strides, long offset)
    {
        var result = new double[Count(shape)];
        var idx = new int[shape.Length];
        for (long i = 0; i < result.Length; i++)
        {
            long at = offset;
            for (int d = 0; d < shape.Length; d++) at += idx[d] * strides[d];
            result[i] = data[at];
            for (int d = shape.Length - 1; d >= 0; d--)
            {
                if (++idx[d] < shape[d]) break;
                idx[d] = 0;
            }
        }
        return result;
    }

    /// <summary>Row-major index of a multi-index.</summary>
    public static long Index(int[] shape, params int[] idx)
    {
        long at = 0;
        for (int d = 0; d < shape.Length; d++) at = at * shape[d] + idx[d];
        return at;
    }

    /// <summary>
    /// |actual − expected| ≤ atol + rtol·scale per element, where scale is |expected| or, for sums, the sum of the
    /// magnitudes of the terms (the bound float32 rounding obeys). NaN must match NaN, infinities must match exactly.
    /// </summary>
    public static void AssertClose(double[] expected, float[] actual, double atol, double rtol, string context, double[]? scale = null)
    {
        Assert.True(expected.Length == actual.Length, $"{context}: {actual.Length} values, expected {expected.Length}");
        double worst = 0;
        int worstAt = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            if (double.IsNaN(e) || double.IsInfinity(e))
            {
                Assert.True(e.Equals(a), $"{context}: element {i} is {a}, expected {e}");
                continue;
            }
            Assert.False(double.IsNaN(a) || double.IsInfinity(a), $"{context}: element {i} is {a}, expected {e}");
            double err = Math.Abs(a - e) / (atol + rtol * (scale?[i] ?? Math.Abs(e)));
            if (err > worst)
            {
                worst = err;
                worstAt = i;
            }
        }
        Assert.True(worst <= 1, worstAt < 0 ? context
            : $"{context}: element {worstAt} is {actual[worstAt]}, expected {expected[worstAt]} ({worst:F1}× the tolerance)");
    }

    /// <summary>
    /// A float32 result stored in a half type is the float32 value rounded once more: round the reference the same
    /// way and allow one unit in the last place of the half type on top of the float32 tolerance (scale is widened
    /// in place so that rtol·scale covers it).
    /// </summary>
    public static double[] StoredAs(DType dtype, double[] expected, double[] scale, double rtol)
    {
        if (dtype == DType.F32) return expected;
        double ulp = dtype == DType.F16 ? Math.Pow(2, -10) : Math.Pow(2, -7);
        var rounded = new double[expected.Length];
        for (int i = 0; i < expected.Length; i++)
        {
            rounded[i] = Round((float)expected[i], dtype);
            scale[i] += Math.Abs(expected[i]) * ulp / rtol;
        }
        return rounded;
    }

    public static string Describe(params object[] parts) => string.Join(" ", parts);

    // ---- reference activations in double ----

    public static double Erf(double x)
    {
        double ax = Math.Abs(x);
        double r;
        if (ax < 2.5)
        {
            // Maclaurin series: erf(x) = 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1)).
            double term = ax, sum = ax;
            for (int n = 1; n < 200 && Math.Abs(term) > 1e-20; n++)
            {
                term *= -ax * ax / n;
                sum += term / (2 * n + 1);
            }
            r = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            // Continued fraction for erfc, evaluated from the tail.
            double f = 0;
            for (int n = 120; n >= 1; n--) f = n / 2.0 / (ax + f);
            r = 1 - Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / (ax + f);
        }
        return x < 0 ? -r : r;
    }

    public static double Activate(Activation activation, double x) => activation switch
    {
        Activation.None => x,
        Activation.Relu => Math.Max(x, 0),
        Activation.Silu => x / (1 + Math.Exp(-x)),
        Activation.Gelu => 0.5 * x * (1 + Erf(x / Math.Sqrt(2))),
        Activation.GeluTanh => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
        _ => throw new ArgumentOutOfRangeException(nameof(activation)),
    };

    /// <summary>The largest |f'(x)| of an activation, to carry a sum's error bound through it.</summary>
    public static double Slope(Activation activation) => activation switch
    {
        Activation.None or Activation.Relu => 1,
        _ => 1.13,
    };
}
