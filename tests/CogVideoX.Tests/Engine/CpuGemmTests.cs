using CogVideoX.Engine;
using static CogVideoX.Tests.Engine.OpTest;

namespace CogVideoX.Tests.Engine;

/// <summary>Linear and MatMul (the packed GEMM and each of its micro-kernels) against float64 loops.</summary>
public class CpuGemmTests
{
    /// <summary>
    /// (m, n, k): ones, primes, non-multiples of every kernel's MR/NR, exact multiples, more rows than one task block
    /// (MC = 128), more columns than one packed B block (NC = 4096), deeper than one reduction block (KC = 256).
    /// </summary>
    public static readonly (int M, int N, int K)[] Sizes =
    [
        (1, 1, 1), (1, 7, 13), (7, 13, 31), (13, 67, 31), (31, 33, 67), (8, 32, 256), (16, 64, 512),
        (67, 129, 257), (130, 65, 513), (300, 40, 20), (3, 4100, 5), (9, 17, 1000),
    ];

    /// <summary>Every micro-kernel, by name (all of them run on an AVX-512 machine; narrower ones run anywhere).</summary>
    public static readonly string[] Kernels = ["Vector512", "Vector256", "Vector128"];

    public static TheoryData<int, int, int, string> SizesByKernel()
    {
        var data = new TheoryData<int, int, int, string>();
        foreach (var (m, n, k) in Sizes)
            foreach (var kind in Kernels)
                data.Add(m, n, k, kind);
        return data;
    }

    public static TheoryData<Activation, bool> Epilogues()
    {
        var data = new TheoryData<Activation, bool>();
        foreach (var a in Enum.GetValues<Activation>())
        {
            data.Add(a, true);
            data.Add(a, false);
        }
        return data;
    }

    public static TheoryData<Layouts, Layouts> LayoutPairs()
    {
        var data = new TheoryData<Layouts, Layouts>();
        foreach (var x in AllLayouts)
            foreach (var w in AllLayouts)
            {
                bool xHalf = x is Layouts.F16 or Layouts.BF16, wHalf = w is Layouts.F16 or Layouts.BF16;
                // Linear needs one dtype for input and weight.
                if (xHalf == wHalf && (!xHalf || x == w)) data.Add(x, w);
            }
        return data;
    }

    [Theory]
    [MemberData(nameof(SizesByKernel))]
    public void LinearMatchesNaiveForEverySizeAndKernel(int m, int n, int k, string kind) =>
        WithKernel(kind, () => CheckLinear(m, n, k, Activation.None, true, Layouts.Contiguous, Layouts.Contiguous));

    [Theory]
    [MemberData(nameof(Epilogues))]
    public void LinearAppliesBiasAndActivation(Activation activation, bool bias)
    {
        CheckLinear(13, 67, 31, activation, bias, Layouts.Contiguous, Layouts.Contiguous);
        CheckLinear(130, 45, 300, activation, bias, Layouts.Contiguous, Layouts.Contiguous);
    }

    [Theory]
    [MemberData(nameof(LayoutPairs))]
    public void LinearReadsAnyLayoutAndHalfTypes(Layouts x, Layouts w) => CheckLinear(31, 33, 67, Activation.GeluTanh, true, x, w);

