using System.Runtime.InteropServices;
using CogVideoX.Engine;
using static CogVideoX.Tests.Engine.OpTest;

namespace CogVideoX.Tests.Engine;

/// <summary>Copy (into views, across dtypes), dtype rounding, gather and the copy-based shape ops.</summary>
public class CpuCopyTests
{
    private static readonly DType[] FloatTypes = [DType.F32, DType.F16, DType.BF16];

    /// <summary>Views of a [4, 9, 10] base tensor and, for each view element, its index in the base.</summary>
    public enum ViewKind
    {
        Narrow,
        SliceWithStep,
        Permute,
        Select,
        Whole,
    }

    private static (Tensor View, int[] Shape, Func<int[], int> BaseIndex) ViewOf(Tensor b, ViewKind kind)
    {
        static int At(int i, int j, int k) => (i * 9 + j) * 10 + k;
        switch (kind)
        {
            case ViewKind.Narrow:
                {
                    using var n = b.Narrow(1, 2, 5);
                    return (n.Narrow(2, 3, 6), [4, 5, 6], x => At(x[0], x[1] + 2, x[2] + 3));
                }
            case ViewKind.SliceWithStep:
                return (b.Slice(2, 1, 10, 3), [4, 9, 3], x => At(x[0], x[1], 1 + 3 * x[2]));
            case ViewKind.Permute:
                return (b.Permute(2, 0, 1), [10, 4, 9], x => At(x[1], x[2], x[0]));
            case ViewKind.Select:
                return (b.Select(1, 4), [4, 10], x => At(x[0], 4, x[1]));
            default:
                return (b.Alias(), [4, 9, 10], x => At(x[0], x[1], x[2]));
        }
    }

    public static TheoryData<ViewKind, Layouts, DType> CopyCases()
    {
        var data = new TheoryData<ViewKind, Layouts, DType>();
        foreach (var kind in Enum.GetValues<ViewKind>())
            foreach (var layout in AllLayouts)
                foreach (var dt in FloatTypes)
                    data.Add(kind, layout, dt);
        return data;
    }

    [Theory]
    [MemberData(nameof(CopyCases))]
    public void CopyIntoViewWritesExactlyTheViewConvertingDType(ViewKind kind, Layouts sourceLayout, DType destination)
    {
        using var baseTensor = Tensor.Full(CpuBackend.Instance, destination, double.NaN, 4, 9, 10);
        var (view, shape, baseIndex) = ViewOf(baseTensor, kind);
        using (view)
        {
            Assert.Equal(shape, view.ShapeArray());
            using var source = Make(shape, sourceLayout, 101, -100, 100);
            source.Tensor.CopyTo(view);
            var got = baseTensor.ToFloatArray();
            var expected = Enumerable.Repeat(double.NaN, got.Length).ToArray();
            var idx = new int[shape.Length];
            for (int i = 0; i < source.Values.Length; i++)
            {
                expected[baseIndex(idx)] = Round((float)source.Values[i], destination);
                for (int d = shape.Length - 1; d >= 0; d--)
                {
                    if (++idx[d] < shape[d]) break;
                    idx[d] = 0;
                }
            }
            AssertClose(expected, got, 0, 0, Describe("copy", kind, sourceLayout, "→", destination));
        }
    }

    /// <summary>Rows longer than one parallel piece of a copy (65,536 elements), strided and converting.</summary>
    [Theory]
    [InlineData(Layouts.Strided, DType.F32)]
    [InlineData(Layouts.Strided, DType.BF16)]
    [InlineData(Layouts.Contiguous, DType.F16)]
    [InlineData(Layouts.BF16, DType.F32)]
    public void LongRowsCopyInPiecesExactly(Layouts layout, DType destination)
    {
        using var source = Make([2, 140003], layout, 7, -1000, 1000);
        using var y = source.Tensor.To(destination);
        var expected = source.Values.Select(v => Round((float)v, destination)).ToArray();
        AssertClose(expected, y.ToFloatArray(), 0, 0, Describe("long copy", layout, destination));
    }

    [Fact]
    public void CopyRejectsDifferentShapes()
    {
        using var a = Tensor.Zeros(CpuBackend.Instance, DType.F32, 2, 3);
        using var b = Tensor.Zeros(CpuBackend.Instance, DType.F32, 3, 2);
        Assert.Contains("shapes differ", Assert.Throws<ArgumentException>(() => a.CopyTo(b)).Message);
    }

