// Rotary embedding, embedding lookup and the im2col step of the 3D convolution.

struct RotaryArgs
{
    const void* x;     // [B, H, N, D], any strides
    void* y;           // [B, H, N, D], any strides (x itself included: each pair is read before it is written)
    const float* cos;  // contiguous [N, D]
    const float* sin;
    i64 xs[4];
    i64 ys[4];
    i64 pairs;         // B * H * N * D / 2
    int heads;
    int n;
    int d;
    int pad;
};
static_assert(sizeof(RotaryArgs) == 120, "RotaryArgs must match KernelArgs.cs");

template <typename TI, typename TO>
__device__ void rotary_impl(const RotaryArgs& a)
{
    const TI* x = (const TI*)a.x;
    TO* y = (TO*)a.y;
    int half = a.d / 2;
    for (i64 i = global_index(); i < a.pairs; i += grid_stride())
    {
        int k = (int)(i % half);
        i64 row = i / half;  // (b, h, n) flattened
        int pos = (int)(row % a.n);
        i64 bh = row / a.n;
        i64 b = bh / a.heads, h = bh % a.heads;
        i64 xo = b * a.xs[0] + h * a.xs[1] + pos * a.xs[2] + (i64)(2 * k) * a.xs[3];
        float re = to_float(x[xo]), im = to_float(x[xo + a.xs[3]]);
        const float* c = a.cos + (i64)pos * a.d + 2 * k;
        const float* s = a.sin + (i64)pos * a.d + 2 * k;
        i64 yo = b * a.ys[0] + h * a.ys[1] + pos * a.ys[2] + (i64)(2 * k) * a.ys[3];
        // Each product rounded, then the sum: the CPU backend's arithmetic exactly.
        y[yo] = from_float<TO>(__fsub_rn(__fmul_rn(re, c[0]), __fmul_rn(im, s[0])));
        y[yo + a.ys[3]] = from_float<TO>(__fadd_rn(__fmul_rn(im, c[1]), __fmul_rn(re, s[1])));
    }
}

// The same rotation eight elements (four pairs) at a time, for the layout attention has: unit stride along D, D a
// multiple of 8, every other stride a multiple of 8 elements and both pointers 16-byte aligned (the host checks).
// Grid: x over the N * D / 8 vectors of one (b, h) row block, y over the B * H of them, so the index math is two
// 32-bit divisions per vector instead of three 64-bit ones per pair (the scalar form ran at ~1 TB/s on the H200).
template <typename TI, typename TO>
__device__ void rotary8_impl(const RotaryArgs& a)
{
    u32 vectors_per_row = (u32)a.d / 8;
    u32 j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= (u32)a.n * vectors_per_row) return;
    u32 pos = j / vectors_per_row, v = j - pos * vectors_per_row;
    u32 bh = blockIdx.y, b = bh / (u32)a.heads, h = bh - b * (u32)a.heads;
    i64 xo = (i64)b * a.xs[0] + (i64)h * a.xs[1] + (i64)pos * a.xs[2] + 8 * (i64)v;
    i64 yo = (i64)b * a.ys[0] + (i64)h * a.ys[1] + (i64)pos * a.ys[2] + 8 * (i64)v;
    i64 to = (i64)pos * a.d + 8 * (i64)v;
    float x[8], c[8], s[8], y[8];
    load8((const TI*)a.x + xo, x);
    load8(a.cos + to, c);
    load8(a.sin + to, s);
#pragma unroll
    for (int p = 0; p < 4; ++p)
    {
        float re = x[2 * p], im = x[2 * p + 1];
        // rotary_impl's arithmetic exactly: each product rounded, then the sum.
        y[2 * p] = __fsub_rn(__fmul_rn(re, c[2 * p]), __fmul_rn(im, s[2 * p]));
        y[2 * p + 1] = __fadd_rn(__fmul_rn(im, c[2 * p + 1]), __fmul_rn(re, s[2 * p + 1]));
    }
    store8((TO*)a.y + yo, y);
}

#define ROTARY(NI, TI, NO, TO) \
    extern "C" __global__ void rotary_##NI##_##NO(RotaryArgs a) { rotary_impl<TI, TO>(a); } \
    extern "C" __global__ void rotary8_##NI##_##NO(RotaryArgs a) { rotary8_impl<TI, TO>(a); }
IO_TYPE_PAIRS(ROTARY)

struct GatherArgs
{
    const void* table;  // contiguous [V, D]
    const i64* ids;     // [n], validated on the host
    void* y;            // contiguous [n, D]
    i64 count;          // n * D
    int dim;
    int pad;
};
static_assert(sizeof(GatherArgs) == 40, "GatherArgs must match KernelArgs.cs");

template <typename T>
__device__ void gather_impl(const GatherArgs& a)
{
    const T* t = (const T*)a.table;
    T* y = (T*)a.y;
    for (i64 i = global_index(); i < a.count; i += grid_stride())
    {
        i64 row = i / a.dim;
        y[i] = t[a.ids[row] * a.dim + i % a.dim];
    }
}

BITS_KERNELS(gather, GatherArgs, gather_impl)

struct Im2ColArgs
{
    const void* x;  // contiguous [Cin, T, H, W] (one batch item)
    void* col;      // contiguous [Cin * kT * kH * kW, count_p]
    i64 p0;         // first output position (flattened T' H' W') of this chunk
    i64 count_p;
    i64 count;      // rows * count_p
    int ti, hi, wi;
    int kt, kh, kw;
    int st, sh, sw;
    int pt, ph, pw;
    int ho, wo;
};
static_assert(sizeof(Im2ColArgs) == 96, "Im2ColArgs must match KernelArgs.cs");

template <typename T>
__device__ void im2col_impl(const Im2ColArgs& a)
{
    const T* x = (const T*)a.x;
    T* col = (T*)a.col;
    for (i64 e = global_index(); e < a.count; e += grid_stride())
    {
        i64 k = e / a.count_p;
        i64 p = a.p0 + e % a.count_p;
        int kw_i = (int)(k % a.kw);
        int kh_i = (int)(k / a.kw % a.kh);
        int kt_i = (int)(k / ((i64)a.kw * a.kh) % a.kt);
        i64 c = k / ((i64)a.kw * a.kh * a.kt);
        int ow = (int)(p % a.wo);
        int oh = (int)(p / a.wo % a.ho);
        i64 ot = p / ((i64)a.wo * a.ho);
        i64 it = ot * a.st - a.pt + kt_i;
        int ih = oh * a.sh - a.ph + kh_i;
        int iw = ow * a.sw - a.pw + kw_i;
        T v;
        if (it >= 0 && it < a.ti && ih >= 0 && ih < a.hi && iw >= 0 && iw < a.wi)
            v = x[((c * a.ti + it) * a.hi + ih) * a.wi + iw];
        else
            v = from_float<T>(0.0f);
        col[e] = v;
    }
}

FLOAT_KERNELS(im2col, Im2ColArgs, im2col_impl)