    [Fact]
    public void LinearKeepsLeadingDims()
    {
        using var x = Make([2, 3, 5], Layouts.Contiguous, 1);
        using var w = Make([4, 5], Layouts.Contiguous, 2);
        using var y = x.Tensor.Linear(w.Tensor);
        Assert.Equal(new[] { 2, 3, 4 }, y.ShapeArray());
        var expected = new double[24];
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 4; j++)
                for (int q = 0; q < 5; q++) expected[i * 4 + j] += x.Values[i * 5 + q] * w.Values[j * 5 + q];
        AssertClose(expected, y.ToFloatArray(), 1e-6, 1e-6, "linear [2,3,5]");
    }

    [Fact]
    public void LinearOfNoRowsIsEmpty()
    {
        using var x = Tensor.Zeros(CpuBackend.Instance, DType.F32, 0, 5);
        using var w = Make([4, 5], Layouts.Contiguous, 2);
        using var y = x.Linear(w.Tensor);
        Assert.Equal(new[] { 0, 4 }, y.ShapeArray());
    }

    [Fact]
    public void LinearRejectsMismatchedShapes()
    {
        using var x = Tensor.Zeros(CpuBackend.Instance, DType.F32, 3, 5);
        using var w = Tensor.Zeros(CpuBackend.Instance, DType.F32, 4, 6);
        using var b = Tensor.Zeros(CpuBackend.Instance, DType.F32, 3);
        using var w2 = Tensor.Zeros(CpuBackend.Instance, DType.F32, 4, 5);
        Assert.Contains("features", Assert.Throws<ArgumentException>(() => x.Linear(w)).Message);
        Assert.Contains("bias", Assert.Throws<ArgumentException>(() => x.Linear(w2, b)).Message);
    }

    private static void CheckLinear(int m, int n, int k, Activation activation, bool withBias, Layouts xLayout, Layouts wLayout)
    {
        using var x = Make([m, k], xLayout, m * 31 + k);
        using var w = Make([n, k], wLayout, n * 17 + k);
        var biasLayout = wLayout is Layouts.F16 or Layouts.BF16 ? wLayout : Layouts.Contiguous;
        using var b = withBias ? Make([n], biasLayout, n) : null;
        using var y = x.Tensor.Linear(w.Tensor, b?.Tensor, activation);
        Assert.Equal(new[] { m, n }, y.ShapeArray());
        Assert.Equal(x.Tensor.DType, y.DType);
        var expected = new double[m * n];
        var scale = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = b?.Values[j] ?? 0, mag = Math.Abs(s);
                for (int q = 0; q < k; q++)
                {
                    double t = x.Values[i * k + q] * w.Values[j * k + q];
                    s += t;
                    mag += Math.Abs(t);
                }
                expected[i * n + j] = Activate(activation, s);
                scale[i * n + j] = Slope(activation) * mag;
            }
        double rtol = 1e-6 * (1 + Math.Sqrt(k));
        expected = StoredAs(y.DType, expected, scale, rtol);
        AssertClose(expected, y.ToFloatArray(), 1e-6, rtol, Describe("linear", m, n, k, activation, withBias, xLayout, wLayout, Gemm.Current), scale);
    }

    public static TheoryData<int[], int[], Layouts, Layouts> MatMulShapes()
    {
        var data = new TheoryData<int[], int[], Layouts, Layouts>();
        (int[], int[])[] shapes =
        [
            ([1, 1], [1, 1]),
            ([7, 13], [13, 31]),
            ([2, 1, 13, 33], [3, 33, 17]),   // broadcast batch: [2,1] with [3] → [2,3]
            ([5, 9, 67], [5, 67, 40]),        // batch ≥ 2 × threads: one product per thread
            ([1, 130, 300], [4, 300, 65]),    // broadcast of a large left operand
            ([40, 257], [257, 33]),
        ];
        foreach (var (a, b) in shapes)
        {
            data.Add(a, b, Layouts.Contiguous, Layouts.Contiguous);
            data.Add(a, b, Layouts.Permuted, Layouts.Strided);
            data.Add(a, b, Layouts.Strided, Layouts.Permuted);
            data.Add(a, b, Layouts.F16, Layouts.F16);
            data.Add(a, b, Layouts.BF16, Layouts.BF16);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(MatMulShapes))]
    public void MatMulMatchesNaiveWithBroadcastBatch(int[] aShape, int[] bShape, Layouts aLayout, Layouts bLayout)
    {
        foreach (var kind in Kernels)
            WithKernel(kind, () => CheckMatMul(aShape, bShape, aLayout, bLayout));
    }

    [Fact]
    public void MatMulWithEmptyReductionIsZero()
    {
        using var a = Tensor.Zeros(CpuBackend.Instance, DType.F32, 2, 3, 0);
        using var b = Tensor.Zeros(CpuBackend.Instance, DType.F32, 0, 4);
        using var y = a.MatMul(b);
        Assert.Equal(new[] { 2, 3, 4 }, y.ShapeArray());
        Assert.All(y.ToFloatArray(), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void MatMulRejectsMismatchedInnerDims()
    {
        using var a = Tensor.Zeros(CpuBackend.Instance, DType.F32, 3, 4);
        using var b = Tensor.Zeros(CpuBackend.Instance, DType.F32, 5, 2);
        using var c = Tensor.Zeros(CpuBackend.Instance, DType.F32, 2, 4, 3);
        using var d = Tensor.Zeros(CpuBackend.Instance, DType.F32, 3, 3, 2);
        Assert.Contains("inner dims", Assert.Throws<ArgumentException>(() => a.MatMul(b)).Message);
        Assert.Contains("broadcast", Assert.Throws<ArgumentException>(() => c.MatMul(d)).Message);
    }

    private static void CheckMatMul(int[] aShape, int[] bShape, Layouts aLayout, Layouts bLayout)
    {
        using var a = Make(aShape, aLayout, 3);
        using var b = Make(bShape, bLayout, 4);
        using var y = a.Tensor.MatMul(b.Tensor);
        int m = aShape[^2], k = aShape[^1], n = bShape[^1];
        var batch = Ops.BroadcastShape(aShape[..^2], bShape[..^2]);
        Assert.Equal(batch.Concat([m, n]).ToArray(), y.ShapeArray());
        long batchCount = Count(batch);
        var expected = new double[batchCount * m * n];
        var scale = new double[expected.Length];
        var idx = new int[batch.Length];
        for (long bi = 0; bi < batchCount; bi++)
        {
            // Broadcast: each operand's batch index is the output's, clamped to 0 on its size-1 (or missing) dims.
            long aBase = BatchOffset(aShape, batch, idx) * m * k;
            long bBase = BatchOffset(bShape, batch, idx) * k * n;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double s = 0, mag = 0;
                    for (int q = 0; q < k; q++)
                    {
                        double t = a.Values[aBase + i * k + q] * b.Values[bBase + q * n + j];
                        s += t;
                        mag += Math.Abs(t);
                    }
                    expected[(bi * m + i) * n + j] = s;
                    scale[(bi * m + i) * n + j] = mag;
                }
            for (int d = batch.Length - 1; d >= 0; d--)
            {
                if (++idx[d] < batch[d]) break;
                idx[d] = 0;
            }
        }
        double rtol = 1e-6 * (1 + Math.Sqrt(k));
        expected = StoredAs(y.DType, expected, scale, rtol);
        AssertClose(expected, y.ToFloatArray(), 1e-6, rtol, Describe("matmul", Layout.Format(aShape), Layout.Format(bShape), aLayout, bLayout, Gemm.Current), scale);
    }

    private static long BatchOffset(int[] shape, int[] batch, int[] idx)
    {
        int own = shape.Length - 2, lead = batch.Length - own;
        long at = 0;
        for (int d = 0; d < own; d++) at = at * shape[d] + (shape[d] == 1 ? 0 : idx[lead + d]);
        return at;
    }

    /// <summary>Runs body with GEMMs started on this thread pinned to one micro-kernel.</summary>
    internal static void WithKernel(string kind, Action body)
    {
        var saved = Gemm.Current;
        Gemm.Current = Enum.Parse<GemmKernelKind>(kind);
        try
        {
            body();
        }
        finally
        {
            Gemm.Current = saved;
        }
    }
}