    /// <summary>Contiguous() of transposed and permuted views (8 × 8 register transposes where both dims allow).</summary>
    [Theory]
    [InlineData(new[] { 67, 13 }, new[] { 1, 0 })]
    [InlineData(new[] { 3, 37, 41 }, new[] { 2, 0, 1 })]
    [InlineData(new[] { 5, 8, 8 }, new[] { 0, 2, 1 })]
    [InlineData(new[] { 9, 7 }, new[] { 1, 0 })]
    [InlineData(new[] { 2, 3, 64, 40 }, new[] { 0, 3, 1, 2 })]
    [InlineData(new[] { 130, 200 }, new[] { 1, 0 })]
    [InlineData(new[] { 1, 16, 1, 16 }, new[] { 3, 2, 1, 0 })]
    public void ContiguousOfPermutedViewIsExact(int[] stored, int[] perm)
    {
        var data = Random((int)Count(stored), 7);
        using var t = Tensor.FromArray(data, stored);
        using var p = t.Permute(perm);
        using var c = p.Contiguous();
        Assert.True(c.IsContiguous);
        var shape = perm.Select(d => stored[d]).ToArray();
        var strides = RowMajorStrides(stored);
        var expected = Gather(data, shape, perm.Select(d => strides[d]).ToArray(), 0);
        AssertClose(expected, c.ToFloatArray(), 0, 0, Describe("contiguous", Layout.Format(stored), string.Join(",", perm)));
    }

    // ---- dtype conversions ----

    /// <summary>Every finite half value plus infinity (valued at the next power of two), sorted, for a nearest-even search.</summary>
    private static (double Value, ushort Bits)[] HalfGrid(DType dtype)
    {
        var grid = new List<(double, ushort)>();
        for (int bits = 0; bits < 0x8000; bits++)
        {
            double v = dtype == DType.F16
                ? (double)BitConverter.UInt16BitsToHalf((ushort)bits)
                : BitConverter.Int32BitsToSingle(bits << 16);
            if (double.IsNaN(v)) continue;
            if (double.IsInfinity(v)) v = dtype == DType.F16 ? 65536.0 : Math.Pow(2, 128);
            grid.Add((v, (ushort)bits));
        }
        return grid.OrderBy(g => g.Item1).ToArray();
    }

