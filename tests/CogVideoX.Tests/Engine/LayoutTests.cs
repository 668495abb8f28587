using CogVideoX.Engine;
using static CogVideoX.Tests.Engine.OpTest;

namespace CogVideoX.Tests.Engine;

/// <summary>Views: what shares storage, what copies, the values they expose and the errors they raise.</summary>
public class LayoutTests
{
    private static Tensor Iota(params int[] shape) =>
        Tensor.FromArray(Enumerable.Range(0, (int)Count(shape)).Select(i => (float)i).ToArray(), shape);

    /// <summary>Storage offsets of a layout's elements in row-major order: equal lists mean equal views.</summary>
    private static long[] Addresses(Layout l)
    {
        var shape = l.ShapeArray();
        var result = new long[l.ElementCount];
        var idx = new int[shape.Length];
        for (long i = 0; i < result.Length; i++)
        {
            long at = l.Offset;
            for (int d = 0; d < shape.Length; d++) at += idx[d] * l.Strides[d];
            result[i] = at;
            for (int d = shape.Length - 1; d >= 0; d--)
            {
                if (++idx[d] < shape[d]) break;
                idx[d] = 0;
            }
        }
        return result;
    }

    [Fact]
    public void ReshapeOfContiguousIsAViewAndOfTransposedIsACopy()
    {
        using var t = Iota(3, 4);
        using var r = t.Reshape(2, -1, 3);
        Assert.Same(t.Storage, r.Storage);
        Assert.Equal(new[] { 2, 2, 3 }, r.ShapeArray());
        using var tt = t.Transpose(0, 1);
        using var flat = tt.Reshape(12);
        Assert.NotSame(t.Storage, flat.Storage);
        Assert.Equal(new float[] { 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11 }, flat.ToFloatArray());
        // Splitting a dim of the transposed view needs no copy.
        using var split = tt.Reshape(2, 2, 3);
        Assert.Same(t.Storage, split.Storage);
        Assert.Equal(new float[] { 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11 }, split.ToFloatArray());
    }

    [Fact]
    public void ReshapeRejectsBadShapes()
    {
        using var t = Iota(3, 4);
        Assert.Contains("only one", Assert.Throws<ArgumentException>(() => t.Reshape(-1, -1)).Message);
        Assert.Contains("cannot infer", Assert.Throws<ArgumentException>(() => t.Reshape(5, -1)).Message);
        Assert.Contains("cannot reshape", Assert.Throws<ArgumentException>(() => t.Reshape(5, 2)).Message);
    }

    /// <summary>Non-contiguous layouts, a target shape, and whether torch can view it without a copy.</summary>
    public static TheoryData<string, int[], bool> ReshapeCases() => new()
    {
        { "narrow-cols", [12], false },
        { "narrow-cols", [4, 3, 1], true },
        { "narrow-cols", [2, 2, 3], true },
        { "narrow-rows", [12], true },
        { "transposed", [12], false },
        { "transposed", [4, 3, 1], true },
        { "transposed", [2, 2, 3], true },
        { "permuted", [3, 8], false },
        { "permuted", [6, 4], false },
        { "permuted", [3, 2, 2, 2], true },
        { "broadcast", [12], false },
        { "broadcast", [3, 2, 2], true },
        { "stepped", [5, 1], true },
        { "stepped", [1, 5], true },
        { "size-one", [2, 3], true },
    };

    private static Layout NamedLayout(string name) => name switch
    {
        "narrow-cols" => Layout.Contiguous(4, 6).Narrow(1, 0, 3),      // [4, 3] strides (6, 1)
        "narrow-rows" => Layout.Contiguous(4, 6).Narrow(0, 1, 2),      // [2, 6] contiguous rows
        "transposed" => Layout.Contiguous(3, 4).Transpose(0, 1),       // [4, 3] strides (1, 4)
        "permuted" => Layout.Contiguous(2, 3, 4).Permute(1, 0, 2),     // [3, 2, 4] strides (4, 12, 1)
        "broadcast" => Layout.Contiguous(3, 1).BroadcastTo([3, 4]),    // [3, 4] strides (1, 0)
        "stepped" => Layout.Contiguous(10).Slice(0, 0, 10, 2),         // [5] stride 2
        "size-one" => new Layout([2, 1, 3], [3, 999, 1], 0),           // a size-1 dim with any stride
        _ => throw new ArgumentException(name),
    };

    [Theory]
    [MemberData(nameof(ReshapeCases))]
    public void TryReshapeViewsExactlyWhenTheStridesAllow(string layout, int[] shape, bool viewable)
    {
        var l = NamedLayout(layout);
        var v = l.TryReshape(shape);
        Assert.Equal(viewable, v is not null);
        if (v is null) return;
        Assert.Equal(shape, v.ShapeArray());
        Assert.Equal(Addresses(l), Addresses(v));
    }

