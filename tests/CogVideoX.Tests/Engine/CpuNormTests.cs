using CogVideoX.Engine;
using static CogVideoX.Tests.Engine.OpTest;

namespace CogVideoX.Tests.Engine;

/// <summary>GroupNorm, LayerNorm, RmsNorm and Softmax against float64 two-pass loops.</summary>
public class CpuNormTests
{
    public static readonly (int[] Shape, int Groups)[] GroupShapes =
    [
        ([3, 5], 5),                  // rank 2: one element per group
        ([1, 4, 7], 2),
        ([2, 6, 3, 5, 7], 3),         // the VAE's [N, C, T, H, W]
        ([1, 32, 2, 9, 11], 32),
        ([2, 64, 1, 33, 40], 32),     // planes larger than one vector chunk per task
        ([1, 2, 40001], 1),           // one group over more than one parallel chunk
    ];

    public static TheoryData<int, bool, Activation> GroupNormCases()
    {
        var data = new TheoryData<int, bool, Activation>();
        for (int s = 0; s < GroupShapes.Length; s++)
        {
            data.Add(s, true, Activation.None);
            data.Add(s, false, Activation.None);
        }
        foreach (var a in Enum.GetValues<Activation>()) data.Add(2, true, a);
        return data;
    }

    [Theory]
    [MemberData(nameof(GroupNormCases))]
    public void GroupNormMatchesNaive(int shapeIndex, bool affine, Activation activation) =>
        CheckGroupNorm(GroupShapes[shapeIndex].Shape, GroupShapes[shapeIndex].Groups, affine, activation, Layouts.Contiguous);

    [Theory]
    [MemberData(nameof(AllLayoutCases))]
    public void GroupNormReadsAnyLayout(Layouts layout) => CheckGroupNorm([2, 6, 3, 5, 7], 3, true, Activation.Silu, layout);

    public static TheoryData<Layouts> AllLayoutCases()
    {
        var data = new TheoryData<Layouts>();
        foreach (var l in AllLayouts) data.Add(l);
        return data;
    }

    private static void CheckGroupNorm(int[] shape, int groups, bool affine, Activation activation, Layouts layout)
    {
        const float eps = 1e-6f;
        int n = shape[0], c = shape[1];
        long spatial = Count(shape) / (n * c);
        // An offset mean makes a one-pass variance visibly wrong.
        using var x = Make(shape, layout, 71, 2, 5);
        var paramLayout = layout is Layouts.F16 or Layouts.BF16 ? layout : Layouts.Contiguous;
        using var gamma = affine ? Make([c], paramLayout, 72, 0.5, 1.5) : null;
        using var beta = affine ? Make([c], paramLayout, 73) : null;
        using var y = x.Tensor.GroupNorm(groups, gamma?.Tensor, beta?.Tensor, eps, activation);
        var expected = new double[x.Values.Length];
        var scale = new double[x.Values.Length];
        long perGroup = c / groups * spatial;
        for (int g = 0; g < n * groups; g++)
        {
            var seg = x.Values.Skip((int)(g * perGroup)).Take((int)perGroup).ToArray();
            double mean = seg.Average();
            double variance = seg.Select(v => (v - mean) * (v - mean)).Average();
            double inv = 1 / Math.Sqrt(variance + eps);
            for (long i = 0; i < perGroup; i++)
            {
                int ch = (int)((g % groups) * (c / groups) + i / spatial);
                double z = (seg[i] - mean) * inv;
                double gm = gamma?.Values[ch] ?? 1, bt = beta?.Values[ch] ?? 0;
                expected[g * perGroup + i] = Activate(activation, z * gm + bt);
                scale[g * perGroup + i] = Slope(activation) * (Math.Abs(z * gm) + Math.Abs(bt) + 1);
            }
        }
        expected = StoredAs(y.DType, expected, scale, 1e-5);
        AssertClose(expected, y.ToFloatArray(), 1e-6, 1e-5, Describe("group_norm", Layout.Format(shape), groups, affine, activation, layout), scale);
    }

    public static readonly int[] FeatureSizes = [1, 7, 64, 67, 1920, 40001];

    public static TheoryData<int, int, Layouts> LayerNormCases()
    {
        var data = new TheoryData<int, int, Layouts>();
        foreach (var d in FeatureSizes)
            for (int affine = 0; affine < 3; affine++)
                data.Add(d, affine, Layouts.Contiguous);
        foreach (var l in AllLayouts.Skip(1)) data.Add(67, 2, l);
        return data;
    }

