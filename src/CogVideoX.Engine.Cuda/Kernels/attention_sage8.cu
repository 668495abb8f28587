// 8-bit attention (SageAttention2-style, arXiv 2411.10958), sm_89 / sm_90: the CPU reference is
// src/CogVideoX.Engine/Ops/Sage8Attention.cs and this file follows its steps and scale groups exactly.
// Compiled lazily at the first --attention sage8 call (never by doctor or the default path); a first, correct
// version with mma.sync (not wgmma): UNRUN when written — the op catalogue's sage8_attention cases check it.
//
//   sage8_scan_q       grid (splits + nq_pad / 64, BH), in launch order every head's Q blocks, then every head's scan
//                      blocks: a Q block quantizes 64 rows of Q: INT8, one scale per rows {r, r + 8} of each 16-row
//                      tile (the rows one thread's accumulators hold), the softmax scale times log2(e) folded into it;
//                      a scan block takes 512 tokens of one head: partial sums of K and maxima of |V| per channel
//   sage8_quant_kv     per (b, h, SAGE_KV_TILES 64-key tiles): the partials folded into K's mean and V's per-channel
//                      scale (amax / 448), then INT8 (K - mean), one scale per (token mod 8) div 2 of a tile, and V in
//                      E4M3, transposed [channel][key] with the keys of each 32-block permuted to the order the P
//                      fragment has them in (below), so the P.V B operand is one 32-bit load
//   sage8_legacy_*     the first, five-launch form of the same pre-pass (scan, scan_finish, quant_q/k/v), kept as the
//                      reference the two launches must match bit for bit (op catalogue: sage8_attention_prepass)
//   sage8_attention_*  4 warps x 16 query rows; per 64-key tile: S = Q8.K8^T (mma m16n8k32 s8, int32), dequantized
//                      in float; online softmax in base 2; P*448 to E4M3; P.V (mma m16n8k32 e4m3, float) into a
//                      per-tile accumulator that is then added to the running one (two-level accumulation).
// Head dim 64 only. Padded rows and keys (to 64) are zeros; padded keys are masked to -inf.

// AttentionArgs, Sage8Args, LOG2E, E4M3_MAX and e4m3x2 (the sm_89 conversion): common.cuh.

// ---- The legacy pre-pass (sage8_legacy_*): scalar strided loads, one launch per step; the reference of the two-launch
// form below, which must match it bit for bit (sage8_attention_prepass cases; Sage8KernelChoice.ForceLegacyPrepass).

template <typename T> __device__ __forceinline__ float load_elem(const void* base, i64 offset)
{
    return to_float(((const T*)base)[offset]);
}

// The same rounding as Int8Quantizer: round(x / s) to nearest even, one IEEE division, clamped to +-127.
__device__ __forceinline__ signed char quant_s8(float x, float s)
{
    int q = __float2int_rn(__fdiv_rn(x, s));
    return (signed char)max(-127, min(127, q));
}

__device__ __forceinline__ float int8_scale(float amax)
{
    float s = __fdiv_rn(amax, 127.0f);
    return (s > 0.0f && s < F_INF) ? s : 1.0f;
}

__device__ __forceinline__ float warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// K's mean and V's channel maxima read all of K and V once. One block per (b, h) walking every token left 60 of 132
// multiprocessors idle at 2 x 30 heads and one load in flight per thread; so each block takes SAGE_SCAN_CHUNK tokens
// of one head (16 token lanes x 64 channels, coalesced rows) and writes its partial sums and maxima, and a second pass
// combines a head's partials in block order (deterministic; the mean is not the CPU's token order, which the op
// catalogue's half-type bound covers). The kmean buffer holds [BH][64] means, then [BH][splits][128] partials: K's
// sums in 0..63, V's |max| in 64..127, splits = ceil(nk / SAGE_SCAN_CHUNK) (the host sizes it the same way).
#define SAGE_SCAN_LANES 16
#define SAGE_SCAN_THREADS (SAGE_SCAN_LANES * 64)
#define SAGE_SCAN_CHUNK 512

template <typename T>
__device__ void scan_impl(const Sage8Args& s)
{
    const AttentionArgs& a = s.a;
    const int c = threadIdx.x & 63, lane = threadIdx.x >> 6;
    const i64 bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
    const int t0 = blockIdx.x * SAGE_SCAN_CHUNK, t1 = min(a.nk, t0 + SAGE_SCAN_CHUNK);
    const i64 kb = b * a.ks[0] + h * a.ks[1] + c * a.ks[3], vb = b * a.vs[0] + h * a.vs[1] + c * a.vs[3];
    float sum = 0.0f, amax = 0.0f;
    // Unrolled by 8 so a thread's loads are in flight together. (A fixed trip count with a bound check instead took
    // 0.166 ms a call on an H100 against this form's 0.120 ms. clang, which only type-checks these sources, cannot
    // unroll a runtime-bounded loop and fails the check with a warning, so it does not see the pragma.)
#if !defined(__clang__)
#pragma unroll 8
#endif
    for (int t = t0 + lane; t < t1; t += SAGE_SCAN_LANES)
    {
        sum += load_elem<T>(a.k, kb + t * a.ks[2]);
        amax = fmaxf(amax, fabsf(load_elem<T>(a.v, vb + t * a.vs[2])));
    }
    __shared__ float sums[SAGE_SCAN_THREADS], maxima[SAGE_SCAN_THREADS];
    sums[threadIdx.x] = sum;
    maxima[threadIdx.x] = amax;
    __syncthreads();
    if (threadIdx.x < 64)
    {
        float total = 0.0f, m = 0.0f;
#pragma unroll
        for (int i = 0; i < SAGE_SCAN_LANES; ++i)
        {
            total += sums[i * 64 + c];
            m = fmaxf(m, maxima[i * 64 + c]);
        }
        float* part = s.kmean + (i64)gridDim.y * 64 + (bh * gridDim.x + blockIdx.x) * 128;
        part[c] = total;
        part[64 + c] = m;
    }
}

