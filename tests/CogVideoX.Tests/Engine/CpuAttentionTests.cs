using System.Diagnostics;
using CogVideoX.Engine;
using static CogVideoX.Tests.Engine.OpTest;

namespace CogVideoX.Tests.Engine;

/// <summary>Attention (the blocked online-softmax kernel) and rotary embedding against float64 loops.</summary>
public class CpuAttentionTests
{
    public enum BiasKind
    {
        None,
        /// <summary>A full [B, H, Nq, Nk] bias.</summary>
        Full,
        /// <summary>A key-padding mask [B, 1, 1, Nk] with −∞ on some keys (broadcast over heads and queries).</summary>
        KeyMask,
        /// <summary>One [Nq, Nk] bias shared by every batch item and head.</summary>
        Shared,
    }

    /// <summary>How q, k, v are laid out: the layouts of <see cref="Layouts"/>, or heads interleaved as [B, N, H, D].</summary>
    public enum QkvLayout
    {
        Contiguous,
        HeadInterleaved,
        Strided,
        F16,
        BF16,
    }

    /// <summary>(B, H, Nq, Nk, D): ones, primes, Nq ≠ Nk, several key blocks (256) and query blocks (64), D not a multiple of 16/32.</summary>
    public static readonly (int B, int H, int Nq, int Nk, int D)[] Shapes =
    [
        (1, 1, 1, 1, 1), (1, 2, 37, 41, 8), (2, 3, 67, 13, 64), (1, 1, 130, 300, 40), (1, 2, 5, 600, 72), (1, 1, 200, 7, 16),
    ];

    public static TheoryData<int, int, int, int, int, BiasKind> ShapesAndBiases()
    {
        var data = new TheoryData<int, int, int, int, int, BiasKind>();
        foreach (var (b, h, nq, nk, d) in Shapes)
            foreach (var bias in Enum.GetValues<BiasKind>())
                data.Add(b, h, nq, nk, d, bias);
        return data;
    }

