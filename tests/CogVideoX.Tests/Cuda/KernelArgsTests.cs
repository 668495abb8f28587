using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CogVideoX.Engine.Cuda;

namespace CogVideoX.Tests.Cuda;

/// <summary>
/// The argument structs are passed to kernels by value, so their C# layout must equal the C structs'. Each .cu
/// file static_asserts the same sizes, so a change on one side only fails on both the GPU and here.
/// </summary>
public class KernelArgsTests
{
    [Fact]
    public void StructSizesMatchTheKernels()
    {
        Assert.Equal(272, Unsafe.SizeOf<IndexMap3>());
        Assert.Equal(288, Unsafe.SizeOf<CopyArgs>());
        Assert.Equal(288, Unsafe.SizeOf<FillArgs>());
        Assert.Equal(304, Unsafe.SizeOf<MapArgs>());
        Assert.Equal(304, Unsafe.SizeOf<BinaryArgs>());
        Assert.Equal(40, Unsafe.SizeOf<ChannelBiasArgs>());
        Assert.Equal(48, Unsafe.SizeOf<Fp8QuantizeArgs>());
        Assert.Equal(48, Unsafe.SizeOf<Fp8RowsArgs>());
        Assert.Equal(64, Unsafe.SizeOf<Fp8EpilogueArgs>());
        Assert.Equal(24, Unsafe.SizeOf<Fp8DecodeArgs>());
        Assert.Equal(40, Unsafe.SizeOf<Fp8BiasActArgs>());
        Assert.Equal(56, Unsafe.SizeOf<RowArgs>());
        Assert.Equal(32, Unsafe.SizeOf<GroupStatsArgs>());
        Assert.Equal(40, Unsafe.SizeOf<GroupFinalizeArgs>());
        Assert.Equal(72, Unsafe.SizeOf<GroupApplyArgs>());
        Assert.Equal(120, Unsafe.SizeOf<RotaryArgs>());
        Assert.Equal(168, Unsafe.SizeOf<RowMap4>());
        Assert.Equal(272, Unsafe.SizeOf<LnRowsArgs>());
        Assert.Equal(216, Unsafe.SizeOf<AddMulArgs>());
        Assert.Equal(104, Unsafe.SizeOf<SpatialNormArgs>());
        Assert.Equal(64, Unsafe.SizeOf<UpsampleArgs>());
        Assert.Equal(40, Unsafe.SizeOf<GatherArgs>());
        Assert.Equal(96, Unsafe.SizeOf<Im2ColArgs>());
        Assert.Equal(232, Unsafe.SizeOf<AttentionArgs>());
        Assert.Equal(640, Unsafe.SizeOf<TmaAttentionArgs>());
        Assert.Equal(384, (int)Marshal.OffsetOf<TmaAttentionArgs>(nameof(TmaAttentionArgs.Args)));
    }

    [Fact]
    public void EveryKernelSourceAssertsItsStructSizes()
    {
        var dir = Path.Combine(Fixtures.RepoRoot, "src", "CogVideoX.Engine.Cuda", "Kernels");
        var text = string.Concat(Directory.GetFiles(dir, "*.cu*").Select(File.ReadAllText));
        foreach (var (name, size) in new[] { ("IndexMap3", 272), ("CopyArgs", 288), ("AttentionArgs", 232), ("TmaAttentionArgs", 640), ("Im2ColArgs", 96), ("RowArgs", 56), ("RotaryArgs", 120), ("RowMap4", 168), ("LnRowsArgs", 272), ("AddMulArgs", 216), ("SpatialNormArgs", 104), ("UpsampleArgs", 64), ("Fp8QuantizeArgs", 48), ("Fp8RowsArgs", 48), ("Fp8EpilogueArgs", 64), ("Fp8DecodeArgs", 24), ("Fp8BiasActArgs", 40) })
            Assert.Contains($"static_assert(sizeof({name}) == {size}", text);
    }

    [Fact]
    public unsafe void ContiguousLayoutsCollapseToOneDim()
    {
        var m = IndexMap3.Create([4, 5, 6], [30, 6, 1], [30, 6, 1], default);
        Assert.Equal(1, m.Rank);
        Assert.Equal(120, m.Shape[0]);
        Assert.Equal(1, m.Strides[0]);
        Assert.Equal(120, m.Count);
    }