// One block of 64 threads per (b, h): K's mean per channel and V's channel scale (|max| / 448, 1 for an all-zero
// channel) from the partials.
__device__ void scan_finish_impl(const Sage8Args& s)
{
    const AttentionArgs& a = s.a;
    const int c = threadIdx.x;
    const i64 bh = blockIdx.x;
    const int splits = (a.nk + SAGE_SCAN_CHUNK - 1) / SAGE_SCAN_CHUNK;
    const float* part = s.kmean + (i64)gridDim.x * 64 + bh * splits * 128;
    float total = 0.0f, m = 0.0f;
    for (int i = 0; i < splits; ++i)
    {
        total += part[i * 128 + c];
        m = fmaxf(m, part[i * 128 + 64 + c]);
    }
    s.kmean[bh * 64 + c] = __fdiv_rn(total, (float)a.nk);
    const float sc = __fdiv_rn(m, E4M3_MAX);
    s.vscale[bh * 64 + c] = (sc > 0.0f && sc < F_INF) ? sc : 1.0f;
}

template <typename T>
__device__ void quant_q_impl(const Sage8Args& s)
{
    // 256 threads: warp g takes rows tile + g and tile + g + 8, two channels of each per lane.
    const AttentionArgs& a = s.a;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const i64 bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
    const int tile = blockIdx.x * 16;
    const int rows[2] = {tile + warp, tile + warp + 8};
    float x[2][2];
    float amax = 0.0f;
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int j = 0; j < 2; ++j)
        {
            int c = lane * 2 + j;
            x[r][j] = rows[r] < a.nq ? load_elem<T>(a.q, b * a.qs[0] + h * a.qs[1] + (i64)rows[r] * a.qs[2] + c * a.qs[3]) : 0.0f;
            amax = fmaxf(amax, fabsf(x[r][j]));
        }
    amax = warp_max(amax);
    float sc = int8_scale(amax);
#pragma unroll
    for (int r = 0; r < 2; ++r)
    {
        i64 row = bh * s.nq_pad + rows[r];
#pragma unroll
        for (int j = 0; j < 2; ++j) s.q8[row * 64 + lane * 2 + j] = rows[r] < a.nq ? quant_s8(x[r][j], sc) : 0;
        if (lane == 0) s.qscale[row] = rows[r] < a.nq ? sc * (a.scale * LOG2E) : 0.0f;
    }
}

template <typename T>
__device__ void quant_k_impl(const Sage8Args& s)
{
    // 128 threads: warp p takes the 16 tokens of the tile with (t mod 8) div 2 = p, two channels per lane.
    const AttentionArgs& a = s.a;
    const int p = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const i64 bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
    const int tile = blockIdx.x * 64;
    const float m0 = s.kmean[bh * 64 + lane * 2], m1 = s.kmean[bh * 64 + lane * 2 + 1];
    float x[16][2];
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 16; ++i)
    {
        int t = tile + (i >> 1) * 8 + p * 2 + (i & 1);
        const i64 base = b * a.ks[0] + h * a.ks[1] + (i64)t * a.ks[2];
        x[i][0] = t < a.nk ? load_elem<T>(a.k, base + (lane * 2) * a.ks[3]) - m0 : 0.0f;
        x[i][1] = t < a.nk ? load_elem<T>(a.k, base + (lane * 2 + 1) * a.ks[3]) - m1 : 0.0f;
        amax = fmaxf(amax, fmaxf(fabsf(x[i][0]), fabsf(x[i][1])));
    }
    amax = warp_max(amax);
    float sc = int8_scale(amax);
#pragma unroll
    for (int i = 0; i < 16; ++i)
    {
        int t = tile + (i >> 1) * 8 + p * 2 + (i & 1);
        i64 row = bh * s.nk_pad + t;
        bool real = t < a.nk;
        s.k8[row * 64 + lane * 2] = real ? quant_s8(x[i][0], sc) : 0;
        s.k8[row * 64 + lane * 2 + 1] = real ? quant_s8(x[i][1], sc) : 0;
        if (lane == 0) s.kscale[row] = real ? sc : 0.0f;
    }
}

// Within a 32-key block, slot (the k index of the P.V mma) -> key: slot t*4 + i holds key 2t + (i & 1) + 8 (i >> 1),
// slot 16 + t*4 + i holds 16 + the same: exactly the keys a thread's S accumulators hold (n-tiles 4s..4s+3).
__device__ __forceinline__ int slot_key(int slot)
{
    int half = slot >> 4, w = slot & 15, t = w >> 2, i = w & 3;
    return half * 16 + 2 * t + (i & 1) + 8 * (i >> 1);
}

template <typename T>
__device__ void quant_v_impl(const Sage8Args& s)
{
    // One 64-key tile per block (256 threads x 16): V read row by row (coalesced along the channels), quantized and
    // transposed in shared memory, then written channel by channel in slot order (coalesced along the keys).
    const AttentionArgs& a = s.a;
    __shared__ unsigned char codes[64][64 + 4];  // [channel][key of the tile]
    const i64 bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
    const int tile = blockIdx.x * 64;
    for (int e = threadIdx.x; e < 64 * 64; e += blockDim.x)
    {
        int k = e >> 6, c = e & 63, key = tile + k;
        float x = key < a.nk ? load_elem<T>(a.v, b * a.vs[0] + h * a.vs[1] + (i64)key * a.vs[2] + c * a.vs[3]) : 0.0f;
        float q = __fdiv_rn(x, s.vscale[bh * 64 + c]);
        codes[c][k] = (unsigned char)(e4m3x2(q, 0.0f) & 0xffu);
    }
    __syncthreads();
    for (int e = threadIdx.x; e < 64 * 64; e += blockDim.x)
    {
        int slot = e & 63, c = e >> 6;
        s.vt8[(bh * 64 + c) * s.nk_pad + tile + slot] = codes[c][(slot & 32) + slot_key(slot & 31)];
    }
}