    public static TheoryData<QkvLayout, bool> LayoutsAndOutputs()
    {
        var data = new TheoryData<QkvLayout, bool>();
        foreach (var layout in Enum.GetValues<QkvLayout>())
        {
            data.Add(layout, false);
            data.Add(layout, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(ShapesAndBiases))]
    public void AttentionMatchesNaive(int b, int h, int nq, int nk, int d, BiasKind bias) =>
        CheckAttention(b, h, nq, nk, d, bias, QkvLayout.Contiguous, stridedOutput: false);

    [Theory]
    [MemberData(nameof(LayoutsAndOutputs))]
    public void AttentionReadsAnyLayoutAndWritesStridedOutput(QkvLayout layout, bool stridedOutput) =>
        CheckAttention(2, 3, 70, 45, 24, BiasKind.KeyMask, layout, stridedOutput);

    [Theory]
    [InlineData("Vector512")]
    [InlineData("Vector256")]
    [InlineData("Vector128")]
    public void AttentionMatchesNaiveWithEveryKernel(string kernel) =>
        CpuGemmTests.WithKernel(kernel, () => CheckAttention(1, 2, 101, 270, 40, BiasKind.Full, QkvLayout.HeadInterleaved, true));

    [Fact]
    public void FullyMaskedQueryGivesNaNLikeSoftmax()
    {
        using var q = Make([1, 1, 3, 4], Layouts.Contiguous, 1);
        using var k = Make([1, 1, 5, 4], Layouts.Contiguous, 2);
        using var v = Make([1, 1, 5, 4], Layouts.Contiguous, 3);
        var bias = new float[15];
        for (int j = 0; j < 5; j++) bias[5 + j] = float.NegativeInfinity; // query 1 sees no key
        bias[2] = float.NegativeInfinity;
        using var tb = Tensor.FromArray(bias, [1, 1, 3, 5]);
        using var y = Ops.Attention(q.Tensor, k.Tensor, v.Tensor, tb, 0.5f);
        var got = y.ToFloatArray();
        Assert.All(got.Skip(4).Take(4), v => Assert.True(float.IsNaN(v)));
        Assert.All(got.Take(4).Concat(got.Skip(8)), v => Assert.False(float.IsNaN(v)));
        AssertClose(NaiveAttention(q.Values, k.Values, v.Values, bias.Select(x => (double)x).ToArray(), [1, 1, 3, 5], 1, 1, 3, 5, 4, 0.5).Expected,
            got, 1e-6, 1e-5, "masked");
    }

    [Fact]
    public void AttentionRejectsMismatchedShapes()
    {
        using var q = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 2, 3, 4);
        using var k = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 2, 5, 8);
        using var v = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 2, 5, 4);
        using var out1 = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 2, 3, 5);
        Assert.Contains("do not agree", Assert.Throws<ArgumentException>(() => Ops.Attention(q, k, v, null, 1f)).Message);
        using var k2 = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 2, 5, 4);
        Assert.Contains("output", Assert.Throws<ArgumentException>(() => Ops.AttentionInto(q, k2, v, null, 1f, out1)).Message);
    }

    private static void CheckAttention(int b, int h, int nq, int nk, int d, BiasKind biasKind, QkvLayout layout, bool stridedOutput)
    {
        using var q = MakeQkv([b, h, nq, d], layout, 11);
        using var k = MakeQkv([b, h, nk, d], layout, 12);
        using var v = MakeQkv([b, h, nk, d], layout, 13);
        int[]? biasShape = biasKind switch
        {
            BiasKind.Full => [b, h, nq, nk],
            BiasKind.KeyMask => [b, 1, 1, nk],
            BiasKind.Shared => [nq, nk],
            _ => null,
        };
        TestInput? bias = null;
        if (biasShape is not null)
        {
            var values = Random((int)Count(biasShape), 14, -2, 2);
            // Mask every third key, but never all of them.
            if (biasKind == BiasKind.KeyMask)
                for (int i = 0; i < values.Length; i++)
                    if (i % nk % 3 == 1) values[i] = float.NegativeInfinity;
            var dtype = layout switch { QkvLayout.F16 => Layouts.F16, QkvLayout.BF16 => Layouts.BF16, _ => Layouts.Contiguous };
            bias = FromValues(values, biasShape, dtype);
        }
        using (bias)
        {
            float scale = 1f / MathF.Sqrt(d);
            Tensor? outputBase = stridedOutput ? Tensor.Full(CpuBackend.Instance, q.Tensor.DType, double.NaN, b, nq, h, d) : null;
            using (outputBase)
            {
                using var outputView = outputBase?.Permute(0, 2, 1, 3);
                using var y = outputView ?? Ops.Attention(q.Tensor, k.Tensor, v.Tensor, bias?.Tensor, scale);
                if (outputView is not null) Ops.AttentionInto(q.Tensor, k.Tensor, v.Tensor, bias?.Tensor, scale, outputView);
                Assert.Equal(new[] { b, h, nq, d }, y.ShapeArray());
                var (expected, magnitude) = NaiveAttention(q.Values, k.Values, v.Values, bias?.Values, biasShape, b, h, nq, nk, d, scale);
                expected = StoredAs(y.DType, expected, magnitude, 1e-5);
                AssertClose(expected, y.ToFloatArray(), 1e-6, 1e-5,
                    Describe("attention", b, h, nq, nk, d, biasKind, layout, stridedOutput ? "strided output" : "", Gemm.Current), magnitude);
            }
        }
    }

    private static TestInput MakeQkv(int[] shape, QkvLayout layout, int seed)
    {
        if (layout != QkvLayout.HeadInterleaved)
            return Make(shape, layout switch
            {
                QkvLayout.Strided => Layouts.Strided,
                QkvLayout.F16 => Layouts.F16,
                QkvLayout.BF16 => Layouts.BF16,
                _ => Layouts.Contiguous,
            }, seed);
        // Projections produce [B, N, H, D]; attention sees the permuted view [B, H, N, D] without a copy.
        int b = shape[0], h = shape[1], n = shape[2], d = shape[3];
        var values = Random(b * h * n * d, seed);
        var stored = new float[values.Length];
        for (int bi = 0; bi < b; bi++)
            for (int hi = 0; hi < h; hi++)
                for (int i = 0; i < n; i++)
                    for (int c = 0; c < d; c++)
                        stored[((bi * n + i) * h + hi) * d + c] = values[((bi * h + hi) * n + i) * d + c];
        var baseTensor = Tensor.FromArray(stored, [b, n, h, d]);
        return new TestInput(baseTensor.Permute(0, 2, 1, 3), baseTensor, values.Select(x => (double)x).ToArray());
    }

    /// <summary>softmax(q·kᵀ·scale + bias)·v per (b, h, query), and Σ p·|v| as the error scale.</summary>
    internal static (double[] Expected, double[] Magnitude) NaiveAttention(double[] q, double[] k, double[] v, double[]? bias, int[]? biasShape,
        int b, int h, int nq, int nk, int d, double scale, int[]? onlyQueries = null)
    {
        var expected = new double[(long)b * h * nq * d];
        var magnitude = new double[expected.Length];
        var s = new double[nk];
        for (int bi = 0; bi < b; bi++)
            for (int hi = 0; hi < h; hi++)
                foreach (int i in onlyQueries ?? Enumerable.Range(0, nq).ToArray())
                {
                    long qBase = ((long)(bi * h + hi) * nq + i) * d;
                    long kvBase = (long)(bi * h + hi) * nk * d;
                    for (int j = 0; j < nk; j++)
                    {
                        double dot = 0;
                        for (int c = 0; c < d; c++) dot += q[qBase + c] * k[kvBase + (long)j * d + c];
                        s[j] = dot * scale + (bias is null ? 0 : bias[BiasIndex(biasShape!, bi, hi, i, j)]);
                    }
                    double max = s.Max();
                    double sum = s.Sum(x => Math.Exp(x - max));
                    for (int c = 0; c < d; c++)
                    {
                        double o = 0, mag = 0;
                        for (int j = 0; j < nk; j++)
                        {
                            double p = Math.Exp(s[j] - max) / sum;
                            o += p * v[kvBase + (long)j * d + c];
                            mag += p * Math.Abs(v[kvBase + (long)j * d + c]);
                        }
                        expected[qBase + c] = double.IsNegativeInfinity(max) ? double.NaN : o;
                        magnitude[qBase + c] = mag;
                    }
                }
        return (expected, magnitude);
    }

    /// <summary>Index into a bias of shape [B|1, H|1, Nq|1, Nk] or [Nq, Nk] broadcast to [B, H, Nq, Nk].</summary>
    private static long BiasIndex(int[] shape, int b, int h, int i, int j)
    {
        int[] full = shape.Length == 4 ? shape : [1, 1, .. shape];
        int[] idx = [b, h, i, j];
        long at = 0;
        for (int dim = 0; dim < 4; dim++) at = at * full[dim] + (full[dim] == 1 ? 0 : idx[dim]);
        return at;
    }

    // ---- rotary ----

    public static TheoryData<int, int, int, int, Layouts> RotaryCases()
    {
        var data = new TheoryData<int, int, int, int, Layouts>();
        foreach (var (b, h, n, d) in new[] { (1, 1, 1, 2), (2, 3, 7, 8), (1, 2, 31, 64), (1, 1, 67, 38) })
            foreach (var layout in AllLayouts)
                data.Add(b, h, n, d, layout);
        return data;
    }

    [Theory]
    [MemberData(nameof(RotaryCases))]
    public void RotaryMatchesNaive(int b, int h, int n, int d, Layouts layout)
    {
        using var x = Make([b, h, n, d], layout, 21);
        var tableLayout = layout is Layouts.F16 or Layouts.BF16 ? layout : Layouts.Contiguous;
        using var cos = Make([n, d], tableLayout, 22);
        using var sin = Make([n, d], tableLayout, 23);
        using var y = x.Tensor.Rotary(cos.Tensor, sin.Tensor);
        var expected = new double[x.Values.Length];
        var scale = new double[x.Values.Length];
        for (long r = 0; r < (long)b * h * n; r++)
        {
            long pos = r % n;
            for (int i = 0; i < d; i += 2)
            {
                double re = x.Values[r * d + i], im = x.Values[r * d + i + 1];
                expected[r * d + i] = re * cos.Values[pos * d + i] - im * sin.Values[pos * d + i];
                expected[r * d + i + 1] = im * cos.Values[pos * d + i + 1] + re * sin.Values[pos * d + i + 1];
                scale[r * d + i] = scale[r * d + i + 1] = Math.Abs(re) + Math.Abs(im);
            }
        }
        expected = StoredAs(y.DType, expected, scale, 1e-6);
        AssertClose(expected, y.ToFloatArray(), 1e-7, 1e-6, Describe("rotary", b, h, n, d, layout), scale);
    }

    [Fact]
    public void RotaryRejectsOddHeadDimAndWrongTables()
    {
        using var x = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 1, 4, 3);
        using var t = Tensor.Zeros(CpuBackend.Instance, DType.F32, 4, 3);
        Assert.Contains("even", Assert.Throws<ArgumentException>(() => x.Rotary(t, t)).Message);
        using var x2 = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 1, 4, 4);
        Assert.Contains("must be [4, 4]", Assert.Throws<ArgumentException>(() => x2.Rotary(t, t)).Message);
    }
}