    [Fact]
    public void NarrowSliceAndSelectExposeTheRightElements()
    {
        using var t = Iota(4, 10);
        using var n = t.Narrow(1, 2, 3);
        Assert.Equal(new float[] { 2, 3, 4, 12, 13, 14, 22, 23, 24, 32, 33, 34 }, n.ToFloatArray());
        using var s = t.Slice(1, 1, 10, 4);
        Assert.Equal(new float[] { 1, 5, 9, 11, 15, 19, 21, 25, 29, 31, 35, 39 }, s.ToFloatArray());
        using var clamped = t.Slice(0, 2, 100);
        Assert.Equal(new[] { 2, 10 }, clamped.ShapeArray());
        using var empty = t.Slice(0, 4, 4);
        Assert.Equal(0, empty.ElementCount);
        using var row = t.Select(0, 2);
        Assert.Equal(Enumerable.Range(20, 10).Select(i => (float)i), row.ToFloatArray());
        using var col = t.Select(-1, 7);
        Assert.Equal(new float[] { 7, 17, 27, 37 }, col.ToFloatArray());
        Assert.Same(t.Storage, col.Storage);
    }

    [Fact]
    public void ViewOperationsRejectOutOfRangeArguments()
    {
        using var t = Iota(4, 10);
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Narrow(1, 8, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Narrow(2, 0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Slice(1, 0, 5, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Slice(1, 6, 5));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Select(0, 4));
        Assert.Contains("repeats", Assert.Throws<ArgumentException>(() => t.Permute(0, 0)).Message);
        Assert.Contains("needs 2", Assert.Throws<ArgumentException>(() => t.Permute(0)).Message);
        Assert.Contains("cannot squeeze", Assert.Throws<ArgumentException>(() => t.Squeeze(0)).Message);
        Assert.Contains("equal chunks", Assert.Throws<ArgumentException>(() => t.Chunk(3, 1)).Message);
    }

    [Fact]
    public void BroadcastToAddsStrideZeroDimsAndRejectsIncompatibleShapes()
    {
        using var t = Iota(3, 1);
        using var b = t.BroadcastTo(2, 3, 4);
        Assert.Equal(new long[] { 0, 1, 0 }, b.Layout.StridesArray());
        Assert.Equal(new float[] { 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2 }, b.ToFloatArray());
        Assert.Contains("cannot broadcast", Assert.Throws<ArgumentException>(() => t.BroadcastTo(4, 4)).Message);
        Assert.Contains("cannot broadcast", Assert.Throws<ArgumentException>(() => t.BroadcastTo(3)).Message);
    }

    [Fact]
    public void UnsqueezeSqueezeTransposeAndChunkAreViews()
    {
        using var t = Iota(2, 3);
        using var u = t.Unsqueeze(1);
        Assert.Equal(new[] { 2, 1, 3 }, u.ShapeArray());
        using var ue = t.Unsqueeze(-1);
        Assert.Equal(new[] { 2, 3, 1 }, ue.ShapeArray());
        using var s = u.Squeeze(1);
        Assert.Equal(t.ToFloatArray(), s.ToFloatArray());
        using var tr = t.Transpose(-1, 0);
        Assert.Equal(new float[] { 0, 3, 1, 4, 2, 5 }, tr.ToFloatArray());
        var parts = t.Chunk(3, 1);
        Assert.Equal(new float[] { 1, 4 }, parts[1].ToFloatArray());
        foreach (var p in parts)
        {
            Assert.Same(t.Storage, p.Storage);
            p.Dispose();
        }
    }

    [Fact]
    public void IsContiguousIgnoresStridesOfSizeOneDims()
    {
        Assert.True(new Layout([2, 1, 3], [3, 999, 1], 0).IsContiguous);
        Assert.False(Layout.Contiguous(3, 4).Transpose(0, 1).IsContiguous);
        Assert.True(Layout.Contiguous(4, 6).Narrow(0, 1, 2).IsContiguous);
    }

    [Fact]
    public void StorageLivesUntilTheLastViewIsDisposed()
    {
        var t = Iota(4);
        var v = t.Narrow(0, 1, 2);
        t.Dispose();
        Assert.False(v.Storage.IsFreed);
        Assert.Equal(new float[] { 1, 2 }, v.ToFloatArray());
        v.Dispose();
        Assert.True(v.Storage.IsFreed);
        Assert.Throws<ObjectDisposedException>(() => v.ToFloatArray());
        Assert.Throws<ObjectDisposedException>(() => t.Narrow(0, 0, 1));
    }

    [Fact]
    public void LayoutsThatReachOutsideTheStorageAreRefused()
    {
        using var t = Iota(4);
        t.Storage.AddRef();
        try
        {
            Assert.Contains("reaches outside", Assert.Throws<ArgumentException>(() => Tensor.FromStorage(t.Storage, new Layout([5], [1], 0))).Message);
            Assert.Contains("reaches outside", Assert.Throws<ArgumentException>(() => Tensor.FromStorage(t.Storage, new Layout([2], [-1], 0))).Message);
        }
        finally
        {
            t.Storage.Release();
        }
        Assert.Throws<ArgumentException>(() => new Layout([2], [1, 1], 0));
        Assert.Contains("negative", Assert.Throws<ArgumentException>(() => new Layout([-1], [1], 0)).Message);
    }
}