    /// <summary>The reference rounding: nearest representable value, ties to the even bit pattern, sign applied after.</summary>
    private static ushort NearestEven((double Value, ushort Bits)[] grid, float x)
    {
        double a = Math.Abs((double)x);
        ushort sign = (ushort)(BitConverter.SingleToUInt32Bits(x) >> 31 << 15);
        int lo = 0, hi = grid.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) / 2;
            if (grid[mid].Value >= a) hi = mid;
            else lo = mid + 1;
        }
        if (hi == grid.Length) return (ushort)(sign | grid[^1].Bits);
        if (hi == 0 || grid[hi].Value == a) return (ushort)(sign | grid[hi].Bits);
        var (lv, lb) = grid[hi - 1];
        var (hv, hb) = grid[hi];
        ushort bits = (a - lv) < (hv - a) ? lb : (a - lv) > (hv - a) ? hb : ((lb & 1) == 0 ? lb : hb);
        return (ushort)(sign | bits);
    }

    /// <summary>Values that stress rounding: ties between neighbours, subnormals, overflow, zeros, infinities.</summary>
    private static float[] RoundingProbes(DType dtype)
    {
        var r = new Random(5);
        var values = new List<float> { 0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue, -float.MaxValue, float.Epsilon };
        var grid = HalfGrid(dtype);
        // Exact midpoints and their float32 neighbours, between random grid neighbours.
        for (int i = 0; i < 400; i++)
        {
            int at = r.Next(1, grid.Length - 1);
            float mid = (float)((grid[at - 1].Value + grid[at].Value) / 2);
            values.Add(mid);
            values.Add(MathF.BitIncrement(mid));
            values.Add(MathF.BitDecrement(mid));
            values.Add(-mid);
        }
        for (int i = 0; i < 400; i++) values.Add((float)(r.NextDouble() * 2 - 1) * MathF.Pow(2, r.Next(-30, 20)));
        if (dtype == DType.F16)
        {
            // Subnormal halves (below 2^-14), the smallest one and half of it, the overflow boundary 65520.
            for (int i = 0; i < 200; i++) values.Add((float)(r.NextDouble() * Math.Pow(2, -14)));
            values.AddRange([MathF.Pow(2, -24), MathF.Pow(2, -25), 3 * MathF.Pow(2, -26), 65504f, 65519.99f, 65520f, 70000f]);
        }
        return values.ToArray();
    }

    [Theory]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    public void FloatToHalfRoundsToNearestEven(DType dtype)
    {
        var grid = HalfGrid(dtype);
        var values = RoundingProbes(dtype);
        using var f32 = Tensor.FromArray(values, [values.Length]);
        using var half = f32.To(dtype);
        var bits = MemoryMarshal.Cast<byte, ushort>(CpuBackend.Bytes(half)).ToArray();
        for (int i = 0; i < values.Length; i++)
        {
            ushort expected = NearestEven(grid, values[i]);
            ushort scalar = dtype == DType.F16 ? DTypes.FloatToF16(values[i]) : DTypes.FloatToBF16(values[i]);
            Assert.True(expected == bits[i], $"{dtype}: {values[i]:R} became 0x{bits[i]:X4}, expected 0x{expected:X4}");
            Assert.True(expected == scalar, $"{dtype} scalar: {values[i]:R} became 0x{scalar:X4}, expected 0x{expected:X4}");
        }
    }

    [Fact]
    public void BF16KeepsNaNQuietWithItsSign()
    {
        float[] nans = [float.NaN, -float.NaN, BitConverter.Int32BitsToSingle(0x7F80_0001), BitConverter.Int32BitsToSingle(unchecked((int)0xFF80_0001))];
        var values = Enumerable.Repeat(nans, 5).SelectMany(v => v).ToArray(); // 20: through the vector path and the tail
        using var f32 = Tensor.FromArray(values, [values.Length]);
        using var bf = f32.To(DType.BF16);
        var bits = MemoryMarshal.Cast<byte, ushort>(CpuBackend.Bytes(bf)).ToArray();
        for (int i = 0; i < values.Length; i++)
        {
            Assert.True((bits[i] & 0x7F80) == 0x7F80 && (bits[i] & 0x7F) != 0, $"0x{bits[i]:X4} is not a NaN");
            Assert.True((bits[i] & 0x40) != 0, $"0x{bits[i]:X4} is not quiet");
            Assert.Equal(BitConverter.SingleToUInt32Bits(values[i]) >> 31, (uint)bits[i] >> 15);
        }
    }

    [Theory]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    public void EveryHalfValueWidensExactly(DType dtype)
    {
        var all = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        using var half = Tensor.FromBytes(MemoryMarshal.AsBytes(all.AsSpan()), dtype, [all.Length]);
        using var wide = half.To(DType.F32);
        var got = MemoryMarshal.Cast<byte, uint>(CpuBackend.Bytes(wide)).ToArray();
        for (int i = 0; i < all.Length; i++)
        {
            float expected = dtype == DType.F16 ? (float)BitConverter.UInt16BitsToHalf(all[i]) : BitConverter.Int32BitsToSingle(i << 16);
            float actual = BitConverter.UInt32BitsToSingle(got[i]);
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(actual), $"0x{i:X4} → {actual}");
            else Assert.True(BitConverter.SingleToUInt32Bits(expected) == got[i], $"{dtype} 0x{i:X4} widened to {actual:R}, expected {expected:R}");
        }
    }

    [Fact]
    public void IntegerConversionsTruncateTowardZero()
    {
        using var f = Tensor.FromArray([-2.7f, -0.5f, 0f, 0.9f, 3.5f, 1e6f], [6]);
        using var i = f.To(DType.I64);
        Assert.Equal([-2L, 0L, 0L, 0L, 3L, 1000000L], i.ToLongArray());
        using var back = Tensor.FromArray([-5L, 0L, 7L, 2048L], [4]);
        foreach (var dt in FloatTypes)
        {
            using var converted = back.To(dt);
            Assert.Equal([-5f, 0f, 7f, 2048f], converted.ToFloatArray());
        }
    }

    // ---- gather ----

    public static TheoryData<Layouts> TableLayouts()
    {
        var data = new TheoryData<Layouts>();
        foreach (var l in AllLayouts) data.Add(l);
        return data;
    }

    [Theory]
    [MemberData(nameof(TableLayouts))]
    public void EmbeddingGathersRowsInIdShape(Layouts layout)
    {
        const int v = 31, d = 67;
        using var table = Make([v, d], layout, 111);
        long[] ids = [0, 30, 7, 7, 12, 0];
        using var tid = Tensor.FromArray(ids, [2, 3]);
        using var y = table.Tensor.Embedding(tid);
        Assert.Equal(new[] { 2, 3, d }, y.ShapeArray());
        Assert.Equal(table.Tensor.DType, y.DType);
        var expected = ids.SelectMany(id => table.Values.Skip((int)id * d).Take(d)).ToArray();
        AssertClose(expected, y.ToFloatArray(), 0, 0, Describe("embedding", layout));
    }

    [Theory]
    [InlineData(31L)]
    [InlineData(-1L)]
    [InlineData(long.MaxValue)]
    public void GatherRejectsOutOfRangeIdsBeforeWriting(long bad)
    {
        using var table = Make([31, 5], Layouts.Contiguous, 1);
        using var ids = Tensor.FromArray([3L, bad, 4L], [3]);
        using var y = Tensor.Full(CpuBackend.Instance, DType.F32, -9, 3, 5);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => CpuBackend.Instance.Gather(table.Tensor, ids, y));
        Assert.Contains($"id {bad}", e.Message);
        Assert.Contains("31 rows", e.Message);
        Assert.All(y.ToFloatArray(), x => Assert.Equal(-9f, x));
        Assert.Throws<ArgumentOutOfRangeException>(() => table.Tensor.Embedding(ids));
    }

    [Fact]
    public void EmbeddingRejectsFloatIds()
    {
        using var table = Tensor.Zeros(CpuBackend.Instance, DType.F32, 4, 2);
        using var ids = Tensor.Zeros(CpuBackend.Instance, DType.F32, 3);
        Assert.Contains("I64", Assert.Throws<ArgumentException>(() => table.Embedding(ids)).Message);
    }

    // ---- concat, stack, pad, upsample, repeat ----

    public static TheoryData<int, Layouts> ConcatCases()
    {
        var data = new TheoryData<int, Layouts>();
        foreach (var dim in new[] { 0, 1, 2, -1 })
            foreach (var l in AllLayouts) data.Add(dim, l);
        return data;
    }

    [Theory]
    [MemberData(nameof(ConcatCases))]
    public void ConcatJoinsAlongAnyDimIncludingEmptyParts(int dim, Layouts layout)
    {
        int d = dim < 0 ? dim + 3 : dim;
        int[] sizes = [3, 0, 5, 1];
        var parts = sizes.Select((s, i) =>
        {
            int[] shape = [2, 4, 6];
            shape[d] = s;
            return Make(shape, layout, 120 + i);
        }).ToArray();
        try
        {
            using var y = Ops.Concat(dim, parts.Select(p => p.Tensor).ToArray());
            int[] outShape = [2, 4, 6];
            outShape[d] = sizes.Sum();
            Assert.Equal(outShape, y.ShapeArray());
            var expected = new double[Count(outShape)];
            var idx = new int[3];
            for (int i = 0; i < expected.Length; i++)
            {
                int part = 0, at = idx[d];
                while (at >= sizes[part]) at -= sizes[part++];
                int[] ps = [2, 4, 6];
                ps[d] = sizes[part];
                int[] pi = (int[])idx.Clone();
                pi[d] = at;
                expected[i] = parts[part].Values[Index(ps, pi)];
                for (int k = 2; k >= 0; k--)
                {
                    if (++idx[k] < outShape[k]) break;
                    idx[k] = 0;
                }
            }
            AssertClose(expected, y.ToFloatArray(), 0, 0, Describe("concat", dim, layout));
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(-1)]
    public void StackAddsADim(int dim)
    {
        using var a = Make([3, 4], Layouts.Contiguous, 1);
        using var b = Make([3, 4], Layouts.Permuted, 2);
        using var y = Ops.Stack(dim, a.Tensor, b.Tensor);
        int d = dim < 0 ? dim + 3 : dim;
        var expectedShape = new List<int> { 3, 4 };
        expectedShape.Insert(d, 2);
        Assert.Equal(expectedShape.ToArray(), y.ShapeArray());
        var got = y.ToFloatArray();
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++)
                for (int s = 0; s < 2; s++)
                {
                    int[] at = d switch { 0 => [s, i, j], 1 => [i, s, j], _ => [i, j, s] };
                    Assert.Equal((s == 0 ? a : b).Values[i * 4 + j], got[Index(y.ShapeArray(), at)]);
                }
    }

    [Theory]
    [InlineData(Layouts.Contiguous)]
    [InlineData(Layouts.Strided)]
    [InlineData(Layouts.F16)]
    public void PadSurroundsWithTheValue(Layouts layout)
    {
        using var x = Make([2, 3, 4], layout, 9);
        using var y = x.Tensor.Pad([(1, 2), (0, 0), (3, 1)], -7f);
        Assert.Equal(new[] { 5, 3, 8 }, y.ShapeArray());
        var got = y.ToFloatArray();
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 3; j++)
                for (int k = 0; k < 8; k++)
                {
                    bool inside = i >= 1 && i < 3 && k >= 3 && k < 7;
                    double e = inside ? x.Values[Index([2, 3, 4], i - 1, j, k - 3)] : -7;
                    Assert.Equal(e, got[Index([5, 3, 8], i, j, k)]);
                }
        Assert.Throws<ArgumentException>(() => x.Tensor.Pad([(-1, 0)]));
    }

    [Theory]
    [InlineData(new[] { 1, 2, 3, 4 }, new[] { 2, 2 })]
    [InlineData(new[] { 2, 3, 4, 5 }, new[] { 1, 2, 3 })]
    [InlineData(new[] { 3, 7 }, new[] { 1 })]
    public void UpsampleNearestRepeatsEachElement(int[] shape, int[] factors)
    {
        using var x = Make(shape, Layouts.Permuted, 4);
        using var y = x.Tensor.UpsampleNearest(factors);
        int r = shape.Length, k = factors.Length;
        var outShape = shape.Select((s, i) => i >= r - k ? s * factors[i - (r - k)] : s).ToArray();
        Assert.Equal(outShape, y.ShapeArray());
        var got = y.ToFloatArray();
        var idx = new int[r];
        for (int i = 0; i < got.Length; i++)
        {
            var src = idx.Select((v, dd) => dd >= r - k ? v / factors[dd - (r - k)] : v).ToArray();
            Assert.Equal(x.Values[Index(shape, src)], got[i]);
            for (int dd = r - 1; dd >= 0; dd--)
            {
                if (++idx[dd] < outShape[dd]) break;
                idx[dd] = 0;
            }
        }
        Assert.Throws<ArgumentException>(() => x.Tensor.UpsampleNearest(0));
    }

    [Fact]
    public void RepeatTilesLikeTorch()
    {
        using var x = Make([2, 1, 3], Layouts.Strided, 3);
        using var y = x.Tensor.Repeat(2, 4, 1);
        Assert.Equal(new[] { 4, 4, 3 }, y.ShapeArray());
        var got = y.ToFloatArray();
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < 3; k++)
                    Assert.Equal(x.Values[Index([2, 1, 3], i % 2, 0, k)], got[Index([4, 4, 3], i, j, k)]);
        Assert.Throws<ArgumentException>(() => x.Tensor.Repeat(2, 2));
    }

    [Fact]
    public void ShapeOpsRejectMismatchedParts()
    {
        using var a = Tensor.Zeros(CpuBackend.Instance, DType.F32, 2, 3);
        using var b = Tensor.Zeros(CpuBackend.Instance, DType.F32, 2, 4);
        using var h = Tensor.Zeros(CpuBackend.Instance, DType.F16, 2, 3);
        Assert.Contains("differ in dim 1", Assert.Throws<ArgumentException>(() => Ops.Concat(0, a, b)).Message);
        Assert.Contains("dtypes differ", Assert.Throws<ArgumentException>(() => Ops.Concat(0, a, h)).Message);
        Assert.Throws<ArgumentException>(() => Ops.Concat(0));
    }
}
