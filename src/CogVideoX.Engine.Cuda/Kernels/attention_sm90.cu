// Flash attention forward for Hopper (sm_90a): head dim 64, f16/bf16, no bias. The products run on the warpgroup
// tensor-core instructions (wgmma): S = Q.K^T with both operands in shared memory, O += P.V with P straight from the
// registers the scores were computed in (an accumulator and a 16-bit A fragment share their row/column mapping).
//
// The block is warp-specialised as in FlashAttention-3: NW consumer warpgroups own 64 query rows each, and one producer
// warpgroup streams Q and the K/V tiles with the tensor memory accelerator (TMA: one instruction per 64 x 64 tile,
// written in the 128-byte swizzle wgmma reads, rows past the end as zeros). Consumers wait per stage on an mbarrier and
// release it with another, so no consumer instruction goes to copies or address arithmetic and no block barrier ties
// the warpgroups together; the producer gives most of its registers to the consumers (setmaxnreg).
//
// Softmax is online in base 2 with float32 statistics, as in attention.cu. With head dim 64 the exponentials take as
// long as the two products (16 per clock per multiprocessor against 16 score elements per clock of tensor work), so
// each warpgroup overlaps them: the scores of tile j + 1 are issued before P_j.V_j, and their softmax runs while
// P_j.V_j is on the tensor cores (FlashAttention-3's intra-warpgroup pipelining).
//
// The producer is a whole warpgroup, not one warp: a fifth warp on one of the four register-file partitions caps every
// thread's registers below what the consumers need (spills, serialised wgmma). Timings of this kernel and of the forms
// tried before it: docs/gpu-runs/2026-12-04-cuda-backend-history.md (edit and measure with scripts/kernels/).
// Layout contract: Q, K, V rows of 64 contiguous values, 16-byte aligned, every other stride a multiple of 16 bytes
// (the tensor maps' rule); Y rows contiguous, 4-byte aligned.

// TensorMap, the mbarrier and wgmma helpers and the online softmax of a score tile: common.cuh, for sm_90a only.
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "this module is for sm_90a only (wgmma, setmaxnreg)"
#endif

#ifndef ATTN_SKIP_RESCALE
#define ATTN_SKIP_RESCALE 1  // skip O *= alpha in warps whose row maxima did not move
#endif

template <typename T> __device__ __forceinline__ void wgmma_ss_m64n64(float* d, u64 da, u64 db, int accumulate);
template <typename T> __device__ __forceinline__ void wgmma_rs_m64n64_tb(float* d, const u32* a, u64 db);

// The two wgmma forms for one input type (PTX name TY), into the 64 x 64 float32 accumulator (common.cuh's WGMMA_ACC32).
#define WGMMA_FORMS(T, TY) \
    template <> __device__ __forceinline__ void wgmma_ss_m64n64<T>(float* d, u64 da, u64 db, int accumulate) \
    { \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n" \
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " " WGMMA_ACC32 ", %32, %33, p, 1, 1, 0, 0;\n}\n" \
                     : WGMMA_ACC32_OPERANDS(WGMMA_RW_F, d) : "l"(da), "l"(db), "r"(accumulate)); \
    } \
    template <> __device__ __forceinline__ void wgmma_rs_m64n64_tb<T>(float* d, const u32* a, u64 db) \
    { \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n" \
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " " WGMMA_ACC32 ", {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n" \
                     : WGMMA_ACC32_OPERANDS(WGMMA_RW_F, d) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1)); \
    }
WGMMA_FORMS(f16, "f16")
WGMMA_FORMS(bf16, "bf16")

// Shared-memory matrix descriptor, 128-byte swizzle. K-major tiles (rows of 64 16-bit values, 8-row groups 1024 bytes
// apart) and the MN-major V tile (same bytes: 64 values of N per row, 8 rows of K per group) share the encoding: the
// stride between 8-row groups is 1024 bytes, the other offset is unused for a single 128-byte atom.
__device__ __forceinline__ u64 smem_desc(u32 addr) { return wgmma_desc(addr, 1024, WGMMA_SWIZZLE_128B); }

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

#define ATTN_TILE (64 * 128)  // bytes of one 64 x 64 tile

// One warpgroup's running state; the arrays stay in registers because every index is static after inlining.
struct AttnState
{
    float o[32], s[32];
    u32 p[16];
    float m0, m1, l0, l1, alpha0, alpha1;
};

// O *= alpha before P.V accumulates. Once the row maxima settle most tiles leave them unchanged: a warp whose factors
// are all 1 skips the rescale.
__device__ __forceinline__ void rescale_o(AttnState& st)
{
    fence_regs(st.o, 32);
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
}

