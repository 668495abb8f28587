using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace CogVideoX.Engine;

/// <summary>The left operand A [m, k] of a GEMM, able to pack itself into the micro-kernel's A panels.</summary>
internal unsafe interface IGemmOperandA
{
    /// <summary>Packs rows [i0, i0 + rows) × reduction [p0, p0 + kc) as dst[p·mr + r], rows ≥ rows zero-filled.</summary>
    void PackA(int i0, int rows, int p0, int kc, int mr, float* dst);
}

/// <summary>The right operand B [k, n] of a GEMM, able to pack itself into the micro-kernel's B panels.</summary>
internal unsafe interface IGemmOperandB
{
    /// <summary>
    /// Packs reduction [p0, p0 + kc) × columns [j0, j0 + cols) into ⌈cols / nr⌉ consecutive panels of kc × nr:
    /// panel q holds dst[q·kc·nr + p·nr + c] = B[p0 + p, j0 + q·nr + c], columns past cols zero-filled.
    /// </summary>
    void PackB(int p0, int kc, int j0, int cols, int nr, float* dst);
}

/// <summary>
/// A float32 matrix read through element strides: row-major (colStride 1), transposed (rowStride 1, e.g. a
/// linear layer's weight [n, k] read as B [k, n]) or any view. Each layout gets the loop order that reads memory
/// contiguously.
/// </summary>
internal readonly unsafe struct StridedMatrix(float* data, long rowStride, long colStride) : IGemmOperandA, IGemmOperandB
{
    private readonly float* _data = data;
    private readonly long _rowStride = rowStride;
    private readonly long _colStride = colStride;

    public void PackA(int i0, int rows, int p0, int kc, int mr, float* dst)
    {
        if (_colStride == 1)
        {
            // Row-major A: the panel is a transpose of rows × kc.
            Transpose(_data + i0 * _rowStride + p0, _rowStride, rows, kc, dst, mr);
        }
        else if (_rowStride == 1)
        {
            for (int p = 0; p < kc; p++)
                CopyFloats(_data + (p0 + p) * _colStride + i0, dst + p * mr, rows);
        }
        else
        {
            for (int p = 0; p < kc; p++)
                for (int r = 0; r < rows; r++)
                    dst[p * mr + r] = _data[(i0 + r) * _rowStride + (p0 + p) * _colStride];
        }
        if (rows < mr)
            for (int p = 0; p < kc; p++) new Span<float>(dst + p * mr + rows, mr - rows).Clear();
    }

    public void PackB(int p0, int kc, int j0, int cols, int nr, float* dst)
    {
        int panels = (cols + nr - 1) / nr;
        if (_colStride == 1)
        {
            // Row-major B: read each row once across all panels (contiguous), scatter into the panels.
            for (int p = 0; p < kc; p++)
            {
                float* src = _data + (p0 + p) * _rowStride + j0;
                for (int q = 0; q < panels; q++)
                {
                    int width = Math.Min(nr, cols - q * nr);
                    float* d = dst + (long)q * kc * nr + p * nr;
                    CopyFloats(src + q * nr, d, width);
                    if (width < nr) new Span<float>(d + width, nr - width).Clear();
                }
            }
            return;
        }
        for (int q = 0; q < panels; q++)
        {
            int j = j0 + q * nr;
            int width = Math.Min(nr, cols - q * nr);
            float* panel = dst + (long)q * kc * nr;
            if (_rowStride == 1)
            {
                // B = Wᵀ (a linear layer's weight): the panel is a transpose of width rows of W.
                Transpose(_data + j * _colStride + p0, _colStride, width, kc, panel, nr);
            }
            else
            {
                for (int p = 0; p < kc; p++)
                    for (int col = 0; col < width; col++)
                        panel[p * nr + col] = _data[(p0 + p) * _rowStride + (j + col) * _colStride];
            }
            if (width < nr)
                for (int p = 0; p < kc; p++) new Span<float>(panel + p * nr + width, nr - width).Clear();
        }
    }

    /// <summary>
    /// dst[p·dstStride + r] = src[r·srcStride + p] for r &lt; rows, p &lt; cols: 8 × 8 blocks transposed in AVX
    /// registers (a scalar loop would cost as much as the multiply for skinny products), scalar edges.
    /// </summary>
    internal static void Transpose(float* src, long srcStride, int rows, int cols, float* dst, long dstStride)
    {
        int r0 = 0;
        if (Avx.IsSupported)
        {
            for (; r0 <= rows - 8; r0 += 8)
            {
                int p0 = 0;
                for (; p0 <= cols - 8; p0 += 8)
                    Transpose8x8(src + r0 * srcStride + p0, srcStride, dst + p0 * dstStride + r0, dstStride);
                for (int r = r0; r < r0 + 8; r++)
                    for (int p = p0; p < cols; p++) dst[p * dstStride + r] = src[r * srcStride + p];
            }
        }
        for (int r = r0; r < rows; r++)
        {
            float* s = src + r * srcStride;
            float* d = dst + r;
            for (int p = 0; p < cols; p++) d[p * dstStride] = s[p];
        }
    }

    /// <summary>The classic unpack / shuffle / lane-permute transpose of an 8 × 8 float block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* src, long srcStride, float* dst, long dstStride)
    {
        var r0 = Avx.LoadVector256(src);
        var r1 = Avx.LoadVector256(src + srcStride);
        var r2 = Avx.LoadVector256(src + 2 * srcStride);
        var r3 = Avx.LoadVector256(src + 3 * srcStride);
        var r4 = Avx.LoadVector256(src + 4 * srcStride);
        var r5 = Avx.LoadVector256(src + 5 * srcStride);
        var r6 = Avx.LoadVector256(src + 6 * srcStride);
        var r7 = Avx.LoadVector256(src + 7 * srcStride);
        // Interleave pairs of rows, then pairs of pairs: s0 = [r0..r3 at columns 0 | 4], s1 = columns 1 | 5, ...
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var s0 = Avx.Shuffle(t0, t2, 0x44);
        var s1 = Avx.Shuffle(t0, t2, 0xEE);
        var s2 = Avx.Shuffle(t1, t3, 0x44);
        var s3 = Avx.Shuffle(t1, t3, 0xEE);
        var s4 = Avx.Shuffle(t4, t6, 0x44);
        var s5 = Avx.Shuffle(t4, t6, 0xEE);
        var s6 = Avx.Shuffle(t5, t7, 0x44);
        var s7 = Avx.Shuffle(t5, t7, 0xEE);
        // Join the 128-bit halves of rows 0–3 and 4–7.
        Avx.Store(dst, Avx.Permute2x128(s0, s4, 0x20));
        Avx.Store(dst + dstStride, Avx.Permute2x128(s1, s5, 0x20));
        Avx.Store(dst + 2 * dstStride, Avx.Permute2x128(s2, s6, 0x20));
        Avx.Store(dst + 3 * dstStride, Avx.Permute2x128(s3, s7, 0x20));
        Avx.Store(dst + 4 * dstStride, Avx.Permute2x128(s0, s4, 0x31));
        Avx.Store(dst + 5 * dstStride, Avx.Permute2x128(s1, s5, 0x31));
        Avx.Store(dst + 6 * dstStride, Avx.Permute2x128(s2, s6, 0x31));
        Avx.Store(dst + 7 * dstStride, Avx.Permute2x128(s3, s7, 0x31));
    }

    /// <summary>Short contiguous copies (a panel row is 8–32 floats): whole vectors, then the tail.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void CopyFloats(float* src, float* dst, int count)
    {
        int i = 0;
        for (; i <= count - 8; i += 8) Vector256.Store(Vector256.Load(src + i), dst + i);
        for (; i < count; i++) dst[i] = src[i];
    }
}

