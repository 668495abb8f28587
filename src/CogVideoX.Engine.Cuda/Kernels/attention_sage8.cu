// 8-bit attention (SageAttention2-style, arXiv 2411.10958), sm_89 / sm_90: the CPU reference is
// src/CogVideoX.Engine/Ops/Sage8Attention.cs and this file follows its steps and scale groups exactly.
// Compiled lazily at the first --attention sage8 call (never by doctor or the default path); a first, correct
// version with mma.sync (not wgmma): UNRUN when written — the op catalogue's sage8_attention cases check it.
//
//   sage8_scan         per (b, h, 512 tokens): partial sums of K and maxima of |V| per channel; sage8_scan_finish
//                      per (b, h): K's mean and V's per-channel scale (amax / 448) from them
//   sage8_quant_q      per (b, h, 16-row tile): INT8 Q, one scale per rows {r, r + 8} (the rows one thread's
//                      accumulators hold), the softmax scale times log2(e) folded into it
//   sage8_quant_k      per (b, h, 64-key tile): INT8 (K - mean), one scale per (token mod 8) div 2
//   sage8_quant_v      V in E4M3, transposed [channel][key] with the keys of each 32-block permuted to the order
//                      the P fragment has them in (below), so the P.V B operand is one 32-bit load
//   sage8_attention_*  4 warps x 16 query rows; per 64-key tile: S = Q8.K8^T (mma m16n8k32 s8, int32), dequantized
//                      in float; online softmax in base 2; P*448 to E4M3; P.V (mma m16n8k32 e4m3, float) into a
//                      per-tile accumulator that is then added to the running one (two-level accumulation).
// Head dim 64 only. Padded rows and keys (to 64) are zeros; padded keys are masked to -inf.

// AttentionArgs, Sage8Args, LOG2E, E4M3_MAX and e4m3x2 (the sm_89 conversion): common.cuh.

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
        // P = exp2(S - m) in float for the row sums, P*448 in E4M3 for the product.
        u32 pa[2][4];
        float rs[2] = {0.0f, 0.0f};
#pragma unroll
        for (int j = 0; j < 8; ++j)
        {
            float p0 = exp2f(sc[j][0] - m[0]), p1 = exp2f(sc[j][1] - m[0]);
            float p2 = exp2f(sc[j][2] - m[1]), p3 = exp2f(sc[j][3] - m[1]);
            rs[0] += p0 + p1;
            rs[1] += p2 + p3;
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
        l[0] = l[0] * corr[0] + rs[0];
        l[1] = l[1] * corr[1] + rs[1];
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
#pragma unroll
    for (int r = 0; r < 2; ++r)
    {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    }
    const float* vsc = s.vscale + bh * 64;
#pragma unroll
    for (int r = 0; r < 2; ++r)
    {
        int row = row0 + r * 8;
        if (row >= a.nq) continue;
        float inv = 1.0f / (E4M3_MAX * l[r]);
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
    extern "C" __global__ void __launch_bounds__(SAGE_SCAN_THREADS) sage8_scan_##N(Sage8Args s) { scan_impl<T>(s); }                   \
    extern "C" __global__ void __launch_bounds__(64) sage8_scan_finish_##N(Sage8Args s) { scan_finish_impl(s); }                        \
    extern "C" __global__ void __launch_bounds__(256) sage8_quant_q_##N(Sage8Args s) { quant_q_impl<T>(s); }                \
    extern "C" __global__ void __launch_bounds__(128) sage8_quant_k_##N(Sage8Args s) { quant_k_impl<T>(s); }                \
    extern "C" __global__ void __launch_bounds__(256) sage8_quant_v_##N(Sage8Args s) { quant_v_impl<T>(s); }                \
    extern "C" __global__ void __launch_bounds__(128) sage8_attention_##N(Sage8Args s) { sage8_attention_impl<T>(s); }

SAGE8_KERNELS(f16, f16)
SAGE8_KERNELS(bf16, bf16)