// ---- The pre-pass: two launches near memory bandwidth --------------------------------------------------------------
// Why the first form (the legacy kernels above) ran at about a third of HBM bandwidth on an H100 ([2, 30, 17776, 64]
// F16: quant_v 0.223 ms, quant_q 0.175, quant_k 0.154, scan 0.120, scan_finish 0.010, against ~0.045 ms to read one
// 136.5 MB tensor and ~0.07 ms to read it and write its 68 MB of codes): every access was a scalar 2-byte load through
// a runtime stride (a warp's load instruction moved 64 bytes, its byte stores 32), a thread had 4 to 32 loads of
// 2 bytes in flight (quant_v's loop one, quant_q's 256-thread blocks 2 KB), each code paid an IEEE division
// (__fdiv_rn: a refined reciprocal, a range check and a call to its slow path, a CALL in SASS per element), quant_v
// transposed single bytes through shared memory, and five dependent launches each drained the machine.
// Here: rows are loaded 8 values (16 bytes) at a time (the host copies any view whose rows are not contiguous and
// 16-byte aligned; the transformer's Q, K and strided V views are), every thread issues all loads of its work item
// (64 to 128 bytes) before it uses one, and each warp's loads and stores cover whole 32-byte sectors; the division by
// a group's scale is divide_rn with one row_divisor per group (common.cuh: bit for bit __fdiv_rn's quotient,
// checked by scripts/kernels/fp8-division-check.c), ~11 instructions without a call; and the work is two launches:
//   sage8_scan_q    grid (splits + nq_pad / 64, BH): blocks that quantize 64 rows of Q (a warp per 16-row tile),
//                   which needs nothing from the scan, then blocks that scan 512 tokens of K and V (the same partial
//                   sums in the same order as sage8_scan: 16 token classes x 64 channels, so K's mean is bit for bit
//                   the legacy one);
//   sage8_quant_kv  grid (ceil(nk_pad / 64 / SAGE_KV_TILES), BH), heads last first: each block folds its head's
//                   partials into K's mean and V's channel scales (sage8_scan_finish's sums in its order; block x = 0
//                   stores them), then quantizes SAGE_KV_TILES 64-key tiles of K and V, each with the thread layout
//                   that lets it load and store whole sectors: no shared-memory transpose, V's 32-key permutation is
//                   which lane writes which 4-byte word.
// scripts/kernels/sage8-prepass-maps.py replays both launches' thread maps on indices against the legacy layouts.
// Instructions (sm_90 SASS, normal groups): sage8_quant_kv's tile loop 861 a thread for 32 INT8 and 32 E4M3 codes
// (~13.5 a code with loads, stores and the group's scale; the division itself 2 FMUL + 4 FFMA), a Q warp 481 a thread
// for 32 codes, against the legacy kernels' ~71 a code (quant_v: 48 for the code, 23 for the byte transpose), ~55
// (quant_k) and ~100 (quant_q, 4 codes a thread). At 3 bytes moved a code an H100 SM must retire ~4.8 codes a clock at
// 3.35 TB/s, ~26 instructions each at full issue: the legacy kernels were bound by issue, these by memory (~50 %).
#define SAGE_PRE_THREADS 128
#ifndef SAGE_KV_TILES
#define SAGE_KV_TILES 8  // 64-key tiles a sage8_quant_kv block takes (an A/B knob: COGVIDEOX_KERNEL_DEFINES)
#endif
#if SAGE_KV_TILES < 1
#error SAGE_KV_TILES must be at least 1
#endif

