using System.Runtime.InteropServices;

namespace CogVideoX.Engine.Cuda;

// Every kernel takes one argument: a struct passed by value. These mirror the structs in the .cu files field for
// field (natural C alignment on both sides); KernelArgsTests pins their sizes and offsets.

/// <summary>Offsets of up to three operands over one collapsed logical shape (IndexMap3 in common.cuh).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IndexMap3
{
    public const int MaxDims = 8;

    /// <summary>Flag: 32-bit index math is exact (count and every operand's largest offset below 2³¹).</summary>
    public const int Index32 = 1;

    /// <summary>Flag: the map is in units of eight elements (see <see cref="TryVectorise"/>).</summary>
    public const int Vector8 = 2;

    public long Count;
    public int Rank;
    public int Flags;
    public fixed long Shape[MaxDims];
    public fixed long Strides[3 * MaxDims];

    /// <summary>
    /// Re-expresses the map in units of eight elements when every one of the first <paramref name="operands"/>
    /// operands has a contiguous innermost dim whose extent is a multiple of 8, all its other strides are multiples of 8
    /// and its address (bytes) is 16-byte aligned; kernels then move 16 bytes (or 32 for float32) per access.
    /// </summary>
    public void TryVectorise(int operands, ReadOnlySpan<ulong> addresses)
    {
        int last = Rank - 1;
        if ((Flags & Vector8) != 0 || Shape[last] % 8 != 0) return;
        for (int op = 0; op < operands; op++)
        {
            if (Strides[op * MaxDims + last] != 1 || addresses[op] % 16 != 0) return;
            for (int d = 0; d < last; d++)
                if (Strides[op * MaxDims + d] % 8 != 0) return;
        }
        Shape[last] /= 8;
        Count /= 8;
        for (int op = 0; op < 3; op++)
            for (int d = 0; d < last; d++)
                Strides[op * MaxDims + d] /= 8;
        Flags |= Vector8;
        SetIndex32();
    }

    private void SetIndex32()
    {
        Flags &= ~Index32;
        if (Count >= int.MaxValue) return;
        for (int op = 0; op < 3; op++)
        {
            long max = 0;
            for (int d = 0; d < Rank; d++) max += (Shape[d] - 1) * Math.Abs(Strides[op * MaxDims + d]);
            if (max >= int.MaxValue) return;
        }
        Flags |= Index32;
    }

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
        m.SetIndex32();
        return m;
    }
}

/// <summary>Row offsets of up to four operands over the leading dims of [..., D] tensors (RowMap4 in common.cuh).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct RowMap4
{
    public const int MaxDims = 4;

    public int Rank;
    public int Flags;
    public fixed long Shape[MaxDims];
    public fixed long Strides[4 * MaxDims];

    /// <summary>
    /// The map over <paramref name="leading"/> (the shape without its last dim) for operands given by their strides
    /// over those dims (zero where broadcast); dims are merged where every operand allows it. False when more than
    /// four dims remain.
    /// </summary>
    public static bool TryCreate(ReadOnlySpan<int> leading, ReadOnlySpan<long> s0, ReadOnlySpan<long> s1, ReadOnlySpan<long> s2, ReadOnlySpan<long> s3, out RowMap4 map)
    {
        map = default;
        Span<long> dims = stackalloc long[Math.Max(leading.Length, 1)];
        Span<long> st = stackalloc long[4 * Math.Max(leading.Length, 1)];
        int n = leading.Length, rank = 0;
        for (int i = 0; i < n; i++)
        {
            long size = leading[i];
            if (size == 1) continue;
            long x0 = s0.IsEmpty ? 0 : s0[i], x1 = s1.IsEmpty ? 0 : s1[i], x2 = s2.IsEmpty ? 0 : s2[i], x3 = s3.IsEmpty ? 0 : s3[i];
            if (rank > 0 && st[0 * n + rank - 1] == x0 * size && st[1 * n + rank - 1] == x1 * size && st[2 * n + rank - 1] == x2 * size && st[3 * n + rank - 1] == x3 * size)
            {
                dims[rank - 1] *= size;
                st[0 * n + rank - 1] = x0;
                st[1 * n + rank - 1] = x1;
                st[2 * n + rank - 1] = x2;
                st[3 * n + rank - 1] = x3;
                continue;
            }
            if (rank == MaxDims) return false;
            dims[rank] = size;
            st[0 * n + rank] = x0;
            st[1 * n + rank] = x1;
            st[2 * n + rank] = x2;
            st[3 * n + rank] = x3;
            rank++;
        }
        if (rank == 0)
        {
            map.Rank = 1;
            map.Shape[0] = 1;
            return true;
        }
        map.Rank = rank;
        long rows = 1;
        for (int i = 0; i < rank; i++)
        {
            map.Shape[i] = dims[i];
            rows *= dims[i];
            for (int op = 0; op < 4; op++) map.Strides[op * MaxDims + i] = st[op * n + i];
        }
        // 32-bit index math when the rows and every operand's largest row offset (plus a row) fit in 31 bits.
        bool small = rows < int.MaxValue;
        for (int op = 0; op < 4 && small; op++)
        {
            long max = 0;
            for (int i = 0; i < rank; i++) max += (dims[i] - 1) * Math.Abs(st[op * n + i]);
            small = max < int.MaxValue / 2;
        }
        if (small) map.Flags = IndexMap3.Index32;
        return true;
    }
}