    [Fact]
    public unsafe void TransposedAndBroadcastDimsStaySeparate()
    {
        // source transposed [6,4] view of a [4,6] buffer, destination contiguous
        var t = IndexMap3.Create([6, 4], [1, 6], [4, 1], default);
        Assert.Equal(2, t.Rank);
        Assert.Equal(6, t.Shape[0]);
        Assert.Equal(1, t.Strides[0]);
        Assert.Equal(6, t.Strides[1]);
        // a [7,1,13] + b [5,1] broadcast to [7,5,13]: size-1 dims vanish, broadcast dims keep stride 0
        var b = IndexMap3.Create([7, 5, 13], [13, 0, 1], [0, 1, 0], [65, 13, 1]);
        Assert.Equal(3, b.Rank);
        Assert.Equal(0, b.Strides[1]);
        Assert.Equal(0, b.Strides[IndexMap3.MaxDims + 0]);
        Assert.Equal(1, b.Strides[IndexMap3.MaxDims + 1]);
    }

    [Fact]
    public unsafe void SizeOneDimsAreDroppedAndEmptyShapesGiveOneElement()
    {
        var m = IndexMap3.Create([1, 3, 1], [99, 7, 55], [3, 1, 1], default);
        Assert.Equal(1, m.Rank);
        Assert.Equal(3, m.Shape[0]);
        Assert.Equal(7, m.Strides[0]);
        var s = IndexMap3.Create([], [], [], default);
        Assert.Equal(1, s.Count);
        Assert.Equal(1, s.Rank);
    }

    [Fact]
    public void MoreThanEightIndependentDimsAreRefused()
    {
        int[] shape = [2, 2, 2, 2, 2, 2, 2, 2, 2];
        long[] strides = [1, 2, 4, 8, 16, 32, 64, 128, 256];  // reversed: nothing merges
        Assert.Throws<NotSupportedException>(() => IndexMap3.Create(shape, strides, strides, default));
    }

    [Fact]
    public unsafe void ContiguousAndRowBroadcastMapsMoveEightElementsPerAccess()
    {
        // [64, 40] + [40] broadcast: rows of 40 = 5 vectors, the bias re-read for each row.
        var m = IndexMap3.Create([64, 40], [40, 1], [0, 1], [40, 1]);
        m.TryVectorise(3, [0, 256, 512]);
        Assert.Equal(IndexMap3.Vector8 | IndexMap3.Index32, m.Flags);
        Assert.Equal(64 * 5, m.Count);
        Assert.Equal(5, m.Shape[1]);
        Assert.Equal(5, m.Strides[0]);
        Assert.Equal(0, m.Strides[IndexMap3.MaxDims]);
    }

    [Fact]
    public void MapsThatCannotMoveEightElementsStayScalar()
    {
        var odd = IndexMap3.Create([7, 13], [13, 1], [13, 1], default);
        odd.TryVectorise(2, [0, 0]);
        Assert.Equal(IndexMap3.Index32, odd.Flags);
        var misaligned = IndexMap3.Create([4, 16], [16, 1], [16, 1], default);
        misaligned.TryVectorise(2, [2, 0]);
        Assert.Equal(IndexMap3.Index32, misaligned.Flags);
        var transposed = IndexMap3.Create([16, 8], [1, 16], [8, 1], default);
        transposed.TryVectorise(2, [0, 0]);
        Assert.Equal(IndexMap3.Index32, transposed.Flags);
        var huge = IndexMap3.Create([3, 1 << 30], [1 << 30, 1], [1 << 30, 1], default);
        Assert.Equal(0, huge.Flags);
    }

    [Fact]
    public unsafe void RowMapsMergeWhereEveryOperandAllows()
    {
        // x [2, 9, 48] narrowed rows, y a view of the same layout, scale broadcast over the 9 rows.
        Assert.True(RowMap4.TryCreate([2, 7], [432, 48], [432, 48], [288, 0], [288, 0], out var map));
        Assert.Equal(2, map.Rank);
        Assert.Equal(IndexMap3.Index32, map.Flags);
        Assert.True(RowMap4.TryCreate([2, 7], [336, 48], [336, 48], default, default, out var merged));
        Assert.Equal(1, merged.Rank);
        Assert.Equal(14, merged.Shape[0]);
        Assert.False(RowMap4.TryCreate([2, 3, 5, 7, 11], [1, 2, 7, 50, 400], [1, 2, 7, 50, 400], default, default, out _));
    }
}
