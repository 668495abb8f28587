// Flash attention forward for Hopper (sm_90a): head dim 64, f16/bf16, no bias. The products run on the warpgroup
// tensor-core instructions (wgmma): S = Q.K^T with both operands in shared memory, O += P.V with P straight from the
// registers the scores were computed in (an accumulator and a 16-bit A fragment share their row/column mapping).
// Each warpgroup (4 warps) owns 64 query rows; the NW warpgroups of a block share the key/value tiles, which cp.async
// streams through four shared-memory buffers. Tiles use the 128-byte swizzled layout wgmma reads (16-byte chunk c of
// row r at chunk position c ^ (r % 8)), so neither the copies nor the tensor cores meet bank conflicts.
//
// Softmax is online in base 2 with float32 statistics, as in attention.cu. With head dim 64 the exponentials take as
// long as the two products (16 per clock per multiprocessor against 16 score elements per clock of tensor work), so
// each warpgroup overlaps them: the scores of tile j + 1 are issued before P_j.V_j, and their softmax runs while
// P_j.V_j is on the tensor cores (FlashAttention-3's intra-warpgroup pipelining); two blocks per multiprocessor fill
// the remaining gaps. Measured on the H200 at [2,30,17776,64] (scripts/kernels/attention_sm90_check.cu and the CLI's
// timings): 10.5-11.2 ms, 435-462 TFLOP/s; cuDNN 9.14 takes 10.2-10.7 ms, the sm_80 kernel 51.5 ms. Exponentials two
// at a time in f16 (ex2.approx.f16x2) measured slower, and one block of 3 warpgroups (fewer warps per SM) too.
// Layout contract: Q, K, V rows of 64 contiguous values, 16-byte aligned; Y rows contiguous (any strides otherwise).

#ifndef ATTN_NW
#define ATTN_NW 2          // consumer warpgroups per block (64 query rows each)
#endif
#ifndef ATTN_SKIP_RESCALE
#define ATTN_SKIP_RESCALE 1  // skip O *= alpha in warps whose row maxima did not move
#endif
#ifndef ATTN_MIN_BLOCKS
#define ATTN_MIN_BLOCKS (ATTN_NW == 2 ? 2 : 1)
#endif

#define LOG2E_SM90 1.4426950408889634f

template <typename T> __device__ __forceinline__ void wgmma_ss_m64n64(float* d, u64 da, u64 db, int accumulate);
template <typename T> __device__ __forceinline__ void wgmma_rs_m64n64_tb(float* d, const u32* a, u64 db);

template <> __device__ __forceinline__ void wgmma_ss_m64n64<f16>(float* d, u64 da, u64 db, int accumulate)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(accumulate));
}

template <> __device__ __forceinline__ void wgmma_rs_m64n64_tb<f16>(float* d, const u32* a, u64 db)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}

template <> __device__ __forceinline__ void wgmma_ss_m64n64<bf16>(float* d, u64 da, u64 db, int accumulate)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(da), "l"(db), "r"(accumulate));
}

template <> __device__ __forceinline__ void wgmma_rs_m64n64_tb<bf16>(float* d, const u32* a, u64 db)
{
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));
}


__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }

// Keeps the compiler from moving register reads or writes across an asynchronous wgmma that owns them.
__device__ __forceinline__ void fence_regs(float* r, int n)
{
#pragma unroll
    for (int i = 0; i < n; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

// Shared-memory matrix descriptor, 128-byte swizzle. K-major tiles (rows of 64 16-bit values, 8-row groups 1024 bytes
// apart) and the MN-major V tile (same bytes: 64 values of N per row, 8 rows of K per group) share the encoding: the
// stride between 8-row groups is 1024 bytes, the other offset is unused for a single 128-byte atom.
__device__ __forceinline__ u64 smem_desc(u32 addr)
{
    u64 desc = (u64)((addr & 0x3FFFF) >> 4);
    desc |= (u64)1 << 16;            // leading byte offset (16 bytes; unused here)
    desc |= (u64)(1024 >> 4) << 32;  // stride byte offset
    desc |= (u64)1 << 62;            // 128-byte swizzle
    return desc;
}

__device__ __forceinline__ u32 smem_addr(const void* p)
{
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

// 16 bytes global -> shared, zero-filled when !valid.
__device__ __forceinline__ void cp_async16(u32 dst, const void* src, bool valid)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }
__device__ __forceinline__ void fence_async_shared() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

__device__ __forceinline__ float ex2f(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

template <typename T> __device__ __forceinline__ u32 pack2_sm90(float lo, float hi);
template <> __device__ __forceinline__ u32 pack2_sm90<f16>(float lo, float hi)
{
    u32 r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
template <> __device__ __forceinline__ u32 pack2_sm90<bf16>(float lo, float hi)
{
    u32 r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

// Copies rows [row0, row0 + rows) of a [*, 64] 16-bit matrix (row stride in elements) into a swizzled tile; rows at
// or past `limit` are zero.
template <int ROWS, int THREADS>
__device__ __forceinline__ void load_tile(u32 tile, const u16* base, i64 stride, int row0, int limit, int tid)
{
#pragma unroll
    for (int i = 0; i < (ROWS * 8 + THREADS - 1) / THREADS; ++i)
    {
        int idx = tid + i * THREADS, r = idx >> 3, c = idx & 7;
        if ((ROWS * 8) % THREADS != 0 && idx >= ROWS * 8) break;
        int row = row0 + r;
        bool valid = row < limit;
        const u16* src = base + (i64)(valid ? row : 0) * stride + c * 8;
        cp_async16(tile + r * 128 + ((c ^ (r & 7)) << 4), src, valid);
    }
}

// Online softmax of one 64 x 64 score tile, in place: the scores become exp2(S * scale * log2 e - m) (this thread
// holds rows r and r + 8, see below); updates the running maxima and this thread's share of the row sums, and returns
// the factors the output accumulated so far must be scaled by.
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
    alpha0 = ex2f(m0 - n0);
    alpha1 = ex2f(m1 - n1);
    m0 = n0;
    m1 = n1;
    float r0 = 0.0f, r1 = 0.0f;
#pragma unroll
    for (int c = 0; c < 8; ++c)
    {
        s[4 * c] = ex2f(s[4 * c] * sl2 - n0);
        s[4 * c + 1] = ex2f(s[4 * c + 1] * sl2 - n0);
        s[4 * c + 2] = ex2f(s[4 * c + 2] * sl2 - n1);
        s[4 * c + 3] = ex2f(s[4 * c + 3] * sl2 - n1);
        r0 += s[4 * c] + s[4 * c + 1];
        r1 += s[4 * c + 2] + s[4 * c + 3];
    }
    l0 = l0 * alpha0 + r0;
    l1 = l1 * alpha1 + r1;
}

// P in the input type, packed as the A operand of P.V: k-step t covers score columns 16t..16t+15, i.e. accumulator
// chunks 2t and 2t + 1 (a wgmma accumulator and an A fragment share the row/column mapping for 16-bit types).
template <typename T>
__device__ __forceinline__ void pack_p(const float* s, u32* p)
{
#pragma unroll
    for (int c = 0; c < 8; ++c)
    {
        p[2 * c] = pack2_sm90<T>(s[4 * c], s[4 * c + 1]);
        p[2 * c + 1] = pack2_sm90<T>(s[4 * c + 2], s[4 * c + 3]);
    }
}

// Descriptors are built once per block; a k-step or a stage moves the start address field (bytes / 16), which stays
// inside its 14 bits because shared memory ends below 256 KiB.
template <typename T>
__device__ __forceinline__ void issue_qk(float* s, u64 dq, u64 dk)
{
    wgmma_fence();
    fence_regs(s, 32);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_ss_m64n64<T>(s, dq + kk * (32 >> 4), dk + kk * (32 >> 4), kk > 0);
    wgmma_commit();
}

// O += P.V: four k-steps of 16 keys (16 rows of the V tile, 2048 bytes each); V is MN-major (transposed B).
template <typename T>
__device__ __forceinline__ void issue_pv(float* o, const u32* p, u64 dv)
{
    wgmma_fence();
    fence_regs(o, 32);
#pragma unroll
    for (int t = 0; t < 4; ++t)
    {
        u32 af[4] = {p[4 * t], p[4 * t + 1], p[4 * t + 2], p[4 * t + 3]};
        wgmma_rs_m64n64_tb<T>(o, af, dv + t * (2048 >> 4));
    }
    wgmma_commit();
}

// Tile j is read by S_j = Q.K_j^T (issued at the start of iteration j - 1) and by P_j.V_j (iteration j), so four
// buffers: j and j + 1 in use, j + 2 resident for the next iteration's scores, j + 3 loading.
#define ATTN_STAGES 4
#define ATTN_TILE (64 * 128)  // bytes of one 64 x 64 tile

// Where a block's tiles live and come from (device functions rather than lambdas: NVRTC compiles lambdas as host code).
struct AttnBlock
{
    u32 k_smem, v_smem;
    u64 dq, dk, dv;  // descriptors of this warpgroup's Q rows and of stage 0's K and V tiles
    const u16* k;
    const u16* v;
    i64 k_stride, v_stride;
    int nk, tiles, tid, lane;
    float sl2;
};

// One warpgroup's running state; the arrays stay in registers because every index is static after inlining.
struct AttnState
{
    float o[32], s[32];
    u32 p[16];
    float m0, m1, l0, l1, alpha0, alpha1;
};

__device__ __forceinline__ void load_kv(const AttnBlock& blk, int t)
{
    const u32 offset = (u32)(t % ATTN_STAGES) * ATTN_TILE;
    load_tile<64, 128 * ATTN_NW>(blk.k_smem + offset, blk.k, blk.k_stride, t * 64, blk.nk, blk.tid);
    load_tile<64, 128 * ATTN_NW>(blk.v_smem + offset, blk.v, blk.v_stride, t * 64, blk.nk, blk.tid);
}

// Iteration j: the scores of tile j + 1 go to the tensor cores, then P_j.V_j; the softmax of tile j + 1 runs while
// P_j.V_j does. HAS_NEXT is a template argument because ptxas follows which wgmma groups are in flight only through
// straight-line code: a conditional issue or wait makes it serialise every wgmma of the kernel.
template <typename T, bool HAS_NEXT>
__device__ __forceinline__ void attention_step(const AttnBlock& blk, AttnState& st, int j)
{
    if (HAS_NEXT) issue_qk<T>(st.s, blk.dq, blk.dk + ((j + 1) % ATTN_STAGES) * (ATTN_TILE >> 4));
    fence_regs(st.o, 32);
    // Once the row maxima settle most tiles leave them unchanged: a warp whose factors are all 1 skips the rescale.
    if (!ATTN_SKIP_RESCALE || __any_sync(0xffffffffu, st.alpha0 != 1.0f || st.alpha1 != 1.0f))
    {
#pragma unroll
        for (int c = 0; c < 8; ++c)
        {
            st.o[4 * c] *= st.alpha0;
            st.o[4 * c + 1] *= st.alpha0;
            st.o[4 * c + 2] *= st.alpha1;
            st.o[4 * c + 3] *= st.alpha1;
        }
    }
    issue_pv<T>(st.o, st.p, blk.dv + (j % ATTN_STAGES) * (ATTN_TILE >> 4));
    if (HAS_NEXT)
    {
        wgmma_wait<1>();  // the scores are ready; P_j.V_j may still run
        fence_regs(st.s, 32);
        softmax_tile(st.s, st.m0, st.m1, st.l0, st.l1, st.alpha0, st.alpha1, (j + 1) * 64, blk.nk, blk.lane, blk.sl2);
    }
    wgmma_wait<0>();  // P_j is free
    fence_regs(st.o, 32);
    if (HAS_NEXT) pack_p<T>(st.s, st.p);
    // Tile j + 2 must be resident for the next scores; after the barrier every warpgroup is done with tile j - 1,
    // whose buffer takes tile j + 3.
    cp_async_wait<0>();
    fence_async_shared();
    __syncthreads();
    if (j + 3 < blk.tiles) load_kv(blk, j + 3);
    cp_async_commit();
}

template <typename T>
__device__ void flash_attention_sm90_impl(const AttentionArgs& a)
{
    constexpr int BM = 64 * ATTN_NW;
    extern __shared__ unsigned char smem_raw[];
    const u32 q_smem = (smem_addr(smem_raw) + 1023) & ~1023u;  // BM rows, then STAGES K tiles, then STAGES V tiles

    const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
    const i64 bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
    const u16* q = (const u16*)a.q + b * a.qs[0] + h * a.qs[1];
    const int q0 = blockIdx.x * BM;
    AttnBlock blk;
    blk.k_smem = q_smem + BM * 128;
    blk.v_smem = blk.k_smem + ATTN_STAGES * ATTN_TILE;
    blk.dq = smem_desc(q_smem + wg * 64 * 128);
    blk.dk = smem_desc(blk.k_smem);
    blk.dv = smem_desc(blk.v_smem);
    blk.k = (const u16*)a.k + b * a.ks[0] + h * a.ks[1];
    blk.v = (const u16*)a.v + b * a.vs[0] + h * a.vs[1];
    blk.k_stride = a.ks[2];
    blk.v_stride = a.vs[2];
    blk.nk = a.nk;
    blk.tiles = (a.nk + 63) / 64;
    blk.tid = tid;
    blk.lane = lane;
    blk.sl2 = a.scale * LOG2E_SM90;

    load_tile<BM, 128 * ATTN_NW>(q_smem, q, a.qs[2], q0, a.nq, tid);
    for (int t = 0; t < ATTN_STAGES - 1 && t < blk.tiles; ++t) load_kv(blk, t);
    cp_async_commit();
    cp_async_wait<0>();
    fence_async_shared();
    __syncthreads();

    AttnState st;
#pragma unroll
    for (int i = 0; i < 32; ++i) st.o[i] = 0.0f;
    st.m0 = st.m1 = -F_INF;
    st.l0 = st.l1 = 0.0f;
    issue_qk<T>(st.s, blk.dq, blk.dk);
    wgmma_wait<0>();
    fence_regs(st.s, 32);
    softmax_tile(st.s, st.m0, st.m1, st.l0, st.l1, st.alpha0, st.alpha1, 0, a.nk, lane, blk.sl2);
    pack_p<T>(st.s, st.p);

    for (int j = 0; j + 1 < blk.tiles; ++j) attention_step<T, true>(blk, st, j);
    attention_step<T, false>(blk, st, blk.tiles - 1);

    // Row sums over the quad, then O / l written as pairs.
    float l0 = st.l0, l1 = st.l1;
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
    const int row = q0 + wg * 64 + warp * 16 + (lane >> 2);
    u16* y = (u16*)a.y + b * a.ys[0] + h * a.ys[1];
#pragma unroll
    for (int c = 0; c < 8; ++c)
    {
        int col = c * 8 + (lane & 3) * 2;
        if (row < a.nq) *(u32*)(y + (i64)row * a.ys[2] + col) = pack2_sm90<T>(st.o[4 * c] * inv0, st.o[4 * c + 1] * inv0);
        if (row + 8 < a.nq) *(u32*)(y + (i64)(row + 8) * a.ys[2] + col) = pack2_sm90<T>(st.o[4 * c + 2] * inv1, st.o[4 * c + 3] * inv1);
    }
}

// Bytes of dynamic shared memory a block needs (with room to align the base to 1024).
#define ATTN_SM90_SMEM (64 * ATTN_NW * 128 + 2 * ATTN_STAGES * ATTN_TILE + 1024)

extern "C" __global__ void __launch_bounds__(128 * ATTN_NW, ATTN_MIN_BLOCKS) flash_attention_sm90_f16_d64(AttentionArgs a) { flash_attention_sm90_impl<f16>(a); }
extern "C" __global__ void __launch_bounds__(128 * ATTN_NW, ATTN_MIN_BLOCKS) flash_attention_sm90_bf16_d64(AttentionArgs a) { flash_attention_sm90_impl<bf16>(a); }