// 16 bytes of a read-only input (the caller guarantees 16-byte alignment).
__device__ __forceinline__ uint4 load16(const char* p)
{
    uint4 r;
    asm("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
    return r;
}

// Int8Quantizer.Scale (amax / 127; 1 for a zero, infinite or underflowing quotient) without __fdiv_rn's call
// (common.cuh's quotient_rn: RN(amax / 127) for every positive float, fp8-division-check.c checks all of them).
__device__ __forceinline__ float int8_row_scale(float amax)
{
    if (!(amax > 0.0f && amax < F_INF)) return 1.0f;
    const float s = quotient_rn(amax, 127.0);
    return s > 0.0f ? s : 1.0f;
}

// quant_s8 without the division: divide_rn is RN(x / s) wherever |x / s| >= 2^-100, and a value of that size or
// less is below 0.5 either way (code 0); NaN stays NaN (code 0), +-inf saturates to +-127.
__device__ __forceinline__ int s8_code(float x, const RowDivisor& d)
{
    return max(-127, min(127, __float2int_rn(divide_rn(x, d))));
}

// The same code where the group's scale is normal (row_divisor's pre = 1) and its amax finite, which is every group
// but degenerate ones (a subnormal scale, an infinite value): divide_rn's steps without what those cases need.
// Its guard: x is finite or NaN (|x| <= amax < inf), and x = +-0 gives 0 through the corrections too. Its pre = 1
// factor. Its abs/copysign: every step is a product or FMA, and RN(-v) = -RN(v), so the signed chain's quotient is the
// unsigned one's negated wherever it is nonzero (an exact zero residual is +0 in both chains and leaves q as it is),
// and rint is odd. Its clamp: s = RN(amax / 127) is normal, so |x / s| <= 127 (1 + 2^-23) and rint gives at most 127.
// NaN stays NaN through the chain and converts to 0 as before. 7 instructions a code instead of about 16.
__device__ __forceinline__ int s8_code_normal(float a, const RowDivisor& d)
{
    const float x = __fmul_rn(a, d.scale);
    float q = __fmul_rn(x, d.y);
    float r = __fmaf_rn(-d.b, q, x);
    q = __fmaf_rn(r, d.y, q);
    r = __fmaf_rn(-d.b, q, x);
    q = __fmaf_rn(r, d.y, q);
    return __float2int_rn(q);
}

// divide_rn for a divisor from a normal scale (pre = 1) and a finite or NaN value: bit for bit divide_rn's quotient.
// Its guard returned x * y for x = +-0 (the corrections give +0 with x's sign put back: the same +-0) and NaN (the
// chain's canonical NaN, with the sign of x = a * scale, itself the canonical positive NaN: the same bits).
__device__ __forceinline__ float divide_rn_normal(float a, const RowDivisor& d)
{
    const float x = __fmul_rn(a, d.scale);
    const float ax = fabsf(x);
    float q = __fmul_rn(ax, d.y);  // |x * y|: y > 0 and RN(-v) = -RN(v)
    float r = __fmaf_rn(-d.b, q, ax);
    q = __fmaf_rn(r, d.y, q);
    r = __fmaf_rn(-d.b, q, ax);
    q = __fmaf_rn(r, d.y, q);
    return copysignf(q, x);
}

// Whether a group quantized with scale s (from int8_row_scale or V's channel scale) and maximum amax takes the short
// forms above: s normal and amax finite.
__device__ __forceinline__ bool normal_group(float s, float amax) { return s >= 1.17549435e-38f && amax < F_INF; }

// Four codes' low bytes into one word, the first in the low byte.
__device__ __forceinline__ u32 s8x4(int c0, int c1, int c2, int c3)
{
    return __byte_perm(__byte_perm(c0, c1, 0x0040), __byte_perm(c2, c3, 0x0040), 0x5410);
}

// Eight INT8 codes of one group (the group uniform across the lanes that share it, so the branch rarely diverges).
__device__ __forceinline__ uint2 s8x8(const float* x, const RowDivisor& d, bool normal)
{
    if (normal)
        return make_uint2(s8x4(s8_code_normal(x[0], d), s8_code_normal(x[1], d), s8_code_normal(x[2], d), s8_code_normal(x[3], d)),
                          s8x4(s8_code_normal(x[4], d), s8_code_normal(x[5], d), s8_code_normal(x[6], d), s8_code_normal(x[7], d)));
    return make_uint2(s8x4(s8_code(x[0], d), s8_code(x[1], d), s8_code(x[2], d), s8_code(x[3], d)),
                      s8x4(s8_code(x[4], d), s8_code(x[5], d), s8_code(x[6], d), s8_code(x[7], d)));
}

// The K-sum / |V|-max scan of one 512-token chunk of head bh, 128 threads: thread (l, j) = (token class l = token mod
// 16, channels 8j..8j+7) sums the chunk's tokens t0 + l + 16i in increasing i from 0, the very sums of sage8_scan's
// thread (l, c); the 16 classes are then added in class order as there. Four tokens' loads (128 bytes) are issued
// before their sums, a warp's load covering four whole 128-byte rows of K and of V.
template <typename T>
__device__ __forceinline__ void scan_chunk(const Sage8Args& s, int bh, int chunk, int splits)
{
    const AttentionArgs& a = s.a;
    const int j = threadIdx.x & 7, l = threadIdx.x >> 3;
    const int b = bh / a.heads, h = bh % a.heads;
    const int t0 = chunk * SAGE_SCAN_CHUNK, n = min(a.nk - t0, SAGE_SCAN_CHUNK);
    const char* kp = (const char*)a.k + 2 * (b * a.ks[0] + h * a.ks[1] + (i64)(t0 + l) * a.ks[2]) + 16 * j;
    const char* vp = (const char*)a.v + 2 * (b * a.vs[0] + h * a.vs[1] + (i64)(t0 + l) * a.vs[2]) + 16 * j;
    const i64 kstep = 32 * a.ks[2], vstep = 32 * a.vs[2];  // 16 tokens
    const int count = n > l ? (n - l + 15) >> 4 : 0;      // this class's tokens in the chunk
    float sum[8], amax[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) sum[e] = amax[e] = 0.0f;
    int i = 0;
    for (; i + 4 <= count; i += 4)
    {
        uint4 kr[4], vr[4];
#pragma unroll
        for (int u = 0; u < 4; ++u)
        {
            kr[u] = load16(kp + u * kstep);
            vr[u] = load16(vp + u * vstep);
        }
        kp += 4 * kstep;
        vp += 4 * vstep;
#pragma unroll
        for (int u = 0; u < 4; ++u)
        {
            float kf[8], vf[8];
            unpack8<T>(kr[u], kf);
            unpack8<T>(vr[u], vf);
#pragma unroll
            for (int e = 0; e < 8; ++e)
            {
                sum[e] += kf[e];
                amax[e] = fmaxf(amax[e], fabsf(vf[e]));
            }
        }
    }
    for (; i < count; ++i)
    {
        float kf[8], vf[8];
        unpack8<T>(load16(kp), kf);
        unpack8<T>(load16(vp), vf);
        kp += kstep;
        vp += vstep;
#pragma unroll
        for (int e = 0; e < 8; ++e)
        {
            sum[e] += kf[e];
            amax[e] = fmaxf(amax[e], fabsf(vf[e]));
        }
    }
    __shared__ float4 sums[16][16], maxima[16][16];  // [class][channel / 4]
    sums[l][2 * j] = make_float4(sum[0], sum[1], sum[2], sum[3]);
    sums[l][2 * j + 1] = make_float4(sum[4], sum[5], sum[6], sum[7]);
    maxima[l][2 * j] = make_float4(amax[0], amax[1], amax[2], amax[3]);
    maxima[l][2 * j + 1] = make_float4(amax[4], amax[5], amax[6], amax[7]);
    __syncthreads();
    if (threadIdx.x < 64)
    {
        const int c = threadIdx.x;
        const float* fs = (const float*)sums;
        const float* fm = (const float*)maxima;
        float total = 0.0f, m = 0.0f;
#pragma unroll
        for (int k = 0; k < 16; ++k)
        {
            total += fs[k * 64 + c];
            m = fmaxf(m, fm[k * 64 + c]);
        }
        float* part = s.kmean + (i64)gridDim.y * 64 + ((i64)bh * splits + chunk) * 128;
        part[c] = total;
        part[64 + c] = m;
    }
}

// INT8 Q of 64 rows (rows >= nq are zeros with scale 0), a warp per 16-row tile: lane (g, j) holds rows g and g + 8
// (one scale group) at channels 8j.. and 32 + 8j.., so a group's maximum is two shuffles, a warp's loads cover 8 rows'
// 64 contiguous bytes each and its 8-byte code stores 8 rows' 32-byte sectors.
template <typename T>
__device__ __forceinline__ void quant_q_rows(const Sage8Args& s, int bh, int block)
{
    const AttentionArgs& a = s.a;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, j = lane & 3, g = lane >> 2;
    const int b = bh / a.heads, h = bh % a.heads;
    const int tile = block * 64 + warp * 16, r0 = tile + g;
    const char* qp = (const char*)a.q + 2 * (b * a.qs[0] + h * a.qs[1] + (i64)r0 * a.qs[2]) + 16 * j;
    const i64 down = 16 * a.qs[2];  // 8 rows
    uint4 raw[4];
    const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
    const bool real0 = r0 < a.nq, real1 = r0 + 8 < a.nq;
    raw[0] = real0 ? load16(qp) : zero;
    raw[1] = real0 ? load16(qp + 64) : zero;
    raw[2] = real1 ? load16(qp + down) : zero;
    raw[3] = real1 ? load16(qp + down + 64) : zero;
    float x[4][8];
    float amax = 0.0f;
#pragma unroll
    for (int r = 0; r < 4; ++r)
    {
        unpack8<T>(raw[r], x[r]);
#pragma unroll
        for (int e = 0; e < 8; ++e) amax = fmaxf(amax, fabsf(x[r][e]));
    }
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 2));
    const float sc = int8_row_scale(amax);
    const RowDivisor d = row_divisor(sc);
    const bool normal = normal_group(sc, amax);
    signed char* out = s.q8 + ((i64)bh * s.nq_pad + r0) * 64 + 8 * j;
    *(uint2*)out = s8x8(x[0], d, normal);
    *(uint2*)(out + 32) = s8x8(x[1], d, normal);
    *(uint2*)(out + 8 * 64) = s8x8(x[2], d, normal);
    *(uint2*)(out + 8 * 64 + 32) = s8x8(x[3], d, normal);
    // Row tile + r's scale is its group's (r mod 8), held by lane 4 (r mod 8): 16 lanes store the tile's 16 scales.
    const float group = __shfl_sync(0xffffffffu, sc, (lane & 7) * 4);
    if (lane < 16)
    {
        const int row = tile + lane;
        s.qscale[(i64)bh * s.nq_pad + row] = row < a.nq ? group * (a.scale * LOG2E) : 0.0f;
    }
}

