using System.Runtime.InteropServices;

namespace CogVideoX.Engine.Cuda;

// Every kernel takes one argument: a struct passed by value. These mirror the structs in the .cu files field for
// field (natural C alignment on both sides); KernelArgsTests pins their sizes and offsets.

/// <summary>Offsets of up to three operands over one collapsed logical shape (IndexMap3 in common.cuh).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IndexMap3
{
    public const int MaxDims = 8;

    public long Count;
    public int Rank;
    public int Pad;
    public fixed long Shape[MaxDims];
    public fixed long Strides[3 * MaxDims];

    /// <summary>
    /// Collapses shape and up to three operands' strides (size-1 dims dropped, dims merged where every operand is
    /// contiguous across them) so kernels do as few divisions as possible.
    /// </summary>
    public static IndexMap3 Create(ReadOnlySpan<int> shape, ReadOnlySpan<long> s0, ReadOnlySpan<long> s1, ReadOnlySpan<long> s2)
    {
        int capacity = Math.Max(shape.Length, 1);
        Span<long> dims = stackalloc long[capacity];
        Span<long> a = stackalloc long[capacity];
        Span<long> b = stackalloc long[capacity];
        Span<long> c = stackalloc long[capacity];
        int rank = 0;
        long count = 1;
        for (int i = 0; i < shape.Length; i++)
        {
            long n = shape[i];
            count *= n;
            if (n == 1) continue;
            long x = s0.IsEmpty ? 0 : s0[i], y = s1.IsEmpty ? 0 : s1[i], z = s2.IsEmpty ? 0 : s2[i];
            if (rank > 0 && a[rank - 1] == x * n && b[rank - 1] == y * n && c[rank - 1] == z * n)
            {
                dims[rank - 1] *= n;
                a[rank - 1] = x;
                b[rank - 1] = y;
                c[rank - 1] = z;
                continue;
            }
            dims[rank] = n;
            a[rank] = x;
            b[rank] = y;
            c[rank] = z;
            rank++;
        }
        if (rank == 0)
        {
            dims[0] = 1;
            a[0] = b[0] = c[0] = 1;
            rank = 1;
        }
        if (rank > MaxDims)
            throw new NotSupportedException($"a layout of {rank} non-mergeable dims exceeds the CUDA kernels' limit of {MaxDims}");
        var m = new IndexMap3 { Count = count, Rank = rank };
        for (int i = 0; i < rank; i++)
        {
            m.Shape[i] = dims[i];
            m.Strides[i] = a[i];
            m.Strides[MaxDims + i] = b[i];
            m.Strides[2 * MaxDims + i] = c[i];
        }
        return m;
    }
}

[StructLayout(LayoutKind.Sequential)]
internal struct CopyArgs
{
    public ulong Source;
    public ulong Destination;
    public IndexMap3 Map;
}

[StructLayout(LayoutKind.Sequential)]
internal struct FillArgs
{
    public ulong Destination;
    public ulong Bits;
    public IndexMap3 Map;
}

[StructLayout(LayoutKind.Sequential)]
internal struct MapArgs
{
    public const int Affine = 100;
    public const int Clamp = 101;

    public ulong X;
    public ulong Y;
    public int Op;
    public float P0;
    public float P1;
    public int Pad;
    public IndexMap3 Map;
}

[StructLayout(LayoutKind.Sequential)]
internal struct BinaryArgs
{
    public ulong A;
    public ulong B;
    public ulong Y;
    public int Op;
    public int Pad;
    public IndexMap3 Map;
}

[StructLayout(LayoutKind.Sequential)]
internal struct ChannelBiasArgs
{
    public ulong Y;
    public ulong Bias;
    public long Count;
    public long Spatial;
    public int Channels;
    public int Pad;
}

[StructLayout(LayoutKind.Sequential)]
internal struct RowArgs
{
    public ulong X;
    public ulong Y;
    public ulong Gamma;
    public ulong Beta;
    public long Rows;
    public int Cols;
    public int Op;
    public float Eps;
    public int Pad;
}

[StructLayout(LayoutKind.Sequential)]
internal struct GroupStatsArgs
{
    public ulong X;
    public ulong Partial;
    public long GroupLength;
    public int Splits;
    public int Pad;
}

[StructLayout(LayoutKind.Sequential)]
internal struct GroupFinalizeArgs
{
    public ulong Partial;
    public ulong Stats;
    public long GroupLength;
    public int GroupsTotal;
    public int Splits;
    public float Eps;
    public int Pad;
}

[StructLayout(LayoutKind.Sequential)]
internal struct GroupApplyArgs
{
    public ulong X;
    public ulong Y;
    public ulong Stats;
    public ulong Gamma;
    public ulong Beta;
    public long Count;
    public long Spatial;
    public int Channels;
    public int Groups;
    public int Activation;
    public int Pad;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct RotaryArgs
{
    public ulong X;
    public ulong Y;
    public ulong Cos;
    public ulong Sin;
    public fixed long XStrides[4];
    public long Pairs;
    public int Heads;
    public int N;
    public int D;
    public int Pad;
}

[StructLayout(LayoutKind.Sequential)]
internal struct GatherArgs
{
    public ulong Table;
    public ulong Ids;
    public ulong Y;
    public long Count;
    public int Dim;
    public int Pad;
}

[StructLayout(LayoutKind.Sequential)]
internal struct Im2ColArgs
{
    public ulong X;
    public ulong Col;
    public long P0;
    public long CountP;
    public long Count;
    public int Ti, Hi, Wi;
    public int Kt, Kh, Kw;
    public int St, Sh, Sw;
    public int Pt, Ph, Pw;
    public int Ho, Wo;
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct AttentionArgs
{
    public ulong Q;
    public ulong K;
    public ulong V;
    public ulong Bias;
    public ulong Y;
    public fixed long QStrides[4];
    public fixed long KStrides[4];
    public fixed long VStrides[4];
    public fixed long BiasStrides[4];
    public fixed long YStrides[4];
    public int Heads;
    public int Nq;
    public int Nk;
    public int D;
    public float Scale;
    public int HasBias;
    public int VectorKv;
    public int Pad;
}