// The scores and P of key tile 0 (its K tile resident); the running state starts empty.
template <typename T>
__device__ __forceinline__ void first_tile(AttnState& st, u64 dq, u64 dk, int nk, int lane, float sl2)
{
#pragma unroll
    for (int i = 0; i < 32; ++i) st.o[i] = 0.0f;
    st.m0 = st.m1 = -F_INF;
    st.l0 = st.l1 = 0.0f;
    issue_qk<T>(st.s, dq, dk);
    wgmma_wait<0>();
    fence_regs(st.s, 32);
    softmax_tile(st.s, st.m0, st.m1, st.l0, st.l1, st.alpha0, st.alpha1, 0, nk, lane, sl2);
    pack_p<T>(st.s, st.p);
}

// Row sums over the quad, then O / l written as pairs; this thread holds rows `row` and `row + 8` of (b, h).
template <typename T>
__device__ __forceinline__ void store_o(const AttentionArgs& a, const AttnState& st, i64 b, i64 h, int row, int lane)
{
    float l0 = st.l0, l1 = st.l1;
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
    u16* y = (u16*)a.y + b * a.ys[0] + h * a.ys[1];
#pragma unroll
    for (int c = 0; c < 8; ++c)
    {
        int col = c * 8 + (lane & 3) * 2;
        if (row < a.nq) *(u32*)(y + (i64)row * a.ys[2] + col) = pack2_sm90<T>(st.o[4 * c] * inv0, st.o[4 * c + 1] * inv0);
        if (row + 8 < a.nq) *(u32*)(y + (i64)(row + 8) * a.ys[2] + col) = pack2_sm90<T>(st.o[4 * c + 2] * inv1, st.o[4 * c + 3] * inv1);
    }
}

#ifndef ATTN_NW
#define ATTN_NW 4  // consumer warpgroups per block (64 query rows each); one block per multiprocessor
#endif
#ifndef ATTN_STAGES
#define ATTN_STAGES 6  // K/V buffers the producer may run ahead by
#endif
// Registers per thread after the split: the block starts with an even share (ptxas: 96 at 640 threads); the producer
// keeps 24 and the consumers take the rest, 112 (they need 111). Asking for more than the block freed would hang.
#ifndef ATTN_PRODUCER_REGS
#define ATTN_PRODUCER_REGS 24
#endif
#ifndef ATTN_CONSUMER_REGS
#define ATTN_CONSUMER_REGS 112
#endif
#define ATTN_THREADS (128 * (ATTN_NW + 1))
// Q rows, K and V stages, then the full/empty barrier of each stage and Q's (with room to align the base to 1024).
#define ATTN_SM90_SMEM (64 * ATTN_NW * 128 + 2 * ATTN_STAGES * ATTN_TILE + 8 * (2 * ATTN_STAGES + 1) + 1024)

// Q, K and V as 4D maps over (head dim, rows, heads, batch) with 64 x 64 boxes and the 128-byte swizzle; rows past the
// end read as zeros. Passed as a __grid_constant__ parameter, which TMA reads the maps from.
struct TmaAttentionArgs
{
    TensorMap q;
    TensorMap k;
    TensorMap v;
    AttentionArgs a;
};
static_assert(sizeof(TmaAttentionArgs) == 640, "TmaAttentionArgs must match KernelArgs.cs");

// One 64-row box at (row, h, b) into a swizzled tile; its bytes count towards the barrier's transaction.
__device__ __forceinline__ void tma_load_tile(u32 dst, const TensorMap* map, u32 bar, int row, int h, int b)
{
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, %6}], [%2];\n"
        ::"r"(dst), "l"((u64)map), "r"(bar), "r"(0), "r"(row), "r"(h), "r"(b) : "memory");
}

struct AttnBlock
{
    u32 full, empty;  // first stage's barriers (8 bytes each)
    u64 dq, dk, dv;
    int nk, lane;
    float sl2;
};