// The grid (splits + nq_pad / 64, BH) read in launch order (x fastest) as every head's Q blocks, then every head's scan
// blocks in head order: the launch ends reading the last heads' K and V only, so the most recent ~50 MB in L2 are
// theirs, and sage8_quant_kv, which takes the heads last first, finds its first heads' K and V there instead of in
// HBM. (Blocks write disjoint outputs: the order changes no value.) SAGE_PRE_TOKEN_MAJOR=1 (an A/B knob through
// COGVIDEOX_KERNEL_DEFINES) orders both launches by token range with the heads fastest instead, sage8_quant_kv's last
// ranges first: the transformer's V is a strided view of the QKV projection, where one token's 30 heads are 3840
// contiguous bytes, and blocks of every head at the same tokens read them together (DRAM pages), where head order
// reads 128 bytes of each token at a time.
#ifndef SAGE_PRE_TOKEN_MAJOR
#define SAGE_PRE_TOKEN_MAJOR 0
#endif
template <typename T>
__device__ void scan_q_impl(const Sage8Args& s)
{
    // 32-bit: the host keeps the grid below 2^31 blocks (a 64-bit division is a call).
    const u32 splits = (s.a.nk + SAGE_SCAN_CHUNK - 1) / SAGE_SCAN_CHUNK, qblocks = gridDim.x - splits;
    const u32 id = blockIdx.y * gridDim.x + blockIdx.x, qtotal = qblocks * gridDim.y;
#if SAGE_PRE_TOKEN_MAJOR
    if (id < qtotal) quant_q_rows<T>(s, (int)(id % gridDim.y), (int)(id / gridDim.y));
    else scan_chunk<T>(s, (int)((id - qtotal) % gridDim.y), (int)((id - qtotal) / gridDim.y), (int)splits);
#else
    if (id < qtotal) quant_q_rows<T>(s, (int)(id / qblocks), (int)(id % qblocks));
    else scan_chunk<T>(s, (int)((id - qtotal) / splits), (int)((id - qtotal) % splits), (int)splits);
#endif
}

