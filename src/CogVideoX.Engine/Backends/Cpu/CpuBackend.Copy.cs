using System.Runtime.CompilerServices;

namespace CogVideoX.Engine;

public sealed unsafe partial class CpuBackend
{
    /// <summary>Elements per parallel piece of a copy.</summary>
    private const int CopyPiece = 1 << 16;

    public void Copy(Tensor source, Tensor destination)
    {
        if (!source.Shape.SequenceEqual(destination.Shape))
            throw new ArgumentException($"copy: shapes differ ({source.ShapeString} → {destination.ShapeString})");
        long count = destination.ElementCount;
        if (count == 0) return;
        var (shape, ss, ds) = Collapse(destination.Shape, source.Layout.Strides, destination.Layout.Strides);
        byte* sp = BasePointer(source);
        byte* dp = BasePointer(destination);
        long sOff = source.Layout.Offset, dOff = destination.Layout.Offset;
        var st = source.DType;
        var dt = destination.DType;
        int inner = shape[^1];
        long sInner = ss[^1], dInner = ds[^1];
        if (st == DType.F32 && dt == DType.F32 && TryTransposeCopy((float*)sp + sOff, (float*)dp + dOff, shape, ss, ds)) return;
        long rows = count / inner;
        // Long rows are cut into pieces so a single huge row (a flat conversion) still uses every thread.
        int piece = (int)Math.Min(inner, CopyPiece);
        long piecesPerRow = (inner + piece - 1) / piece;
        ParallelRange(rows * piecesPerRow, Math.Max(1, CopyPiece / piece), (t0, t1) =>
        {
            for (long t = t0; t < t1; t++)
            {
                long r = t / piecesPerRow;
                int start = (int)(t % piecesPerRow) * piece;
                long rem = r, so = sOff + start * sInner, doff = dOff + start * dInner;
                for (int d = shape.Length - 2; d >= 0; d--)
                {
                    long i = rem % shape[d];
                    rem /= shape[d];
                    so += i * ss[d];
                    doff += i * ds[d];
                }
                CopyRow(sp, st, so, sInner, dp, dt, doff, dInner, Math.Min(piece, inner - start));
            }
        });
    }