[StructLayout(LayoutKind.Sequential)]
internal struct LnRowsArgs
{
    public ulong X;
    public ulong Y;
    public ulong Gamma;
    public ulong Beta;
    public ulong Scale;
    public ulong Shift;
    public long Rows;
    public int Cols;
    public int Lanes;
    public float Eps;
    public int Heads;
    public RowMap4 Map;
    public ulong Cos;
    public ulong Sin;
    public int Seq;
    public int Rotated;
    public ulong RowScales;
}

[StructLayout(LayoutKind.Sequential)]
internal struct AddMulArgs
{
    public ulong X;
    public ulong H;
    public ulong Gate;
    public ulong Y;
    public long Rows;
    public int Cols;
    public int Pad;
    public RowMap4 Map;
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
    public fixed long YStrides[4];
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

/// <summary>The 8-bit attention kernels' parameter (Sage8Args in common.cuh): the inputs, then the quantized scratch buffers.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Sage8Args
{
    public AttentionArgs Args;
    public ulong Q8;
    public ulong QScale;
    public ulong K8;
    public ulong KScale;
    public ulong Vt8;
    public ulong VScale;
    public ulong KMean;
    public int NqPad;
    public int NkPad;
}

/// <summary>
/// attention_sage8_sm90.cu's parameter (its Sage90Args): the K8 and V^T8 tensor maps (128 bytes each, 64-byte aligned
/// there), then attention_sage8.cu's arguments; 552 bytes rounded up to the maps' 64-byte alignment.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 576)]
internal unsafe struct Sage90Args
{
    public const int MapBytes = 128;
    public fixed byte Maps[2 * MapBytes];  // K8, V^T8
    public Sage8Args Args;
}

/// <summary>attention_sm90.cu's parameter: three 128-byte CUtensorMaps (64-byte aligned there), then the common arguments.</summary>
[StructLayout(LayoutKind.Sequential, Size = 640)]
internal unsafe struct TmaAttentionArgs
{
    public const int MapBytes = 128;
    public fixed byte Maps[3 * MapBytes];  // Q, K, V
    public AttentionArgs Args;
}

[StructLayout(LayoutKind.Sequential)]
internal struct SpatialNormArgs
{
    public ulong X;
    public ulong Y;
    public ulong Stats;
    public ulong Gamma;
    public ulong Beta;
    public ulong Scale;
    public ulong Shift;
    public long Vectors;
    public int Channels;
    public int Groups;
    public int Frames;
    public int Height;
    public int Width;
    public int Zh;
    public int Zw;
    public int Fh;
    public int Fw;
    public int Activation;
}

[StructLayout(LayoutKind.Sequential)]
internal struct UpsampleArgs
{
    public ulong X;
    public ulong Y;
    public long Vectors;
    public int Ti, Hi, Wi;
    public int Ft, Fh, Fw;
    public int To, Ho, Wo;
    public int Pad;
}

[StructLayout(LayoutKind.Sequential)]
internal struct Fp8QuantizeArgs
{
    public ulong X;
    public ulong Codes;
    public ulong Scales;
    public long Rows;
    public long Cols;
    public long XStride;
}

/// <summary>fp8_quantize_lanes / fp8_quantize_block (fp8.cu): a row held in registers.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Fp8RowsArgs
{
    public ulong X;
    public ulong Codes;
    public ulong Scales;
    public long Rows;
    public long XStride;
    public int Cols;
    public int Lanes;
}

[StructLayout(LayoutKind.Sequential)]
internal struct Fp8EpilogueArgs
{
    public ulong Acc;
    public ulong XScales;
    public ulong WScales;
    public ulong Bias;
    public ulong Y;
    public long Rows;
    public long Cols;
    public int Act;
    public int Pad;
}

[StructLayout(LayoutKind.Sequential)]
internal struct Fp8DecodeArgs
{
    public ulong Codes;
    public ulong Out;
    public long Count;
}

[StructLayout(LayoutKind.Sequential)]
internal struct Fp8BiasActArgs
{
    public ulong Y;
    public ulong Bias;
    public long Rows;
    public long Cols;
    public int Act;
    public int Pad;
}