/// <summary>Tests that measure process-wide memory run alone, so other tests' allocations do not count.</summary>
[CollectionDefinition(nameof(MemoryMeasurement), DisableParallelization = true)]
public class MemoryMeasurement
{
}

[Collection(nameof(MemoryMeasurement))]
public class CpuAttentionMemoryTests
{
    /// <summary>
    /// 20,000 queries and keys, one head: the score matrix alone would be 1.6 GB. The kernel must stay within its
    /// per-thread blocks and per-head packs: well under 64 MB of managed allocations and of resident-memory growth.
    /// </summary>
    [Fact]
    public void LongSequenceAttentionStaysMemoryBounded()
    {
        const int n = 20000, d = 32;
        using var q = Make([1, 1, n, d], Layouts.Contiguous, 31);
        using var k = Make([1, 1, n, d], Layouts.Contiguous, 32);
        using var v = Make([1, 1, n, d], Layouts.Contiguous, 33);
        using var output = Tensor.Empty(CpuBackend.Instance, DType.F32, 1, 1, n, d);
        // Warm up (JIT, thread pool) on a short prefix so only the long run is measured.
        using (var q0 = q.Tensor.Narrow(2, 0, 300))
        using (var k0 = k.Tensor.Narrow(2, 0, 300))
        using (var v0 = v.Tensor.Narrow(2, 0, 300))
        using (var warmup = Ops.Attention(q0, k0, v0, null, 0.2f))
        {
        }

        using var process = Process.GetCurrentProcess();
        process.Refresh();
        long residentBefore = process.WorkingSet64, residentPeak = residentBefore;
        long managedBefore = GC.GetTotalAllocatedBytes(precise: true);
        using var done = new ManualResetEventSlim();
        var sampler = new Thread(() =>
        {
            using var p = Process.GetCurrentProcess();
            while (!done.Wait(2))
            {
                p.Refresh();
                residentPeak = Math.Max(residentPeak, p.WorkingSet64);
            }
        });
        sampler.Start();
        Ops.AttentionInto(q.Tensor, k.Tensor, v.Tensor, null, 0.2f, output);
        done.Set();
        sampler.Join();
        long managed = GC.GetTotalAllocatedBytes(precise: true) - managedBefore;
        long resident = residentPeak - residentBefore;
        Assert.True(managed < 64L << 20, $"attention allocated {managed >> 20} MiB of managed memory for N = {n}");
        Assert.True(resident < 64L << 20, $"resident memory grew by {resident >> 20} MiB during attention for N = {n}");

        int[] rows = [0, 1, 4999, 12345, n - 1];
        var (expected, magnitude) = CpuAttentionTests.NaiveAttention(q.Values, k.Values, v.Values, null, null, 1, 1, n, n, d, 0.2, rows);
        var got = output.ToFloatArray();
        foreach (int i in rows)
            AssertClose(expected[(i * d)..((i + 1) * d)], got[(i * d)..((i + 1) * d)], 1e-6, 1e-5, $"row {i}", magnitude[(i * d)..((i + 1) * d)]);
    }
}