    /// <summary>Merges adjacent dims that are contiguous in both layouts and drops size-1 dims.</summary>
    internal static (int[] Shape, long[] A, long[] B) Collapse(ReadOnlySpan<int> shape, ReadOnlySpan<long> a, ReadOnlySpan<long> b)
    {
        var s = new List<int>();
        var sa = new List<long>();
        var sb = new List<long>();
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] == 1) continue;
            if (s.Count > 0 && sa[^1] == a[i] * shape[i] && sb[^1] == b[i] * shape[i])
            {
                s[^1] *= shape[i];
                sa[^1] = a[i];
                sb[^1] = b[i];
                continue;
            }
            s.Add(shape[i]);
            sa.Add(a[i]);
            sb.Add(b[i]);
        }
        if (s.Count == 0) { s.Add(1); sa.Add(1); sb.Add(1); }
        return (s.ToArray(), sa.ToArray(), sb.ToArray());
    }

    /// <summary>
    /// A float32 copy whose destination rows are contiguous but whose source is contiguous along another dim (the
    /// Contiguous() of a transposed or permuted view): done as 8 × 8 register transposes of (that dim × the last
    /// dim) tiles, instead of one strided load per element.
    /// </summary>
    private static bool TryTransposeCopy(float* src, float* dst, int[] shape, long[] ss, long[] ds)
    {
        int rank = shape.Length, last = rank - 1;
        if (rank < 2 || ds[last] != 1 || ss[last] == 1 || shape[last] < 8) return false;
        int across = -1;
        for (int d = 0; d < last; d++)
            if (ss[d] == 1 && shape[d] >= 8) across = d;
        if (across < 0) return false;
        // Every other dim is an outer loop; tiles of 64 columns along 'across' split the work between threads.
        const int tile = 64;
        int tilesAcross = (shape[across] + tile - 1) / tile;
        long outer = 1;
        for (int d = 0; d < last; d++)
            if (d != across) outer *= shape[d];
        ParallelRange(outer * tilesAcross, Math.Max(1, 32768 / ((long)shape[last] * tile)), (t0, t1) =>
        {
            for (long t = t0; t < t1; t++)
            {
                long rem = t / tilesAcross, so = 0, doff = 0;
                for (int d = last - 1; d >= 0; d--)
                {
                    if (d == across) continue;
                    long i = rem % shape[d];
                    rem /= shape[d];
                    so += i * ss[d];
                    doff += i * ds[d];
                }
                int a0 = (int)(t % tilesAcross) * tile;
                int count = Math.Min(tile, shape[across] - a0);
                // dst[a·ds[across] + l] = src[a + l·ss[last]]: a transpose of a [last × count] block of the source.
                StridedMatrix.Transpose(src + so + a0, ss[last], shape[last], count, dst + doff + a0 * ds[across], ds[across]);
            }
        });
        return true;
    }

    private static void CopyRow(byte* sp, DType st, long so, long sInc, byte* dp, DType dt, long doff, long dInc, int n)
    {
        if (st == dt && sInc == 1 && dInc == 1)
        {
            int size = st.SizeOf();
            Buffer.MemoryCopy(sp + so * size, dp + doff * size, (long)n * size, (long)n * size);
            return;
        }
        if (sInc == 1 && dInc == 1 && HalfConversions.TryConvert(sp, st, so, dp, dt, doff, n)) return;
        if (st == DType.F32 && dt == DType.F32)
        {
            float* s = (float*)sp + so;
            float* d = (float*)dp + doff;
            if (sInc == 0)
            {
                float v = *s;
                if (dInc == 1) new Span<float>(d, n).Fill(v);
                else for (int i = 0; i < n; i++) d[i * dInc] = v;
                return;
            }
            for (int i = 0; i < n; i++) d[i * dInc] = s[i * sInc];
            return;
        }
        if (st == DType.I64 || dt == DType.I64)
        {
            for (int i = 0; i < n; i++)
            {
                long v = st == DType.I64 ? ((long*)sp)[so + i * sInc] : (long)ReadFloat(sp, st, so + i * sInc);
                if (dt == DType.I64) ((long*)dp)[doff + i * dInc] = v;
                else WriteFloat(dp, dt, doff + i * dInc, v);
            }
            return;
        }
        for (int i = 0; i < n; i++)
            WriteFloat(dp, dt, doff + i * dInc, ReadFloat(sp, st, so + i * sInc));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ReadFloat(byte* p, DType t, long i) => t switch
    {
        DType.F32 => ((float*)p)[i],
        DType.F16 => (float)((Half*)p)[i],
        DType.BF16 => DTypes.BF16ToFloat(((ushort*)p)[i]),
        _ => ((long*)p)[i],
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteFloat(byte* p, DType t, long i, float v)
    {
        switch (t)
        {
            case DType.F32: ((float*)p)[i] = v; break;
            case DType.F16: ((Half*)p)[i] = (Half)v; break;
            case DType.BF16: ((ushort*)p)[i] = DTypes.FloatToBF16(v); break;
            default: ((long*)p)[i] = (long)v; break;
        }
    }

    public void Fill(Tensor destination, double value)
    {
        if (destination.ElementCount == 0) return;
        if (!destination.IsContiguous)
        {
            using var one = Tensor.Full(this, destination.DType, value, 1);
            using var b = one.BroadcastTo(destination.ShapeArray());
            Copy(b, destination);
            return;
        }
        byte* p = BasePointer(destination);
        long off = destination.Layout.Offset, n = destination.ElementCount;
        switch (destination.DType)
        {
            case DType.F32: Fill(new IntPtr((float*)p + off), n, (float)value); break;
            case DType.F16: Fill(new IntPtr((Half*)p + off), n, (Half)value); break;
            case DType.BF16: Fill(new IntPtr((ushort*)p + off), n, DTypes.FloatToBF16((float)value)); break;
            default: Fill(new IntPtr((long*)p + off), n, (long)value); break;
        }
    }

    private static void Fill<T>(IntPtr start, long n, T value) where T : unmanaged
    {
        T* p = (T*)start;
        while (n > 0)
        {
            int chunk = (int)Math.Min(n, int.MaxValue / 4);
            new Span<T>(p, chunk).Fill(value);
            p += chunk;
            n -= chunk;
        }
    }
}