// Iteration j: the scores of tile j + 1 go to the tensor cores, then P_j.V_j; the softmax of tile j + 1 runs while
// P_j.V_j does, and tile j's stage goes back to the producer once P_j.V_j has read it. HAS_NEXT is a template
// argument because ptxas follows which wgmma groups are in flight only through straight-line code: a conditional
// issue or wait makes it serialise every wgmma of the kernel.
template <typename T, bool HAS_NEXT>
__device__ __forceinline__ void attention_step(const AttnBlock& blk, AttnState& st, int j)
{
    if (HAS_NEXT)
    {
        const int t = j + 1, s = t % ATTN_STAGES;
        mbar_wait(blk.full + 8 * s, (t / ATTN_STAGES) & 1);
        issue_qk<T>(st.s, blk.dq, blk.dk + s * (ATTN_TILE >> 4));
    }
    rescale_o(st);
    issue_pv<T>(st.o, st.p, blk.dv + (j % ATTN_STAGES) * (ATTN_TILE >> 4));
    if (HAS_NEXT)
    {
        wgmma_wait<1>();
        fence_regs(st.s, 32);
        softmax_tile(st.s, st.m0, st.m1, st.l0, st.l1, st.alpha0, st.alpha1, (j + 1) * 64, blk.nk, blk.lane, blk.sl2);
    }
    wgmma_wait<0>();
    fence_regs(st.o, 32);
    if (blk.lane == 0) mbar_arrive(blk.empty + 8 * (j % ATTN_STAGES));  // one arrival per warp
    if (HAS_NEXT) pack_p<T>(st.s, st.p);
}

template <typename T>
__device__ void flash_attention_sm90_impl(const TmaAttentionArgs& ta)
{
    const AttentionArgs& a = ta.a;
    constexpr int NW = ATTN_NW, BM = 64 * NW, S = ATTN_STAGES;
    extern __shared__ unsigned char smem_raw[];
    const u32 q_smem = (smem_addr(smem_raw) + 1023) & ~1023u;
    const u32 k_smem = q_smem + BM * 128, v_smem = k_smem + S * ATTN_TILE;
    const u32 full = v_smem + S * ATTN_TILE, empty = full + 8 * S, q_full = empty + 8 * S;
    const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
    const int bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
    const int q0 = blockIdx.x * BM, tiles = (a.nk + 63) / 64;
    if (tid == 0)
    {
        for (int s = 0; s < S; ++s)
        {
            mbar_init(full + 8 * s, 1);
            mbar_init(empty + 8 * s, NW * 4);
        }
        mbar_init(q_full, 1);
        mbar_init_fence();
    }
    __syncthreads();

    if (wg == NW)
    {
        setmaxnreg_dec<ATTN_PRODUCER_REGS>();
        // The producer: one thread issues every copy. A stage is refilled once all consumer warps released it.
        if (tid == NW * 128)
        {
            const int boxes = min(NW, (a.nq - q0 + 63) / 64);  // Q boxes holding at least one row
            mbar_expect_tx(q_full, boxes * ATTN_TILE);
            for (int r = 0; r < boxes; ++r) tma_load_tile(q_smem + r * ATTN_TILE, &ta.q, q_full, q0 + 64 * r, h, b);
            for (int t = 0; t < tiles; ++t)
            {
                const int s = t % S;
                if (t >= S) mbar_wait(empty + 8 * s, ((t / S) + 1) & 1);
                mbar_expect_tx(full + 8 * s, 2 * ATTN_TILE);
                tma_load_tile(k_smem + s * ATTN_TILE, &ta.k, full + 8 * s, t * 64, h, b);
                tma_load_tile(v_smem + s * ATTN_TILE, &ta.v, full + 8 * s, t * 64, h, b);
            }
        }
        return;
    }

    setmaxnreg_inc<ATTN_CONSUMER_REGS>();
    AttnBlock blk;
    blk.full = full;
    blk.empty = empty;
    blk.dq = smem_desc(q_smem + wg * ATTN_TILE);
    blk.dk = smem_desc(k_smem);
    blk.dv = smem_desc(v_smem);
    blk.nk = a.nk;
    blk.lane = lane;
    blk.sl2 = a.scale * LOG2E;

    AttnState st;
    mbar_wait(q_full, 0);
    mbar_wait(full, 0);
    first_tile<T>(st, blk.dq, blk.dk, a.nk, lane, blk.sl2);
    for (int j = 0; j + 1 < tiles; ++j) attention_step<T, true>(blk, st, j);
    attention_step<T, false>(blk, st, tiles - 1);
    store_o<T>(a, st, b, h, q0 + wg * 64 + warp * 16 + (lane >> 2), lane);
}

extern "C" __global__ void __launch_bounds__(ATTN_THREADS, 1)
    flash_attention_sm90_f16_d64(const __grid_constant__ TmaAttentionArgs a) { flash_attention_sm90_impl<f16>(a); }
extern "C" __global__ void __launch_bounds__(ATTN_THREADS, 1)
    flash_attention_sm90_bf16_d64(const __grid_constant__ TmaAttentionArgs a) { flash_attention_sm90_impl<bf16>(a); }