// K's and V's codes for SAGE_KV_TILES 64-key tiles (group) of head bh, 128 threads; bh = BH - 1 - blockIdx.y (the
// heads sage8_scan_q read last come first, while their K and V may still be in L2), or in SAGE_PRE_TOKEN_MAJOR order.
//   K: warp p takes K's scale group p of the tile (the 16 tokens with (t mod 8) div 2 = p: 16 blk + 8 (i >> 1) + 2p +
//      (i & 1) for blk, i in 0..3); lane (blk, j) holds its four tokens of block blk at channels 8j..8j+7, so the
//      group's maximum is one warp reduction, a warp's load covers 4 whole rows and its 8-byte code stores 4 rows.
//   V: warp w takes channels 16w..16w+15; lane (cb, blk, p) holds the same four tokens of 16-key block blk at channels
//      8 (2w + cb)..+7. Those four keys {2p, 2p + 1, 2p + 8, 2p + 9} are exactly slots 4p..4p+3 of the block's
//      permutation (slot_key), so the lane writes word 4 blk + p = lane mod 16 of each channel's 64 slot bytes: a warp
//      store covers two channels' 64 contiguous bytes, with no transpose through shared memory.
template <typename T>
__device__ void quant_kv_impl(const Sage8Args& s)
{
    const AttentionArgs& a = s.a;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#if SAGE_PRE_TOKEN_MAJOR
    const u32 id = blockIdx.y * gridDim.x + blockIdx.x;  // below 2^31: the host's grids are smaller than the scan's
    const int bh = id % gridDim.y, group = gridDim.x - 1 - id / gridDim.y;  // heads fastest, the last tiles first
#else
    const int bh = gridDim.y - 1 - blockIdx.y, group = blockIdx.x;  // the last scanned head first
#endif
    const int b = bh / a.heads, h = bh % a.heads;
    const int splits = (a.nk + SAGE_SCAN_CHUNK - 1) / SAGE_SCAN_CHUNK;
    __shared__ float mean_s[64];
    __shared__ float4 divisor_s[64];  // V's channel divisors (RowDivisor b, y, pre, scale)
    __shared__ int normal_s[64];      // whether V's channel takes divide_rn_normal
    {
        // sage8_scan_finish's fold, in its order: threads 0..63 K's channel sums, 64..127 V's channel maxima.
        const int c = threadIdx.x & 63;
        const float* part = s.kmean + (i64)gridDim.y * 64 + (i64)bh * splits * 128 + threadIdx.x;
        float acc = 0.0f;
        if (threadIdx.x < 64)
        {
            for (int i = 0; i < splits; ++i) acc += part[(i64)i * 128];
            const float mean = __fdiv_rn(acc, (float)a.nk);
            mean_s[c] = mean;
            if (group == 0) s.kmean[(i64)bh * 64 + c] = mean;
        }
        else
        {
            for (int i = 0; i < splits; ++i) acc = fmaxf(acc, part[(i64)i * 128]);
            float sc = __fdiv_rn(acc, E4M3_MAX);
            sc = (sc > 0.0f && sc < F_INF) ? sc : 1.0f;
            const RowDivisor d = row_divisor(sc);
            divisor_s[c] = make_float4(d.b, d.y, d.pre, d.scale);
            normal_s[c] = normal_group(sc, acc);
            if (group == 0) s.vscale[(i64)bh * 64 + c] = sc;
        }
    }
    __syncthreads();

    // K's lane: channel chunk j, 16-key block kblk; V's: channel chunk jv, block vblk, pair p. Each lane's four keys
    // are its first key + {0, 1, 8, 9}; the pointers below are at the first key of the block's first tile and move on
    // by a tile, so a load or store needs no index arithmetic (it was about 15 instructions a load).
    const int j = lane & 7, kblk = lane >> 3;
    const int vp = lane & 3, vblk = (lane >> 2) & 3, jv = 2 * warp + (lane >> 4);
    float mean[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) mean[e] = mean_s[8 * j + e];
    const int first = group * SAGE_KV_TILES, last = min(s.nk_pad / 64, first + SAGE_KV_TILES);
    const int kkey = 16 * kblk + 2 * warp, vkey = 16 * vblk + 2 * vp;  // within a tile
    const i64 krow = 2 * a.ks[2], vrow = 2 * a.vs[2];                 // bytes from one key to the next
    const char* kp = (const char*)a.k + 2 * (b * a.ks[0] + h * a.ks[1]) + (i64)(64 * first + kkey) * krow + 16 * j;
    const char* vsrc = (const char*)a.v + 2 * (b * a.vs[0] + h * a.vs[1]) + (i64)(64 * first + vkey) * vrow + 16 * jv;
    signed char* k8 = s.k8 + ((i64)bh * s.nk_pad + 64 * first + kkey) * 64 + 8 * j;
    unsigned char* vt = s.vt8 + ((i64)bh * 64 + 8 * jv) * s.nk_pad + 64 * first + 4 * (lane & 15);
    float* kscale = s.kscale + (i64)bh * s.nk_pad + 64 * first + 2 * warp + (lane & 1) + 8 * (lane >> 1);
    const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
    for (int ti = first; ti < last; ++ti)
    {
        const int tile = ti * 64;
        int kt[4], vtok[4];
        uint4 kr[4], vr[4];
#pragma unroll
        for (int i = 0; i < 4; ++i)
        {
            const int step = (i & 1) + 8 * (i >> 1);
            kt[i] = tile + kkey + step;
            vtok[i] = tile + vkey + step;
            kr[i] = kt[i] < a.nk ? load16(kp + step * krow) : zero;
            vr[i] = vtok[i] < a.nk ? load16(vsrc + step * vrow) : zero;
        }
        kp += 64 * krow;
        vsrc += 64 * vrow;
        // K: x = k - mean (0 for a padded key), the group's maximum, its scale and codes.
        float x[4][8];
        float amax = 0.0f;
#pragma unroll
        for (int i = 0; i < 4; ++i)
        {
            float f[8];
            unpack8<T>(kr[i], f);
            const bool real = kt[i] < a.nk;
#pragma unroll
            for (int e = 0; e < 8; ++e)
            {
                x[i][e] = real ? f[e] - mean[e] : 0.0f;
                amax = fmaxf(amax, fabsf(x[i][e]));
            }
        }
        amax = warp_max(amax);
        const float sc = int8_row_scale(amax);
        const RowDivisor d = row_divisor(sc);
        const bool normal = normal_group(sc, amax);
#pragma unroll
        for (int i = 0; i < 4; ++i) *(uint2*)(k8 + ((i & 1) + 8 * (i >> 1)) * 64) = s8x8(x[i], d, normal);
        k8 += 64 * 64;
        if (lane < 16) *kscale = tile + 2 * warp + (lane & 1) + 8 * (lane >> 1) < a.nk ? sc : 0.0f;
        kscale += 64;
        // V: per channel, the four keys' E4M3 codes as one word of the permuted slot order.
        float vf[4][8];
#pragma unroll
        for (int i = 0; i < 4; ++i) unpack8<T>(vr[i], vf[i]);
#pragma unroll
        for (int e = 0; e < 8; ++e)
        {
            const float4 dv = divisor_s[8 * jv + e];
            RowDivisor dc;
            dc.b = dv.x;
            dc.y = dv.y;
            dc.pre = dv.z;
            dc.scale = dv.w;
            u32 word;
            if (normal_s[8 * jv + e])
                word = e4m3x4(divide_rn_normal(vf[0][e], dc), divide_rn_normal(vf[1][e], dc), divide_rn_normal(vf[2][e], dc),
                              divide_rn_normal(vf[3][e], dc));
            else
                word = e4m3x4(divide_rn(vf[0][e], dc), divide_rn(vf[1][e], dc), divide_rn(vf[2][e], dc), divide_rn(vf[3][e], dc));
            *(u32*)(vt + (i64)e * s.nk_pad) = word;
        }
        vt += 64;
    }
}

