// Shared definitions for every kernel module: element types, conversions, index maps, activations, reductions.
// No CUDA headers are included, so the same source compiles with any NVRTC version (11.2 and later) unchanged.
// The argument structs mirror the C# structs in KernelArgs.cs field for field: change both together.

typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

#define MAX_DIMS 8
#define F_INF (__int_as_float(0x7f800000))
#define F_NAN (__int_as_float(0x7fffffff))

// Storage types. f16 and bf16 are raw 16-bit patterns; arithmetic always happens in float.
struct f16 { u16 bits; };
struct bf16 { u16 bits; };

__device__ __forceinline__ float f16_to_float(u16 h)
{
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ u16 float_to_f16(float f)
{
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ float bf16_to_float(u16 b) { return __uint_as_float(((u32)b) << 16); }

// Round to nearest even, NaN kept quiet: the same rule as the CPU backend (and PyTorch).
__device__ __forceinline__ u16 float_to_bf16(float f)
{
    u32 u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (u16)(u >> 16);
}

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(f16 v) { return f16_to_float(v.bits); }
__device__ __forceinline__ float to_float(bf16 v) { return bf16_to_float(v.bits); }
__device__ __forceinline__ float to_float(i64 v) { return (float)v; }

template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ f16 from_float<f16>(float v) { f16 r; r.bits = float_to_f16(v); return r; }
template <> __device__ __forceinline__ bf16 from_float<bf16>(float v) { bf16 r; r.bits = float_to_bf16(v); return r; }
template <> __device__ __forceinline__ i64 from_float<i64>(float v) { return (i64)v; }

// Element conversion between any two storage types (i64 <-> float through float, as the CPU backend does).
template <typename TO, typename TI> struct Convert { static __device__ __forceinline__ TO run(TI v) { return from_float<TO>(to_float(v)); } };
template <typename T> struct Convert<T, T> { static __device__ __forceinline__ T run(T v) { return v; } };

// Offsets of up to three operands that share one logical shape (already collapsed on the host).
// flags: MAP_INDEX32 when the count and every operand's largest offset fit in 31 bits (cheaper 32-bit index math);
// MAP_VECTOR8 when the host expressed the map in units of eight elements (every operand's innermost dim contiguous
// and a multiple of 8 long, every other stride a multiple of 8, every pointer 16-byte aligned): count, the innermost
// extent and all strides are then divided by 8, and kernels move eight elements per access.
#define MAP_INDEX32 1
#define MAP_VECTOR8 2
struct IndexMap3
{
    i64 count;
    int rank;
    int flags;
    i64 shape[MAX_DIMS];
    i64 stride[3][MAX_DIMS];
};
static_assert(sizeof(IndexMap3) == 272, "IndexMap3 must match KernelArgs.cs");

__device__ __forceinline__ void offsets3(const IndexMap3& m, i64 i, i64& o0, i64& o1, i64& o2)
{
    o0 = 0; o1 = 0; o2 = 0;
    for (int d = m.rank - 1; d >= 0; --d)
    {
        i64 n = m.shape[d];
        i64 c = i % n;
        i /= n;
        o0 += c * m.stride[0][d];
        o1 += c * m.stride[1][d];
        o2 += c * m.stride[2][d];
    }
}

__device__ __forceinline__ void offsets3_32(const IndexMap3& m, u32 i, i64& o0, i64& o1, i64& o2)
{
    u32 a = 0, b = 0, c = 0;
    for (int d = m.rank - 1; d >= 0; --d)
    {
        u32 n = (u32)m.shape[d];
        u32 q = i / n;
        u32 k = i - q * n;
        i = q;
        a += k * (u32)m.stride[0][d];
        b += k * (u32)m.stride[1][d];
        c += k * (u32)m.stride[2][d];
    }
    o0 = a; o1 = b; o2 = c;
}

// Two floats as one word of two 16-bit values of type T (f16 or bf16), the first (the lower column) in the low half.
template <typename T> __device__ __forceinline__ u32 pack2(float lo, float hi)
{
    return (u32)from_float<T>(lo).bits | ((u32)from_float<T>(hi).bits << 16);
}

// Eight 16-bit values of type T (f16 or bf16) as one 16-byte access holds them, element 2k in the low half of word k,
// widened to floats.
template <typename T>
__device__ __forceinline__ void unpack8(const uint4& r, float* v)
{
    u32 w[4] = { r.x, r.y, r.z, r.w };
#pragma unroll
    for (int k = 0; k < 4; ++k) { v[2 * k] = to_float(T{(u16)(w[k] & 0xffffu)}); v[2 * k + 1] = to_float(T{(u16)(w[k] >> 16)}); }
}

// The reverse: eight floats rounded to T and packed the same way.
template <typename T>
__device__ __forceinline__ uint4 pack8(const float* v)
{
    u32 w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) w[k] = pack2<T>(v[2 * k], v[2 * k + 1]);
    return make_uint4(w[0], w[1], w[2], w[3]);
}

// Eight consecutive elements as floats, one or two 16-byte accesses (the pointer must be 16-byte aligned), and back.
__device__ __forceinline__ void load8(const float* p, float* v)
{
    float4 a = ((const float4*)p)[0], b = ((const float4*)p)[1];
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}
__device__ __forceinline__ void load8(const f16* p, float* v) { unpack8<f16>(*(const uint4*)p, v); }
__device__ __forceinline__ void load8(const bf16* p, float* v) { unpack8<bf16>(*(const uint4*)p, v); }
__device__ __forceinline__ void store8(float* p, const float* v)
{
    ((float4*)p)[0] = make_float4(v[0], v[1], v[2], v[3]);
    ((float4*)p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}
__device__ __forceinline__ void store8(f16* p, const float* v) { *(uint4*)p = pack8<f16>(v); }
__device__ __forceinline__ void store8(bf16* p, const float* v) { *(uint4*)p = pack8<bf16>(v); }

// Row offsets of up to four operands over the leading dims of [..., D] tensors whose last dim is contiguous
// (collapsed on the host; operand strides in elements, zero where an operand is broadcast).
// flags: MAP_INDEX32 when the row count and every operand's largest offset fit in 31 bits.
#define ROW_DIMS 4
struct RowMap4
{
    int rank;
    int flags;
    i64 shape[ROW_DIMS];
    i64 stride[4][ROW_DIMS];
};
static_assert(sizeof(RowMap4) == 168, "RowMap4 must match KernelArgs.cs");

__device__ __forceinline__ void row_offsets(const RowMap4& m, i64 r, i64* o)
{
    if (m.flags & MAP_INDEX32)
    {
        // 32-bit division is several times cheaper than 64-bit; rows of a few vectors are bound by it otherwise.
        u32 q32 = (u32)r, a[4] = { 0, 0, 0, 0 };
        for (int d = m.rank - 1; d >= 0; --d)
        {
            u32 n = (u32)m.shape[d];
            u32 q = q32 / n;
            u32 k = q32 - q * n;
            q32 = q;
#pragma unroll
            for (int j = 0; j < 4; ++j) a[j] += k * (u32)m.stride[j][d];
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) o[j] = a[j];
        return;
    }
    o[0] = 0; o[1] = 0; o[2] = 0; o[3] = 0;
    for (int d = m.rank - 1; d >= 0; --d)
    {
        i64 n = m.shape[d];
        i64 q = r / n;
        i64 k = r - q * n;
        r = q;
#pragma unroll
        for (int j = 0; j < 4; ++j) o[j] += k * m.stride[j][d];
    }
}

// Activations shared by the element-wise, GEMM-epilogue and norm kernels (codes match Activation in C#).
#define ACT_NONE 0
#define ACT_GELU_TANH 1
#define ACT_GELU 2
#define ACT_SILU 3
#define ACT_RELU 4

__device__ __forceinline__ float gelu_tanh(float x)
{
    const float k = 0.7978845608028654f;
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

__device__ __forceinline__ float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float relu(float x) { return x != x ? x : fmaxf(x, 0.0f); }

__device__ __forceinline__ float activate(int act, float x)
{
    switch (act)
    {
        case ACT_GELU_TANH: return gelu_tanh(x);
        case ACT_GELU: return gelu_erf(x);
        case ACT_SILU: return x * sigmoid(x);
        case ACT_RELU: return relu(x);
        default: return x;
    }
}

#define LOG2E 1.4426950408889634f
// The largest finite E4M3 value, what the FP8 linears and the 8-bit attention's P and V scale into.
#define E4M3_MAX 448.0f

// Two floats to two E4M3 bytes (RNE, saturating to +-448; PTX puts the first source in the upper byte): lo in the low
// byte. The conversion exists from sm_89 on (the 8-bit attention modules; fp8.cu writes the rounding out instead).
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 890
__device__ __forceinline__ u32 e4m3x2(float lo, float hi)
{
    unsigned short r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
    return (u32)r;
}
// Four values in one word (bytes 0..3 = v0..v3): the second pair's conversion writes the word's upper half itself
// (F2FP's merge form), where the shift-and-or of two e4m3x2 results costs a PRMT.
__device__ __forceinline__ u32 e4m3x4(float v0, float v1, float v2, float v3)
{
    u32 r;
    asm("{\n.reg .b16 l, h;\ncvt.rn.satfinite.e4m3x2.f32 l, %2, %1;\ncvt.rn.satfinite.e4m3x2.f32 h, %4, %3;\nmov.b32 %0, {l, h};\n}"
        : "=r"(r) : "f"(v0), "f"(v1), "f"(v2), "f"(v3));
    return r;
}
#endif

__device__ __forceinline__ i64 grid_stride() { return (i64)blockDim.x * gridDim.x; }
__device__ __forceinline__ i64 global_index() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }

// The grid-stride loops over an IndexMap3 shared by the copy, fill, map and binary kernels: body(o0, o1, o2) gets each
// index's operand offsets, computed in 32 bits where the host set MAP_INDEX32. Under MAP_VECTOR8 every index and
// offset counts eight-element vectors.
template <typename Body>
__device__ __forceinline__ void for_each_vector8(const IndexMap3& m, Body body)
{
    for (i64 i = global_index(); i < m.count; i += grid_stride())
    {
        i64 o0, o1, o2;
        if (m.flags & MAP_INDEX32) offsets3_32(m, (u32)i, o0, o1, o2);
        else offsets3(m, i, o0, o1, o2);
        body(o0, o1, o2);
    }
}

template <typename Body>
__device__ __forceinline__ void for_each_strided(const IndexMap3& m, Body body)
{
    if (m.flags & MAP_INDEX32)
    {
        for (u32 i = (u32)global_index(); i < (u32)m.count; i += (u32)grid_stride())
        {
            i64 o0, o1, o2;
            offsets3_32(m, i, o0, o1, o2);
            body(o0, o1, o2);
        }
        return;
    }
    for (i64 i = global_index(); i < m.count; i += grid_stride())
    {
        i64 o0, o1, o2;
        offsets3(m, i, o0, o1, o2);
        body(o0, o1, o2);
    }
}

// Kernel entry points over storage types, named as the host looks them up: NAME_f32, NAME_f16, NAME_bf16 (floating
// types) or NAME_b16, NAME_b32, NAME_b64 (raw bit patterns), each calling IMPL<type>(a) with its argument struct ARGS.
#define FLOAT_KERNELS(NAME, ARGS, IMPL) \
    extern "C" __global__ void NAME##_f32(ARGS a) { IMPL<float>(a); } \
    extern "C" __global__ void NAME##_f16(ARGS a) { IMPL<f16>(a); } \
    extern "C" __global__ void NAME##_bf16(ARGS a) { IMPL<bf16>(a); }
#define BITS_KERNELS(NAME, ARGS, IMPL) \
    extern "C" __global__ void NAME##_b16(ARGS a) { IMPL<u16>(a); } \
    extern "C" __global__ void NAME##_b32(ARGS a) { IMPL<u32>(a); } \
    extern "C" __global__ void NAME##_b64(ARGS a) { IMPL<u64>(a); }
// The (input, output) type pairs of the element-wise, row and rotary kernels, M(NI, TI, NO, TO) for each: every
// floating type to itself, and the half types widened to float.
#define IO_TYPE_PAIRS(M) \
    M(f32, float, f32, float) M(f16, f16, f16, f16) M(bf16, bf16, bf16, bf16) M(f16, f16, f32, float) M(bf16, bf16, f32, float)

// Block-wide reductions (blockDim.x a multiple of 32, at most 1024). Every thread gets the result.
template <typename T> struct SumOp { static __device__ __forceinline__ T apply(T a, T b) { return a + b; } };
template <typename T> struct MaxOp { static __device__ __forceinline__ T apply(T a, T b) { return a != a || b != b ? (a != a ? a : b) : (a > b ? a : b); } };
template <typename T> struct MinOp { static __device__ __forceinline__ T apply(T a, T b) { return a != a || b != b ? (a != a ? a : b) : (a < b ? a : b); } };

template <typename Op, typename T>
__device__ __forceinline__ T warp_reduce(T v)
{
    for (int o = 16; o > 0; o >>= 1) v = Op::apply(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

template <typename Op, typename T>
__device__ T block_reduce(T v, T* scratch)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_reduce<Op>(v);
    __syncthreads();  // scratch may still be read by a previous reduction
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    T r = scratch[0];
    for (int w = 1; w < warps; ++w) r = Op::apply(r, scratch[w]);
    return r;
}

// FP8 E4M3 written out (no cuda_fp8.h), to match the CPU reference (E4M3 in C#) bit for bit: round to nearest even,
// saturate at +-448, subnormals in steps of 2^-9, NaN -> 0x7F. Plain CUDA C on any architecture (fp8.cu, ln_rows_impl).
typedef unsigned char u8;

__device__ __forceinline__ u8 e4m3_from_float(float v)
{
    u32 bits = __float_as_uint(v);
    u8 sign = (u8)((bits >> 24) & 0x80u);
    if (v != v) return (u8)(sign | 0x7Fu);
    float a = fabsf(v);
    if (a > E4M3_MAX) return (u8)(sign | 0x7Eu);
    if (a < 0.015625f)
    {
        // a · 512 is exact (a power-of-two scaling); rintf rounds half to even.
        return (u8)(sign | (u8)rintf(a * 512.0f));
    }
    u32 ab = bits & 0x7fffffffu;
    int e = (int)(ab >> 23) - 127;
    u32 m = ab & 0x7fffffu;
    u32 kept = m >> 20, rest = m & 0xfffffu;
    if (rest > 0x80000u || (rest == 0x80000u && (kept & 1u))) kept++;
    if (kept == 8u) { kept = 0u; e++; }
    int code = ((e + 7) << 3) | (int)kept;
    return (u8)(sign | (u8)(code < 0x7E ? code : 0x7E));
}

// RN(a / d) in float for a positive finite float a and a constant integer divisor d (448, 127), without __fdiv_rn's
// slow-path call, whose register saves spilled in kernels that hold whole rows: the quotient is made in double
// (a · RN(1/d) corrected twice with exact FMA residuals: the correctly rounded double quotient) and rounded once to
// float (checked exhaustively for both divisors, scripts/kernels/fp8-division-check.c).
__device__ __forceinline__ float quotient_rn(float a, double d)
{
    const double x = a, r = 1.0 / d;  // d is a literal at every call: folded
    double q = x * r;
    q = __fma_rn(__fma_rn(-d, q, x), r, q);
    q = __fma_rn(__fma_rn(-d, q, x), r, q);
    return __double2float_rn(q);
}

// amax / 448, or 1 for a row that is all zeros or not finite (as E4M3.RowScale).
__device__ __forceinline__ float e4m3_row_scale(float amax)
{
    if (!(amax > 0.0f && amax < F_INF)) return 1.0f;
    return quotient_rn(amax, 448.0);
}

// x / s for every value of a row that shares the scale s (> 0, or 0 when the row's amax / 448 underflowed), bit for bit
// __fdiv_rn's codes without its slow-path call, whose register saves spilled in kernels holding a whole row in
// registers. The row's divisor is made once: b = s·2^k in [1, 2) and y = RN(1/b), chosen among the neighbours of a
// Newton-refined hardware reciprocal by the smallest exact residual |1 − b·y|. A quotient is then a·2^k · y corrected
// twice with exact FMA residuals (Markstein: with y = RN(1/b) and a faithful q, RN(q + (a − b·q)·y) = RN(a / b)),
// magnitudes apart and the sign put back, so signed zeros survive. Below 2^-100 a·2^k or the residuals may underflow,
// but such a quotient is far below E4M3's least step (2^-9): its code is 0 with a's sign either way. ±0, ±∞ and NaN
// take the plain product (a canonical NaN, as division gives), and a zero scale gives ±∞ (0/0 and NaN: NaN) as
// division by zero does. Checked against IEEE division on 10^8 (value, row amax) pairs and every b in [1, 2)
// (scripts/kernels/fp8-division-check.c).
struct RowDivisor
{
    float b;      // s·2^k in [1, 2), or 0 for a zero scale
    float y;      // RN(1/b), or +inf for a zero scale
    float pre;    // 2^64 for a subnormal s, else 1 (k in two steps: every factor a normal float)
    float scale;  // 2^k / pre
};

__device__ __forceinline__ RowDivisor row_divisor(float s)
{
    RowDivisor d;
    d.pre = 1.0f;
    if (s == 0.0f)
    {
        d.b = 0.0f;
        d.y = F_INF;
        d.scale = 1.0f;
        return d;
    }
    if (s < 1.17549435e-38f)
    {
        d.pre = 18446744073709551616.0f;  // 2^64
        s = s * d.pre;
    }
    const int e = (int)(__float_as_uint(s) >> 23) - 127;  // s = 1.m · 2^e, e in [-126, 120] (s <= FLT_MAX / 448)
    d.scale = __uint_as_float((u32)(127 - e) << 23);
    d.b = s * d.scale;
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(d.b));
    y = __fmaf_rn(__fmaf_rn(-d.b, y, 1.0f), y, y);
    const float lo = __uint_as_float(__float_as_uint(y) - 1u), hi = __uint_as_float(__float_as_uint(y) + 1u);
    float ey = fabsf(__fmaf_rn(-d.b, y, 1.0f));
    const float el = fabsf(__fmaf_rn(-d.b, lo, 1.0f)), eh = fabsf(__fmaf_rn(-d.b, hi, 1.0f));
    if (el < ey) { y = lo; ey = el; }
    if (eh < ey) y = hi;
    d.y = y;
    return d;
}

__device__ __forceinline__ float divide_rn(float a, const RowDivisor& d)
{
    const float x = __fmul_rn(__fmul_rn(a, d.pre), d.scale);
    const float q0 = __fmul_rn(x, d.y);
    if (!(x != 0.0f && fabsf(x) < F_INF && d.b != 0.0f)) return q0;
    const float ax = fabsf(x);
    float q = fabsf(q0);
    float r = __fmaf_rn(-d.b, q, ax);
    q = __fmaf_rn(r, d.y, q);
    r = __fmaf_rn(-d.b, q, ax);
    q = __fmaf_rn(r, d.y, q);
    return copysignf(q, x);
}

// Eight values of a row to eight E4M3 codes in two words (value e in byte e % 4 of word e / 4).
// From sm_89 on the conversion instruction does e4m3_from_float's rounding (to nearest even, saturating at ±448,
// subnormals kept) in one instruction a pair instead of about fifteen a value; a quotient that is NaN is the canonical
// positive NaN (divide_rn), which both give as 0x7F.
__device__ __forceinline__ uint2 e4m3x8(const float* f, const RowDivisor& d)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    float q[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) q[e] = divide_rn(f[e], d);
    return make_uint2(e4m3x2(q[0], q[1]) | (e4m3x2(q[2], q[3]) << 16), e4m3x2(q[4], q[5]) | (e4m3x2(q[6], q[7]) << 16));
#else
    u32 w[2] = {0u, 0u};
#pragma unroll
    for (int e = 0; e < 8; ++e) w[e >> 2] |= (u32)e4m3_from_float(divide_rn(f[e], d)) << (8 * (e & 3));
    return make_uint2(w[0], w[1]);
#endif
}

// LayerNorm over rows of a contiguous last dim, optionally modulated: y = (norm(x)·γ + β)·(1 + scale) + shift, with
// scale and shift rows chosen per row through the row map (one per batch item, say). A group of `lanes` threads
// (a power of two up to 32) holds one row in registers, VPL vectors of 8 elements per thread: one read of x, one write
// of y. Statistics in double as in layer_norm_impl, so results agree with it (and the CPU) to rounding.
// Here rather than in norm.cu so that fp8.cu's quantizing form (LN_FP8) runs the very same arithmetic.
struct LnRowsArgs
{
    const void* x;
    void* y;
    const float* gamma;  // [cols] or null
    const float* beta;   // [cols] or null
    const void* scale;   // rows through the map (x's type) or null
    const void* shift;
    i64 rows;
    int cols;
    int lanes;
    float eps;
    int heads;    // ln_rotary_rows only (below)
    RowMap4 map;  // operand 0 = x, 1 = y, 2 = scale, 3 = shift
    // ln_rotary_rows only: rows are (b, h, n) of [B, heads, seq, cols]; the last `rotated` tokens of each (b, h) are
    // rotated by the tables cos/sin [rotated, cols] (x's type, contiguous) after the norm (rotary8_impl's arithmetic).
    const void* cos;
    const void* sin;
    int seq;
    int rotated;
    // ln_fp8_rows only (fp8.cu): y is the rows' E4M3 codes (map operand 1, offsets in bytes) and row_scales their
    // scales, row r's at its codes offset / cols (the host checks that the two layouts agree so).
    float* row_scales;
};
static_assert(sizeof(LnRowsArgs) == 272, "LnRowsArgs must match KernelArgs.cs");

// What ln_rows_impl does with a normalised row: store it, rotate it first (the q/k norm of 5b-style models), or
// quantize it to E4M3 codes and a row scale (the input of an FP8 linear).
#define LN_STORE 0
#define LN_ROTARY 1
#define LN_FP8 2

__device__ __forceinline__ double group_sum(double v, int lanes)
{
    for (int o = lanes >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Eight elements of T as loaded (one uint4 for 16-bit types), widened to float where used: a row held packed takes
// half the registers of the float form (measured on its own: no change in time; kept for the occupancy headroom).
template <typename T> struct Pack8 { uint4 r; };
template <> struct Pack8<float> { uint4 r[2]; };
__device__ __forceinline__ void load_pack(const f16* p, Pack8<f16>& v) { v.r = *(const uint4*)p; }
__device__ __forceinline__ void load_pack(const bf16* p, Pack8<bf16>& v) { v.r = *(const uint4*)p; }
__device__ __forceinline__ void load_pack(const float* p, Pack8<float>& v) { v.r[0] = ((const uint4*)p)[0]; v.r[1] = ((const uint4*)p)[1]; }
__device__ __forceinline__ void unpack(const Pack8<f16>& v, float* f) { unpack8<f16>(v.r, f); }
__device__ __forceinline__ void unpack(const Pack8<bf16>& v, float* f) { unpack8<bf16>(v.r, f); }
__device__ __forceinline__ void unpack(const Pack8<float>& v, float* f)
{
    u32 w[8] = { v.r[0].x, v.r[0].y, v.r[0].z, v.r[0].w, v.r[1].x, v.r[1].y, v.r[1].z, v.r[1].w };
#pragma unroll
    for (int k = 0; k < 8; ++k) f[k] = __uint_as_float(w[k]);
}
// The largest magnitude in a pack as the bit pattern of |value| in T: for IEEE formats the order of |value|'s bits is
// the order of magnitudes (+inf above every finite value, NaN above +inf), so an integer maximum gives the float one's
// value and its NaN propagation without widening each element.
__device__ __forceinline__ u32 abs_max_bits(const Pack8<f16>& v, u32 m)
{
    const u32 w[4] = { v.r.x, v.r.y, v.r.z, v.r.w };
#pragma unroll
    for (int k = 0; k < 4; ++k) m = max(m, max(w[k] & 0x7fffu, (w[k] >> 16) & 0x7fffu));
    return m;
}
__device__ __forceinline__ u32 abs_max_bits(const Pack8<bf16>& v, u32 m) { return abs_max_bits(reinterpret_cast<const Pack8<f16>&>(v), m); }
__device__ __forceinline__ u32 abs_max_bits(const Pack8<float>& v, u32 m)
{
    const u32 w[8] = { v.r[0].x, v.r[0].y, v.r[0].z, v.r[0].w, v.r[1].x, v.r[1].y, v.r[1].z, v.r[1].w };
#pragma unroll
    for (int k = 0; k < 8; ++k) m = max(m, w[k] & 0x7fffffffu);
    return m;
}
__device__ __forceinline__ float abs_bits_to_float(u32 m, f16*) { return f16_to_float((u16)m); }
__device__ __forceinline__ float abs_bits_to_float(u32 m, bf16*) { return bf16_to_float((u16)m); }
__device__ __forceinline__ float abs_bits_to_float(u32 m, float*) { return __uint_as_float(m); }

// A thread's vectors of a row (vector first + j·step) as E4M3 codes under the row's divisor: fp8_quantize_rows8's store
// and the quantizing LayerNorm's (LN_FP8), one loop so that both give the same codes.
template <typename T, int VPL>
__device__ __forceinline__ void store_codes(u8* out, int first, int step, int vecs, const Pack8<T>* v, const RowDivisor& d)
{
#pragma unroll
    for (int j = 0; j < VPL; ++j)
    {
        int c = first + j * step;
        if (c >= vecs) continue;
        float f[8];
        unpack(v[j], f);
        *(uint2*)(out + (i64)c * 8) = e4m3x8(f, d);
    }
}

// Eight floats back into a pack, rounded to T as store8 rounds them.
__device__ __forceinline__ void repack(const float* f, Pack8<f16>& v) { v.r = pack8<f16>(f); }
__device__ __forceinline__ void repack(const float* f, Pack8<bf16>& v) { v.r = pack8<bf16>(f); }
__device__ __forceinline__ void repack(const float* f, Pack8<float>& v)
{
    v.r[0] = make_uint4(__float_as_uint(f[0]), __float_as_uint(f[1]), __float_as_uint(f[2]), __float_as_uint(f[3]));
    v.r[1] = make_uint4(__float_as_uint(f[4]), __float_as_uint(f[5]), __float_as_uint(f[6]), __float_as_uint(f[7]));
}

template <typename T, int VPL, int MODE = LN_STORE>
__device__ void ln_rows_impl(const LnRowsArgs& a)
{
    const int lane = threadIdx.x & 31;
    const int lanes = a.lanes;
    const int l = lane & (lanes - 1);
    const i64 warp = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    i64 row = warp * (32 / lanes) + lane / lanes;
    const bool valid = row < a.rows;
    // The rotary form walks the rows heads fastest: a warp's rows are then one token's heads, which lie side by side in
    // a QKV projection (whole contiguous runs instead of 128-byte pieces) and share one row of the tables (a broadcast
    // load instead of one per head). `row` becomes the (b, h, n) row it stands for.
    i64 table_row = -1;
    if (MODE == LN_ROTARY && valid)
    {
        const u32 heads = (u32)a.heads, seq = (u32)a.seq, r32 = (u32)row;  // the host keeps rows below 2^31
        const u32 t = r32 / heads, h = r32 - t * heads, b = t / seq, n = t - b * seq;
        row = ((i64)b * heads + h) * seq + n;
        const u32 first = seq - (u32)a.rotated;
        if (n >= first) table_row = n - first;
    }
    const int vecs = a.cols / 8;
    i64 o[4] = { 0, 0, 0, 0 };
    if (valid) row_offsets(a.map, row, o);
    const T* x = (const T*)a.x + o[0];
    Pack8<T> v[VPL];
    // One pass of sums and sums of squares in double, then one reduction: at these sizes the E[x²] − mean² form loses
    // nothing in double, and it halves the shuffle chain of the two-pass form.
    // Every load is issued before the first is used: interleaved with the double-precision sums, each waited for
    // DRAM in turn and the kernel ran at a third of the bandwidth with the SMs mostly idle.
#pragma unroll
    for (int j = 0; j < VPL; ++j)
    {
        int c = l + j * lanes;
        if (valid && c < vecs) load_pack(x + c * 8, v[j]);
    }
    double s = 0, q = 0;
#pragma unroll
    for (int j = 0; j < VPL; ++j)
    {
        int c = l + j * lanes;
        if (valid && c < vecs)
        {
            float f[8];
            unpack(v[j], f);
#pragma unroll
            for (int e = 0; e < 8; ++e)
            {
                s += f[e];
                q += (double)f[e] * f[e];
            }
        }
    }
    // Every lane of the warp takes part in the shuffles, rows past the end included.
    s = group_sum(s, lanes);
    q = group_sum(q, lanes);
    double mean = s / a.cols;
    double variance = q / a.cols - mean * mean;
    if (variance < 0) variance = 0;
    // The quantizing form's rows past the end stay for its second reduction (the row's amax) and leave after it.
    if (MODE != LN_FP8 && !valid) return;
    float inv = (float)(1.0 / sqrt(variance + (double)a.eps));
    float m = (float)mean;
    T* y = (T*)a.y + o[1];
    const T* sc = a.scale ? (const T*)a.scale + o[2] : 0;
    const T* sh = a.shift ? (const T*)a.shift + o[3] : 0;
    u32 amax_bits = 0;
#pragma unroll
    for (int j = 0; j < VPL; ++j)
    {
        int c = l + j * lanes;
        if (c >= vecs || (MODE == LN_FP8 && !valid)) continue;
        // γ and β as whole vectors too: read element by element, lane l's column 8·l makes each warp-wide load touch
        // 32 sectors for 128 useful bytes, which made the L1, not DRAM, the limit of this kernel.
        float sv[8], hv[8], gv[8], bv[8];
        if (sc) load8(sc + c * 8, sv);
        if (sh) load8(sh + c * 8, hv);
        if (a.gamma) load8(a.gamma + c * 8, gv);
        if (a.beta) load8(a.beta + c * 8, bv);
        float out[8];
        unpack(v[j], out);
#pragma unroll
        for (int e = 0; e < 8; ++e)
        {
            float t = __fmul_rn(out[e] - m, inv);
            if (a.gamma && a.beta) t = __fmaf_rn(t, gv[e], bv[e]);
            else if (a.gamma) t = __fmul_rn(t, gv[e]);
            else if (a.beta) t = __fadd_rn(t, bv[e]);
            if (sc) t = __fmul_rn(t, __fadd_rn(1.0f, sv[e]));
            if (sh) t = __fadd_rn(t, hv[e]);
            out[e] = t;
        }
        if (MODE == LN_ROTARY && table_row >= 0)
        {
            // The norm's output as stored (rounded to T), then the pairs rotated: the unfused ops' values exactly.
            float cv[8], sv2[8];
            load8((const T*)a.cos + table_row * a.cols + c * 8, cv);
            load8((const T*)a.sin + table_row * a.cols + c * 8, sv2);
#pragma unroll
            for (int p = 0; p < 4; ++p)
            {
                float re = to_float(from_float<T>(out[2 * p])), im = to_float(from_float<T>(out[2 * p + 1]));
                out[2 * p] = __fsub_rn(__fmul_rn(re, cv[2 * p]), __fmul_rn(im, sv2[2 * p]));
                out[2 * p + 1] = __fadd_rn(__fmul_rn(im, cv[2 * p + 1]), __fmul_rn(re, sv2[2 * p + 1]));
            }
        }
        if (MODE == LN_FP8)
        {
            // The row as the norm alone stores it (rounded to T), kept packed in v for the codes after the amax:
            // fp8_quantize_rows8's input exactly, without writing it out and reading it back.
            repack(out, v[j]);
            amax_bits = abs_max_bits(v[j], amax_bits);
        }
        else store8(y + c * 8, out);
    }
    if (MODE == LN_FP8)
    {
        // The maximum is exact whatever the order, so the group's shuffles give fp8_quantize_rows8's block result (NaN
        // included: any NaN makes the scale 1 there and here).
        for (int s2 = lanes >> 1; s2 > 0; s2 >>= 1) amax_bits = max(amax_bits, __shfl_xor_sync(0xffffffffu, amax_bits, s2));
        if (!valid) return;
        const float scale = e4m3_row_scale(abs_bits_to_float(amax_bits, (T*)0));
        const RowDivisor divisor = row_divisor(scale);
        // 32-bit: the host keeps the codes' offsets below 2^31 (a 64-bit division is a call, and its saves spilled).
        const u32 at = (u32)o[1];
        u8* codes = (u8*)a.y + at;
        if (l == 0) a.row_scales[at / (u32)a.cols] = scale;
        store_codes<T, VPL>(codes, l, lanes, vecs, v, divisor);
    }
}

// Arguments of the attention kernels (attention.cu, attention_sm90.cu).
struct AttentionArgs
{
    const void* q;     // [B, H, Nq, D], any strides
    const void* k;     // [B, H, Nk, D]
    const void* v;     // [B, H, Nk, D]
    const void* bias;  // [B, H, Nq, Nk] broadcast view (stride 0 allowed) or null
    void* y;           // [B, H, Nq, D], any strides
    i64 qs[4];
    i64 ks[4];
    i64 vs[4];
    i64 bs[4];
    i64 ys[4];
    int heads;
    int nq;
    int nk;
    int d;
    float scale;
    int has_bias;
    int vector_kv;  // k and v rows are contiguous and 16-byte aligned, d a multiple of 8: load 8 values at a time
    int pad;
};
static_assert(sizeof(AttentionArgs) == 232, "AttentionArgs must match KernelArgs.cs");

// The 8-bit attention's quantized operands and scales (--attention sage8): written by attention_sage8.cu's pre-pass,
// read by its mma.sync kernel and by attention_sage8_sm90.cu's wgmma kernel.
struct Sage8Args
{
    AttentionArgs a;
    signed char* q8;   // [BH][nq_pad][64]
    float* qscale;     // [BH][nq_pad]
    signed char* k8;   // [BH][nk_pad][64]
    float* kscale;     // [BH][nk_pad]
    unsigned char* vt8;  // [BH][64][nk_pad], keys permuted per 32-block
    float* vscale;     // [BH][64]
    float* kmean;      // [BH][64]
    int nq_pad;
    int nk_pad;
};
static_assert(sizeof(Sage8Args) == 296, "Sage8Args must match KernelArgs.cs");

// The 8-bit attention's row sums (the softmax's denominators), in both kernels and the CPU emulation
// (src/CogVideoX.Engine/Ops/Sage8Attention.cs), which follows the default:
//   1 (default): on the tensor cores, as the sum of the E4M3 codes of P * 448 that P.V multiplies (an extra column of
//      ones beside V: an N = 8 mma.sync, or P.V's wgmma at N = 72). Numerator and denominator then weigh the same
//      rounded P; the error against exact attention is the same as with float sums (CPU, random inputs at head dim 64:
//      3.858 % against 3.860 % relative), and the 32 adds and 2 dependent chains per thread and tile leave the softmax.
//   0: in float from the unrounded P (the first form; kept to time the two against each other: the CPU emulation
//      follows the default only, so the op catalogue's bound does not hold for 0 on small key counts).
#ifndef SAGE_TC_ROWSUM
#define SAGE_TC_ROWSUM 1
#endif
#if SAGE_TC_ROWSUM != 0 && SAGE_TC_ROWSUM != 1
#error "SAGE_TC_ROWSUM is 0 or 1 (the wgmma kernel's stage size and the host's copy of it follow it)"
#endif

// ---- Hopper (sm_90a) building blocks of attention_sm90.cu and attention_sage8_sm90.cu ------------------------------
// Device code sees them for the architecture-specific target only (NVRTC, clang and nvcc define
// __CUDA_ARCH_FEAT_SM90_ALL for sm_90a alone; wgmma and setmaxnreg exist nowhere else), so every other module and
// target compiles without them. An nvcc host pass (no __CUDA_ARCH__: scripts/kernels' harnesses include these
// sources) sees them too, as the host code there uses TensorMap.
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)

// A CUtensorMap: 128 opaque bytes the driver encodes (cuTensorMapEncodeTiled), 64-byte aligned.
struct __align__(64) TensorMap
{
    u64 bits[16];
};

__device__ __forceinline__ u32 smem_addr(const void* p)
{
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

__device__ __forceinline__ float ex2_approx(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// mbarriers (shared-memory addresses): the producer's copies complete on "full", consumers release on "empty".
__device__ __forceinline__ void mbar_init(u32 bar, u32 count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// After the initialisations, before the block barrier that publishes them.
__device__ __forceinline__ void mbar_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
__device__ __forceinline__ void mbar_expect_tx(u32 bar, u32 bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(u32 bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Whether the barrier's phase of the given parity has completed, without waiting (test_wait never suspends the thread,
// where try_wait may): asked early, the answer's latency hides behind other work, and only a phase not yet completed
// costs a wait (mbar_wait) where the data is needed.
__device__ __forceinline__ u32 mbar_test(u32 bar, u32 parity)
{
    u32 done;
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.test_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done) : "r"(bar), "r"(parity) : "memory");
    return done;
}
// Waits until the barrier's phase of the given parity has completed.
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity)
{
    asm volatile(
        "{\n.reg .pred done;\nWAIT:\n"
        "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra WAIT;\n}\n" ::"r"(bar), "r"(parity) : "memory");
}

// The warp-specialised split: the producer warpgroup gives registers back, the consumers take them (per thread).
template <int N> __device__ __forceinline__ void setmaxnreg_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N)); }
template <int N> __device__ __forceinline__ void setmaxnreg_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N)); }

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }

// Keeps the compiler from moving register reads or writes across an asynchronous wgmma that owns them.
__device__ __forceinline__ void fence_regs(float* r, int n)
{
#pragma unroll
    for (int i = 0; i < n; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
__device__ __forceinline__ void fence_regs(int* r, int n)
{
#pragma unroll
    for (int i = 0; i < n; ++i) asm volatile("" : "+r"(r[i])::"memory");
}

// A 64 x 64 wgmma accumulator is 32 registers a thread: its operand list and its read-write constraints (C is
// WGMMA_RW_F for float, WGMMA_RW_I for int32 accumulators), operands %0..%31.
#define WGMMA_ACC32 \
    "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}"
#define WGMMA_ACC32_OPERANDS(C, d) \
    C(d[0]), C(d[1]), C(d[2]), C(d[3]), C(d[4]), C(d[5]), C(d[6]), C(d[7]), C(d[8]), C(d[9]), C(d[10]), C(d[11]), \
    C(d[12]), C(d[13]), C(d[14]), C(d[15]), C(d[16]), C(d[17]), C(d[18]), C(d[19]), C(d[20]), C(d[21]), C(d[22]), \
    C(d[23]), C(d[24]), C(d[25]), C(d[26]), C(d[27]), C(d[28]), C(d[29]), C(d[30]), C(d[31])
#define WGMMA_RW_F(x) "+f"(x)
#define WGMMA_RW_I(x) "+r"(x)

// Shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"): bits 0-13 start address >> 4 (shared memory
// ends below 256 KiB, so 14 bits hold it); 16-29 leading byte offset >> 4, set to 16 bytes (a swizzled K-major tile's
// k-steps stay inside one swizzle row, so it is unused; CUTLASS sets 1 too); 32-45 stride byte offset >> 4, the
// distance between 8-row groups; 49-51 base offset 0 (tiles start on a swizzle-pattern boundary); 62-63 swizzle mode.
// A k-step or a stage moves the start address field (bytes / 16) of a descriptor built once.
#define WGMMA_SWIZZLE_128B 1
#define WGMMA_SWIZZLE_64B 2
__device__ __forceinline__ u64 wgmma_desc(u32 addr, u32 stride_bytes, u32 swizzle)
{
    u64 desc = (u64)((addr & 0x3FFFF) >> 4);
    desc |= (u64)1 << 16;
    desc |= (u64)(stride_bytes >> 4) << 32;
    desc |= (u64)swizzle << 62;
    return desc;
}

// How many of the 8 four-element chunks of a thread's score tile take their exponentials on the FMA pipes
// (ex2_poly) instead of the special-function unit (FlashAttention-4's split). Measured on an H200 (2026-12-05,
// docs/gpu-runs/2026-12-05-h200-results-3.md): slower at every setting (9.28 -> 10.60 -> 11.60 ms a 2b call for 0, 2,
// 3), as these kernels are bound by instruction issue at head dim 64, not by the SFU. Kept at 0; the A/B stays
// possible through COGVIDEOX_KERNEL_DEFINES.
#ifndef ATTN_EXP_EMU
#define ATTN_EXP_EMU 0
#endif

// 2^x for x <= 0 on the FMA pipes, within 2.4e-7 relative (ex2.approx's own accuracy, so P rounds to the same
// 16-bit value but in rare ties): x = j + f with j = round(x) (the 1.5 * 2^23 shift leaves j in the low mantissa
// bits) and f in [-0.5, 0.5]; 2^f by a degree-5 fit of the relative error; j added to the exponent field.
// x is clamped at -126 so 2^j stays a normal number's exponent: masked keys (-inf) become 2^-126, not 0, and
// weigh nothing against a row sum of at least 1.
__device__ __forceinline__ float ex2_poly(float x)
{
    x = fmaxf(x, -126.0f);
    const float t = __fadd_rn(x, 12582912.0f);
    const float f = __fsub_rn(x, __fsub_rn(t, 12582912.0f));
    float p = 1.32764725e-3f;
    p = __fmaf_rn(p, f, 9.67554189e-3f);
    p = __fmaf_rn(p, f, 5.55071309e-2f);
    p = __fmaf_rn(p, f, 2.40221202e-1f);
    p = __fmaf_rn(p, f, 6.93146944e-1f);
    p = __fmaf_rn(p, f, 1.00000012f);
    return __int_as_float(__float_as_int(p) + (__float_as_int(t) << 23));
}

// Online softmax of one 64 x 64 score tile in the wgmma accumulator layout, in place: the scores become
// exp2(S * sl2 - m) (sl2: the softmax scale times log2 e, or 1 where the scores carry it already; this thread holds
// rows r and r + 8, see below); updates the running maxima (base 2) and this thread's share of the row sums (of the
// unrounded P), and returns the factors the output accumulated so far must be scaled by (0 on the first tile, whose
// maxima are -inf). Element i of the accumulator is row r + 8 ((i >> 1) & 1), column 8 (i >> 2) + 2 (lane & 3) + (i & 1).
__device__ __forceinline__ void softmax_tile(float* s, float& m0, float& m1, float& l0, float& l1, float& alpha0,
                                             float& alpha1, int kv0, int nk, int lane, float sl2)
{
    // Keys past the end (last tile only) take no weight.
    if (kv0 + 64 > nk)
    {
#pragma unroll
        for (int i = 0; i < 32; ++i)
        {
            int col = kv0 + (i >> 2) * 8 + (lane & 3) * 2 + (i & 1);
            if (col >= nk) s[i] = -F_INF;
        }
    }
    // Row maxima: this thread holds rows r (s[4c], s[4c+1]) and r + 8 (s[4c+2], s[4c+3]); a quad shares a row.
    float x0 = -F_INF, x1 = -F_INF;
#pragma unroll
    for (int c = 0; c < 8; ++c)
    {
        x0 = fmaxf(x0, fmaxf(s[4 * c], s[4 * c + 1]));
        x1 = fmaxf(x1, fmaxf(s[4 * c + 2], s[4 * c + 3]));
    }
    x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 1));
    x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 2));
    x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 1));
    x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 2));
    const float n0 = fmaxf(m0, x0 * sl2), n1 = fmaxf(m1, x1 * sl2);
    alpha0 = ex2_approx(m0 - n0);
    alpha1 = ex2_approx(m1 - n1);
    m0 = n0;
    m1 = n1;
    float r0 = 0.0f, r1 = 0.0f;
#pragma unroll
    for (int c = 0; c < 8; ++c)
    {
        if (c < ATTN_EXP_EMU)
        {
            s[4 * c] = ex2_poly(s[4 * c] * sl2 - n0);
            s[4 * c + 1] = ex2_poly(s[4 * c + 1] * sl2 - n0);
            s[4 * c + 2] = ex2_poly(s[4 * c + 2] * sl2 - n1);
            s[4 * c + 3] = ex2_poly(s[4 * c + 3] * sl2 - n1);
        }
        else
        {
            s[4 * c] = ex2_approx(s[4 * c] * sl2 - n0);
            s[4 * c + 1] = ex2_approx(s[4 * c + 1] * sl2 - n0);
            s[4 * c + 2] = ex2_approx(s[4 * c + 2] * sl2 - n1);
            s[4 * c + 3] = ex2_approx(s[4 * c + 3] * sl2 - n1);
        }
        r0 += s[4 * c] + s[4 * c + 1];
        r1 += s[4 * c + 2] + s[4 * c + 3];
    }
    l0 = l0 * alpha0 + r0;
    l1 = l1 * alpha1 + r1;
}

#endif  // sm_90a