    /// <summary>affine: 0 none, 1 gamma only, 2 gamma and beta.</summary>
    [Theory]
    [MemberData(nameof(LayerNormCases))]
    public void LayerNormMatchesNaive(int d, int affine, Layouts layout)
    {
        const float eps = 1e-5f;
        const int rows = 5;
        using var x = Make([rows, d], layout, d, -1, 3);
        var paramLayout = layout is Layouts.F16 or Layouts.BF16 ? layout : Layouts.Contiguous;
        using var gamma = affine >= 1 ? Make([d], paramLayout, 81, 0.5, 1.5) : null;
        using var beta = affine >= 2 ? Make([d], paramLayout, 82) : null;
        using var y = x.Tensor.LayerNorm(gamma?.Tensor, beta?.Tensor, eps);
        var expected = new double[rows * d];
        var scale = new double[rows * d];
        for (int r = 0; r < rows; r++)
        {
            var row = x.Values.Skip(r * d).Take(d).ToArray();
            double mean = row.Average(), variance = row.Select(v => (v - mean) * (v - mean)).Average();
            double inv = 1 / Math.Sqrt(variance + eps);
            for (int i = 0; i < d; i++)
            {
                double z = (row[i] - mean) * inv * (gamma?.Values[i] ?? 1);
                expected[r * d + i] = z + (beta?.Values[i] ?? 0);
                scale[r * d + i] = Math.Abs(z) + Math.Abs(beta?.Values[i] ?? 0) + 1;
            }
        }
        expected = StoredAs(y.DType, expected, scale, 1e-5);
        AssertClose(expected, y.ToFloatArray(), 1e-6, 1e-5, Describe("layer_norm", d, affine, layout), scale);
    }

    public static TheoryData<int, bool, Layouts> RmsNormCases()
    {
        var data = new TheoryData<int, bool, Layouts>();
        foreach (var d in FeatureSizes)
        {
            data.Add(d, true, Layouts.Contiguous);
            data.Add(d, false, Layouts.Contiguous);
        }
        foreach (var l in AllLayouts.Skip(1)) data.Add(67, true, l);
        return data;
    }

    [Theory]
    [MemberData(nameof(RmsNormCases))]
    public void RmsNormMatchesNaive(int d, bool affine, Layouts layout)
    {
        const float eps = 1e-6f;
        const int rows = 4;
        using var x = Make([rows, d], layout, d + 1);
        var paramLayout = layout is Layouts.F16 or Layouts.BF16 ? layout : Layouts.Contiguous;
        using var gamma = affine ? Make([d], paramLayout, 91, 0.5, 1.5) : null;
        using var y = x.Tensor.RmsNorm(gamma?.Tensor, eps);
        var expected = new double[rows * d];
        for (int r = 0; r < rows; r++)
        {
            var row = x.Values.Skip(r * d).Take(d).ToArray();
            double inv = 1 / Math.Sqrt(row.Average(v => v * v) + eps);
            for (int i = 0; i < d; i++) expected[r * d + i] = row[i] * inv * (gamma?.Values[i] ?? 1);
        }
        var scale = expected.Select(v => Math.Abs(v) + 1e-3).ToArray();
        expected = StoredAs(y.DType, expected, scale, 1e-5);
        AssertClose(expected, y.ToFloatArray(), 1e-6, 1e-5, Describe("rms_norm", d, affine, layout), scale);
    }

    [Fact]
    public void NormsRejectBadGroupsAndParameterShapes()
    {
        using var x = Tensor.Zeros(CpuBackend.Instance, DType.F32, 2, 6, 4);
        using var p5 = Tensor.Zeros(CpuBackend.Instance, DType.F32, 5);
        Assert.Contains("groups", Assert.Throws<ArgumentException>(() => x.GroupNorm(4, null, null, 1e-5f)).Message);
        Assert.Contains("gamma", Assert.Throws<ArgumentException>(() => x.GroupNorm(3, p5, null, 1e-5f)).Message);
        Assert.Contains("beta", Assert.Throws<ArgumentException>(() => x.LayerNorm(null, p5, 1e-5f)).Message);
        Assert.Contains("gamma", Assert.Throws<ArgumentException>(() => x.RmsNorm(p5, 1e-5f)).Message);
    }

    public static TheoryData<int, Layouts> SoftmaxCases()
    {
        var data = new TheoryData<int, Layouts>();
        foreach (var d in new[] { 1, 7, 31, 1000, 40001 }) data.Add(d, Layouts.Contiguous);
        foreach (var l in AllLayouts.Skip(1)) data.Add(67, l);
        return data;
    }

    [Theory]
    [MemberData(nameof(SoftmaxCases))]
    public void SoftmaxMatchesNaiveWithMaskedEntriesAndRows(int d, Layouts layout)
    {
        const int rows = 4;
        var values = Random(rows * d, d, -8, 8);
        // Row 1: every third entry masked (but not all). Row 3: everything masked.
        for (int i = 0; i < d; i++)
        {
            if (i % 3 == 2) values[d + i] = float.NegativeInfinity;
            values[3 * d + i] = float.NegativeInfinity;
        }
        using var x = FromValues(values, [rows, d], layout);
        using var y = x.Tensor.Softmax();
        var expected = new double[rows * d];
        for (int r = 0; r < rows; r++)
        {
            var row = x.Values.Skip(r * d).Take(d).ToArray();
            double max = row.Max(), sum = row.Sum(v => Math.Exp(v - max));
            for (int i = 0; i < d; i++)
                expected[r * d + i] = double.IsNegativeInfinity(max) ? double.NaN : Math.Exp(row[i] - max) / sum;
        }
        var scale = expected.Select(v => Math.Abs(v) + 1e-30).ToArray();
        expected = StoredAs(y.DType, expected, scale, 1e-5);
        AssertClose(expected, y.ToFloatArray(), 1e-9, 1e-5, Describe("softmax", d, layout), scale);
    }
}
