// Flash attention forward for f16/bf16 (FlashAttention-2 scheme): one block of 4 warps takes 64 query rows of one
// (batch, head); each warp owns 16 rows. Keys and values stream through shared memory 64 at a time; scores stay in
// registers (online softmax in base 2, float32), so nothing of size Nq x Nk is ever stored. Both products use the
// tensor cores through mma.sync m16n8k16 with float32 accumulation; P is rounded to the input type before P.V,
// as FlashAttention does. The head dim is padded with zeros to DP (64 or 128).

// AttentionArgs and LOG2E: common.cuh (shared with attention_sm90.cu); pack2 too (the 16-bit stores).

template <typename T> __device__ __forceinline__ void mma_16816(float* c, const u32* a, u32 b0, u32 b1);

template <> __device__ __forceinline__ void mma_16816<f16>(float* c, const u32* a, u32 b0, u32 b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <> __device__ __forceinline__ void mma_16816<bf16>(float* c, const u32* a, u32 b0, u32 b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <typename T, int DP>
__device__ void flash_attention_impl(const AttentionArgs& a)
{
    constexpr int BR = 64;            // query rows per block
    constexpr int BC = 64;            // keys per tile
    constexpr int KSTEPS = DP / 16;   // k-steps of Q.K^T over the head dim
    constexpr int DTILES = DP / 8;    // n-tiles of P.V over the head dim
    constexpr int NTILES = BC / 8;    // n-tiles of Q.K^T over the keys
    // Rows padded by 8 halves (16 bytes): the fragment reads of a warp then hit 32 distinct banks.
    __shared__ __align__(16) u16 k_tile[BC][DP + 8];
    __shared__ __align__(16) u16 vt_tile[DP][BC + 8];

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const i64 bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
    const u16* q = (const u16*)a.q + b * a.qs[0] + h * a.qs[1];
    const u16* k = (const u16*)a.k + b * a.ks[0] + h * a.ks[1];
    const u16* v = (const u16*)a.v + b * a.vs[0] + h * a.vs[1];
    const T* bias = a.has_bias ? (const T*)a.bias + b * a.bs[0] + h * a.bs[1] : (const T*)0;
    const int row0 = blockIdx.x * BR + warp * 16 + g;  // this thread's rows are row0 and row0 + 8

    // Q fragments (A operand, row-major 16 x 16 per k-step), loaded once.
    u32 qa[KSTEPS][4];
#pragma unroll
    for (int s = 0; s < KSTEPS; ++s)
    {
#pragma unroll
        for (int r = 0; r < 4; ++r)
        {
            int row = row0 + (r & 1) * 8;
            int col = s * 16 + (r >> 1) * 8 + 2 * t;
            u32 lo = 0, hi = 0;
            if (row < a.nq)
            {
                const u16* p = q + row * a.qs[2];
                if (col < a.d) lo = p[col * a.qs[3]];
                if (col + 1 < a.d) hi = p[(col + 1) * a.qs[3]];
            }
            qa[s][r] = lo | (hi << 16);
        }
    }

    float o[DTILES][4];
#pragma unroll
    for (int i = 0; i < DTILES; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
    float m[2] = {-F_INF, -F_INF};  // running row maxima (log2 units)
    float l[2] = {0.0f, 0.0f};      // this thread's share of the running row sums

    for (int kb = 0; kb < a.nk; kb += BC)
    {
        __syncthreads();  // the previous tile is no longer read
        if (a.vector_kv)
        {
            constexpr int CHUNKS = DP / 8;
            for (int i = tid; i < BC * CHUNKS; i += blockDim.x)
            {
                int j = i / CHUNKS, d0 = (i % CHUNKS) * 8, key = kb + j;
                uint4 kv = make_uint4(0u, 0u, 0u, 0u), vv = kv;
                if (key < a.nk && d0 < a.d)
                {
                    kv = *(const uint4*)(k + key * a.ks[2] + d0);
                    vv = *(const uint4*)(v + key * a.vs[2] + d0);
                }
                *(uint4*)&k_tile[j][d0] = kv;
                const u16* ve = (const u16*)&vv;
#pragma unroll
                for (int e = 0; e < 8; ++e) vt_tile[d0 + e][j] = ve[e];
            }
        }
        else
        {
            for (int i = tid; i < BC * DP; i += blockDim.x)
            {
                int j = i / DP, d = i % DP, key = kb + j;
                u16 kv = 0, vv = 0;
                if (key < a.nk && d < a.d)
                {
                    kv = k[key * a.ks[2] + d * a.ks[3]];
                    vv = v[key * a.vs[2] + d * a.vs[3]];
                }
                k_tile[j][d] = kv;
                vt_tile[d][j] = vv;
            }
        }
        __syncthreads();

        // S = Q.K^T for this warp's 16 rows and the tile's 64 keys.
        float s[NTILES][4];
#pragma unroll
        for (int nt = 0; nt < NTILES; ++nt)
        {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
            for (int st = 0; st < KSTEPS; ++st)
            {
                u32 b0 = *(const u32*)&k_tile[nt * 8 + g][st * 16 + 2 * t];
                u32 b1 = *(const u32*)&k_tile[nt * 8 + g][st * 16 + 8 + 2 * t];
                mma_16816<T>(s[nt], qa[st], b0, b1);
            }
        }

        // Scale, add the bias, mask keys past the end; in log2 units for exp2.
        float mx[2] = {m[0], m[1]};
#pragma unroll
        for (int nt = 0; nt < NTILES; ++nt)
        {
#pragma unroll
            for (int r = 0; r < 4; ++r)
            {
                int row = row0 + (r >> 1) * 8;
                int key = kb + nt * 8 + 2 * t + (r & 1);
                float x;
                if (key >= a.nk)
                    x = -F_INF;
                else
                {
                    x = s[nt][r] * a.scale;
                    if (bias && row < a.nq) x += to_float(bias[row * a.bs[2] + key * a.bs[3]]);
                    x *= LOG2E;
                }
                s[nt][r] = x;
                mx[r >> 1] = fmaxf(mx[r >> 1], x);
            }
        }
        float base[2], alpha[2], rowsum[2] = {0.0f, 0.0f};
#pragma unroll
        for (int i = 0; i < 2; ++i)
        {
            mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
            mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
            base[i] = mx[i] == -F_INF ? 0.0f : mx[i];  // a row with nothing unmasked yet stays all zero
            alpha[i] = exp2f(m[i] - base[i]);
            m[i] = mx[i];
        }
#pragma unroll
        for (int nt = 0; nt < NTILES; ++nt)
        {
#pragma unroll
            for (int r = 0; r < 4; ++r)
            {
                float p = exp2f(s[nt][r] - base[r >> 1]);
                s[nt][r] = p;
                rowsum[r >> 1] += p;
            }
        }
#pragma unroll
        for (int i = 0; i < 2; ++i) l[i] = l[i] * alpha[i] + rowsum[i];
#pragma unroll
        for (int dt = 0; dt < DTILES; ++dt)
        {
            o[dt][0] *= alpha[0];
            o[dt][1] *= alpha[0];
            o[dt][2] *= alpha[1];
            o[dt][3] *= alpha[1];
        }

        // O += P.V: the score accumulators of two adjacent key n-tiles form one A fragment.
#pragma unroll
        for (int kk = 0; kk < BC / 16; ++kk)
        {
            u32 pa[4];
            pa[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
            pa[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
            pa[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int dt = 0; dt < DTILES; ++dt)
            {
                u32 b0 = *(const u32*)&vt_tile[dt * 8 + g][kk * 16 + 2 * t];
                u32 b1 = *(const u32*)&vt_tile[dt * 8 + g][kk * 16 + 8 + 2 * t];
                mma_16816<T>(o[dt], pa, b0, b1);
            }
        }
    }

#pragma unroll
    for (int i = 0; i < 2; ++i)
    {
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
        l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
    }
    T* y = (T*)a.y + b * a.ys[0] + h * a.ys[1];
#pragma unroll
    for (int dt = 0; dt < DTILES; ++dt)
    {
#pragma unroll
        for (int r = 0; r < 4; ++r)
        {
            int row = row0 + (r >> 1) * 8;
            int col = dt * 8 + 2 * t + (r & 1);
            if (row < a.nq && col < a.d)
            {
                float sum = l[r >> 1];
                // A row whose scores were all -inf has no distribution: NaN, as the CPU backend gives.
                y[row * a.ys[2] + col * a.ys[3]] = from_float<T>(sum > 0.0f ? o[dt][r] / sum : F_NAN);
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(128) flash_attention_f16_d64(AttentionArgs a) { flash_attention_impl<f16, 64>(a); }
extern "C" __global__ void __launch_bounds__(128) flash_attention_f16_d128(AttentionArgs a) { flash_attention_impl<f16, 128>(a); }
extern "C" __global__ void __launch_bounds__(128) flash_attention_bf16_d64(AttentionArgs a) { flash_attention_impl<bf16, 64>(a); }
extern "C" __global__ void __launch_bounds__(128) flash_attention_bf16_d128(AttentionArgs a) { flash_attention_impl<bf16, 128>(a); }