__device__ __forceinline__ void mma_s8(int* c, const u32* a, u32 b0, u32 b1)
{
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void mma_e4m3(float* c, const u32* a, u32 b0, u32 b1)
{
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <typename T>
__device__ void sage8_attention_impl(const Sage8Args& s)
{
    const AttentionArgs& a = s.a;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const i64 bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
    const int row0 = blockIdx.x * 64 + warp * 16 + g;  // this thread's rows: row0 and row0 + 8
    const signed char* q8 = s.q8 + (bh * s.nq_pad) * 64;
    const signed char* k8 = s.k8 + (bh * s.nk_pad) * 64;
    const unsigned char* vt = s.vt8 + (bh * 64) * (i64)s.nk_pad;
    const float* ks = s.kscale + bh * s.nk_pad;

    // Q fragments (A, row-major 16 x 32 per k-step): a0 row g, bytes 4t..4t+3; a1 row g+8; a2/a3 the same + 16.
    u32 qa[2][4];
#pragma unroll
    for (int st = 0; st < 2; ++st)
#pragma unroll
        for (int r = 0; r < 4; ++r)
        {
            int row = row0 + (r & 1) * 8, col = st * 32 + (r >> 1) * 16 + 4 * t;
            qa[st][r] = *(const u32*)(q8 + (i64)row * 64 + col);
        }
    const float qs0 = s.qscale[bh * s.nq_pad + row0], qs1 = s.qscale[bh * s.nq_pad + row0 + 8];

    float o[8][4];
#pragma unroll
    for (int i = 0; i < 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m[2] = {-F_INF, -F_INF};
    float l[2] = {0.0f, 0.0f};

    for (int kb = 0; kb < a.nk; kb += 64)
    {
        // S = Q8.K8^T: 8 n-tiles of 8 keys; B (col-major 32 x 8): b0 = key kb+8j+g, bytes 4t..4t+3 of the k-step.
        float sc[8][4];
#pragma unroll
        for (int j = 0; j < 8; ++j)
        {
            int acc[4] = {0, 0, 0, 0};
            const signed char* krow = k8 + (i64)(kb + 8 * j + g) * 64;
#pragma unroll
            for (int st = 0; st < 2; ++st)
                mma_s8(acc, qa[st], *(const u32*)(krow + st * 32 + 4 * t), *(const u32*)(krow + st * 32 + 16 + 4 * t));
#pragma unroll
            for (int e = 0; e < 4; ++e)
            {
                int key = kb + 8 * j + 2 * t + (e & 1);
                float qsr = e < 2 ? qs0 : qs1;
                sc[j][e] = key < a.nk ? (float)acc[e] * (qsr * ks[key]) : -F_INF;
            }
        }
        // Online softmax (base 2): the tile's row maxima over the quad's four threads.
        float mx[2] = {-F_INF, -F_INF};
#pragma unroll
        for (int j = 0; j < 8; ++j)
        {
            mx[0] = fmaxf(mx[0], fmaxf(sc[j][0], sc[j][1]));
            mx[1] = fmaxf(mx[1], fmaxf(sc[j][2], sc[j][3]));
        }
        float corr[2];
#pragma unroll
        for (int r = 0; r < 2; ++r)
        {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            float mn = fmaxf(m[r], mx[r]);
            corr[r] = exp2f(m[r] - mn);
            m[r] = mn;
        }
        // P = exp2(S - m), P*448 in E4M3 for the product (and, SAGE_TC_ROWSUM=0, P in float for the row sums).
        u32 pa[2][4];
#if !SAGE_TC_ROWSUM
        float rs[2] = {0.0f, 0.0f};
#endif
#pragma unroll
        for (int j = 0; j < 8; ++j)
        {
            float p0 = exp2f(sc[j][0] - m[0]), p1 = exp2f(sc[j][1] - m[0]);
            float p2 = exp2f(sc[j][2] - m[1]), p3 = exp2f(sc[j][3] - m[1]);
#if !SAGE_TC_ROWSUM
            rs[0] += p0 + p1;
            rs[1] += p2 + p3;
#endif
            u32 top = e4m3x2(p0 * E4M3_MAX, p1 * E4M3_MAX), bottom = e4m3x2(p2 * E4M3_MAX, p3 * E4M3_MAX);
            // n-tile j = 4st + q: q 0/1 fill a0/a1 (low/high 16 bits), q 2/3 fill a2/a3.
            int st = j >> 2, qd = j & 3, reg = (qd >> 1) * 2, shift = (qd & 1) * 16;
            if (shift == 0)
            {
                pa[st][reg] = top;
                pa[st][reg + 1] = bottom;
            }
            else
            {
                pa[st][reg] |= top << 16;
                pa[st][reg + 1] |= bottom << 16;
            }
        }
#if SAGE_TC_ROWSUM
        // The row sums of P's codes on the tensor cores: P times a B of E4M3 ones (0x38) gives every column the sum
        // of its row, so each thread holds whole rows' sums (of P * 448) in rsum[0] (row g) and rsum[2] (row g + 8).
        {
            float rsum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            mma_e4m3(rsum, pa[0], 0x38383838u, 0x38383838u);
            mma_e4m3(rsum, pa[1], 0x38383838u, 0x38383838u);
            l[0] = l[0] * corr[0] + rsum[0];
            l[1] = l[1] * corr[1] + rsum[2];
        }
#else
        l[0] = l[0] * corr[0] + rs[0];
        l[1] = l[1] * corr[1] + rs[1];
#endif
        // P.V per tile into its own float accumulator, then into the running one (SageAttention2's two levels).
#pragma unroll
        for (int i = 0; i < 8; ++i)
        {
            float tile[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            const unsigned char* vrow = vt + (i64)(8 * i + g) * s.nk_pad + kb;
#pragma unroll
            for (int st = 0; st < 2; ++st)
                mma_e4m3(tile, pa[st], *(const u32*)(vrow + st * 32 + 4 * t), *(const u32*)(vrow + st * 32 + 16 + 4 * t));
            o[i][0] = o[i][0] * corr[0] + tile[0];
            o[i][1] = o[i][1] * corr[0] + tile[1];
            o[i][2] = o[i][2] * corr[1] + tile[2];
            o[i][3] = o[i][3] * corr[1] + tile[3];
        }
    }
#if !SAGE_TC_ROWSUM
#pragma unroll
    for (int r = 0; r < 2; ++r)
    {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
#endif
    const float* vsc = s.vscale + bh * 64;
#pragma unroll
    for (int r = 0; r < 2; ++r)
    {
        int row = row0 + r * 8;
        if (row >= a.nq) continue;
        // Float row sums are of P, the tensor cores' of its codes (P * 448).
        float inv = SAGE_TC_ROWSUM ? 1.0f / l[r] : 1.0f / (E4M3_MAX * l[r]);
        T* y = (T*)a.y + b * a.ys[0] + h * a.ys[1] + (i64)row * a.ys[2];
#pragma unroll
        for (int i = 0; i < 8; ++i)
#pragma unroll
            for (int e = 0; e < 2; ++e)
            {
                int c = 8 * i + 2 * t + e;
                y[c * a.ys[3]] = from_float<T>(o[i][r * 2 + e] * vsc[c] * inv);
            }
    }
}

#define SAGE8_KERNELS(T, N)                                                                                                  \
    extern "C" __global__ void __launch_bounds__(SAGE_PRE_THREADS) sage8_scan_q_##N(Sage8Args s) { scan_q_impl<T>(s); }                \
    extern "C" __global__ void __launch_bounds__(SAGE_PRE_THREADS, 5) sage8_quant_kv_##N(Sage8Args s) { quant_kv_impl<T>(s); }            \
    extern "C" __global__ void __launch_bounds__(SAGE_SCAN_THREADS) sage8_legacy_scan_##N(Sage8Args s) { scan_impl<T>(s); }            \
    extern "C" __global__ void __launch_bounds__(64) sage8_legacy_scan_finish_##N(Sage8Args s) { scan_finish_impl(s); }                 \
    extern "C" __global__ void __launch_bounds__(256) sage8_legacy_quant_q_##N(Sage8Args s) { quant_q_impl<T>(s); }                     \
    extern "C" __global__ void __launch_bounds__(128) sage8_legacy_quant_k_##N(Sage8Args s) { quant_k_impl<T>(s); }                     \
    extern "C" __global__ void __launch_bounds__(256) sage8_legacy_quant_v_##N(Sage8Args s) { quant_v_impl<T>(s); }                     \
    extern "C" __global__ void __launch_bounds__(128) sage8_attention_##N(Sage8Args s) { sage8_attention_impl<T>(s); }

SAGE8_KERNELS(f16, f16)
SAGE8_KERNELS(bf16, bf16)