/// <summary>
/// The im2col matrix of a 3D convolution, B [Cin·kT·kH·kW, T'·H'·W'], never materialised: panels are packed
/// straight from the input [Cin, T, H, W] (one batch item, contiguous float32) with zero padding applied on the fly.
/// Consecutive output pixels of one output row read consecutive input pixels, so each panel row is a few short
/// copies rather than a gather per element.
/// </summary>
internal readonly unsafe struct Im2ColOperand : IGemmOperandB
{
    private readonly float* _x;
    private readonly int _t, _h, _w, _kt, _kh, _kw, _ho, _wo;
    private readonly Conv3dParams _p;

    public Im2ColOperand(float* x, int t, int h, int w, int kt, int kh, int kw, Conv3dParams p, int ho, int wo)
    {
        _x = x;
        _t = t; _h = h; _w = w;
        _kt = kt; _kh = kh; _kw = kw;
        _p = p;
        _ho = ho; _wo = wo;
    }

    /// <summary>A run of consecutive output pixels in one output row: input origin of its first pixel, length, panel column.</summary>
    private struct PixelRun
    {
        public int T0, H0, W0, Length, Column;
    }

    public void PackB(int p0, int kc, int j0, int cols, int nr, float* dst)
    {
        for (int q = 0; q * nr < cols; q++)
            PackPanel(p0, kc, j0 + q * nr, Math.Min(nr, cols - q * nr), nr, dst + (long)q * kc * nr);
    }

    private void PackPanel(int p0, int kc, int j0, int cols, int nr, float* dst)
    {
        var runs = stackalloc PixelRun[cols];
        int runCount = 0;
        int plane = _ho * _wo;
        for (int col = 0, pixel = j0; col < cols;)
        {
            int t = pixel / plane, rem = pixel % plane, oh = rem / _wo, ow = rem % _wo;
            int len = Math.Min(_wo - ow, cols - col);
            runs[runCount++] = new PixelRun
            {
                T0 = t * _p.StrideT - _p.PadT,
                H0 = oh * _p.StrideH - _p.PadH,
                W0 = ow * _p.StrideW - _p.PadW,
                Length = len,
                Column = col,
            };
            col += len;
            pixel += len;
        }
        // Reduction index = ((c·kT + a)·kH + b)·kW + d, advanced incrementally.
        int kk = p0;
        int d = kk % _kw; kk /= _kw;
        int b = kk % _kh; kk /= _kh;
        int a = kk % _kt;
        int c = kk / _kt;
        long channel = (long)_t * _h * _w;
        int sw = _p.StrideW;
        for (int p = 0; p < kc; p++)
        {
            float* row = dst + p * nr;
            float* xc = _x + c * channel;
            for (int r = 0; r < runCount; r++)
            {
                ref var run = ref runs[r];
                float* o = row + run.Column;
                int it = run.T0 + a, ih = run.H0 + b;
                if ((uint)it >= (uint)_t || (uint)ih >= (uint)_h)
                {
                    new Span<float>(o, run.Length).Clear();
                    continue;
                }
                float* src = xc + ((long)it * _h + ih) * _w;
                int iw0 = run.W0 + d;
                if (sw == 1)
                {
                    int lo = Math.Clamp(-iw0, 0, run.Length);
                    int hi = Math.Clamp(_w - iw0, lo, run.Length);
                    for (int q = 0; q < lo; q++) o[q] = 0f;
                    StridedMatrix.CopyFloats(src + iw0 + lo, o + lo, hi - lo);
                    for (int q = hi; q < run.Length; q++) o[q] = 0f;
                }
                else
                {
                    for (int q = 0; q < run.Length; q++)
                    {
                        int iw = iw0 + q * sw;
                        o[q] = (uint)iw < (uint)_w ? src[iw] : 0f;
                    }
                }
            }
            if (cols < nr) new Span<float>(row + cols, nr - cols).Clear();
            if (++d == _kw)
            {
                d = 0;
                if (++b == _kh)
                {
                    b = 0;
                    if (++a == _kt)
                    {
                        a = 0;
                        c++;
                    }
                }
            }
        }
    }
}
