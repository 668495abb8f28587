// 8-bit attention for Hopper (sm_90a only): the SageAttention2 numerics of attention_sage8.cu (INT8 Q.K^T with
// smoothed K, FP8 E4M3 P.V, two-level float accumulation; reference src/CogVideoX.Engine/Ops/Sage8Attention.cs) on the
// warpgroup tensor-core instructions, laid out as attention_sm90.cu is for F16. UNRUN when written (no GPU in that
// session): the op catalogue's sage8_attention "[wgmma]" cases check it against the CPU emulation.
//
// The quantization pre-pass is attention_sage8.cu's, unchanged (same buffers, same scale groups); this module only
// holds the attention kernel, which reads them:
//   q8 [BH][nq_pad][64] s8, qscale [BH][nq_pad]       (scale per rows {r, r+8} of a 16-row tile, log2(e)*scale folded)
//   k8 [BH][nk_pad][64] s8, kscale [BH][nk_pad]       (scale per 64-key tile and (token mod 8) div 2)
//   vt8 [BH][64][nk_pad] e4m3, vscale [BH][64]        (V transposed, keys of each 32-block permuted, see below)
//
// Block: SAGE90_NW consumer warpgroups of 64 query rows each and one producer warpgroup. The producer's one thread
// streams, per 64-key tile, the K tile (64 keys x 64 bytes) and the V^T tile (64 channels x 64 key bytes) with the
// tensor memory accelerator (3D maps over the scratch buffers, 64-byte swizzle) and the tile's 64 K scales (256 bytes,
// a plain bulk copy), all completing on the stage's mbarrier; consumers release a stage with one arrival per warp.
// With SAGE_TC_ROWSUM (common.cuh; the default) every V^T stage ends in 8 rows of E4M3 ones, written once.
//
// Per consumer warpgroup and key tile (described at 64 keys, K's scale block; the default SAGE90_KEYS=128 takes two
// such blocks a tile, below, with N = 128 scores and four P.V k-steps over the stage's two V^T tiles):
//   S    = wgmma m64n64k32 .s32.s8.s8, twice (head dim 64): Q from registers (A), K from shared memory (B, K-major)
//   s    = float(S) * (sq * sk): one scale per thread and row (the wgmma accumulator layout equals mma.sync m16n8's per
//          warp, so the reference's "per-thread" groups are exactly a thread's: rows r and r + 8 of its warp's 16, and
//          key columns 2t, 2t+1 of every 8, all in K group (token mod 8) div 2 = t)
//   P    = exp2(s - m) (online softmax in base 2), P * 448 to E4M3, packed straight into the A fragments of P.V; the
//          exponential is Schraudolph's linear one, an integer multiply-add on S (SAGE90_EXP_LIN, below)
//   T    = wgmma m64n72k32 .f32.e4m3.e4m3, twice (64 keys): P from registers (A), V^T and the ones from shared memory
//          (B, K-major); columns 64..71 are the tile's row sums of P's codes (SAGE_TC_ROWSUM=0: m64n64k32, and the
//          row sums of the unrounded P in float, per thread, summed over the quad at the end)
//   O    = O * exp2(m_old - m) + T: the two-level accumulation, once per tile as the reference does, row sums included
// The softmax of tile j + 1 runs while P_j.V_j is on the tensor cores (attention_sm90.cu's intra-warpgroup overlap),
// and T_j's accumulation while the scores of tile j + 2 are (sage90_step).
//
// Why no shuffle is needed for P: the 8-bit A fragment of wgmma m64nNk32 (PTX ISA, "Register fragments for
// wgmma.mma_async.m64nNk32", matrix A) gives the thread with lane = 4g + t, in warp w, the bytes
//   a0: row 16w + g,     k = 4t .. 4t+3        a1: row 16w + g + 8, k = 4t .. 4t+3
//   a2: row 16w + g,     k = 16+4t .. 16+4t+3  a3: row 16w + g + 8, k = 16+4t .. 16+4t+3
// (the same as mma.sync m16n8k32's A), while its accumulator holds columns 8c + 2t, 8c + 2t + 1 of rows g and g + 8.
// The pre-pass stores V^T with the keys of every 32-block permuted so that k-slot 4t + i is key 2t + (i & 1) +
// 8 (i >> 1) and slot 16 + 4t + i that plus 16 (attention_sage8.cu's slot_key): the slots a thread's A fragment covers
// are then exactly the keys its accumulator holds, and the contraction over slots is the contraction over keys.
//
// Head dim 64 only; nq_pad a multiple of SAGE90_ROWS (the host pads it), nk_pad of 64; padded keys are masked.

// TensorMap, the mbarrier and wgmma helpers and the online softmax of a score tile: common.cuh, for sm_90a only.
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#error "this module is for sm_90a only (wgmma, setmaxnreg)"
#endif

// Sage8Args (the pre-pass buffers and their padding): common.cuh, shared with attention_sage8.cu.

// K8 as (64 bytes, nk_pad, BH) and V^T8 as (nk_pad, 64, BH), uint8, 64 x 64 boxes, 64-byte swizzle; then the
// pre-pass's arguments. Passed as a __grid_constant__ parameter, which TMA reads the maps from.
struct Sage90Args
{
    TensorMap k8;
    TensorMap vt8;
    Sage8Args s;
};
static_assert(sizeof(Sage90Args) == 576, "Sage90Args must match KernelArgs.cs");

// Two schedules of the same per-tile operations (bit-identical results), chosen at compile time:
//   SAGE90_SERIAL=1: three consumer warpgroups at 160 registers at 128-key steps, four at 112 at 64; none overlaps
//     its own wgmmas, so its scores and its P.V accumulator share registers (sage90_serial_step), and the other
//     warpgroups hide each one's waits (the default with exp2, SAGE90_EXP_LIN=0, and at 64-key steps);
//   SAGE90_SERIAL=0: fewer consumer warpgroups with more registers, each overlapping its softmax with its P.V and its
//     accumulation with the next scores (sage90_step): three at 160 registers at 64-key steps; at 128 (scores 64
//     registers, P.V 36, the output 34, two P sets 32: about 195) two at 240, FlashAttention-3's form, the default
//     with the linear exponentials since 2026-12-06.
// H100, [2, 30, 17776, 64], 64-key steps with float row sums, in three calls: serial 8.72 / 8.85 / 8.92 ms a call,
// overlapped 8.92 / 9.08 / 8.97 ms. At 128 keys with exp2: serial 8.55 / 8.58, overlapped 9.30 / 9.43 (H100). At 128
// keys with the linear exponentials and SAGE90_LIN_FAST, two rounds in one call (H100, F16 kernel 10.20 ms): serial
// 7.32 / 7.37, overlapped 7.16 / 7.17 (without SAGE90_LIN_FAST: 7.47 / 7.43 and 7.40 / 7.45). Then the overlapped one
// with SAGE90_LIN_BOUND (F16 kernel 10.42): 6.94 / 6.93 / 7.01 against 7.44 / 7.45 / 7.51 without; and with
// SAGE90_EARLY_KS (F16 kernel 10.30): 6.70 / 6.79 / 6.78 against 6.86 / 6.94 / 6.96 without (three rounds a call).
#ifndef SAGE90_EXP_LIN
#define SAGE90_EXP_LIN 1  // the exponentials' form: see below, where it is used
#endif
#ifndef SAGE90_LIN_FAST
// 1 (the default with the linear exponentials and the tensor-core row sums since 2026-12-06): skip the clamps where the
// warp's scores need none (one vote a tile; see softmax8).
#define SAGE90_LIN_FAST (SAGE90_EXP_LIN * SAGE_TC_ROWSUM)
#endif
#if SAGE90_LIN_FAST && (!SAGE90_EXP_LIN || !SAGE_TC_ROWSUM)
#error "SAGE90_LIN_FAST is for the linear exponentials with the tensor-core row sums"
#endif
// SAGE90_KEYS=128 (the default since 2026-12-06; 64 is the A/B alternative): the online softmax steps over 128-key
// tiles, two of K's 64-key scale blocks each, so what is paid once a tile (the maxima's float part and shuffles, the
// correction exponentials, the accumulation O = O * c + T, the loop, barriers and wgmma issue) is paid once per 128
// keys. Scores at N = 128 take 64 registers, so three consumer warpgroups at 160 registers replace four at 112. The
// numerics change with the step: the CPU emulation follows it (Sage8Attention.Compute's softmaxStep; the host reads
// SAGE90_KEYS too). H200, [2, 30, 17776, 64], two interleaved rounds in one call (ping-pong on in both): 8.19 / 8.18 ms
// a call at 128 keys against 8.61 / 8.56 at 64 (without the ping-pong: 8.29 / 8.39 against 8.69 / 8.67).
#ifndef SAGE90_KEYS
#define SAGE90_KEYS 128
#endif
#if SAGE90_KEYS != 64 && SAGE90_KEYS != 128
#error "SAGE90_KEYS is 64 or 128 (keys per online-softmax step)"
#endif
#define SAGE90_KH (SAGE90_KEYS / 64)  // 64-key halves of a key tile
#ifndef SAGE90_SERIAL
// Overlapped at 128-key steps with the linear exponentials, serial otherwise (written as arithmetic for
// KernelConstantsTests' evaluator).
#define SAGE90_SERIAL (SAGE90_KH == 2 ? 1 - SAGE90_EXP_LIN : 1)
#endif
#ifndef SAGE90_NW
// Consumer warpgroups per block (64 query rows each; one block per multiprocessor): serial, 4 at 64-key steps and 3 at
// 128; overlapped, 3 and 2.
#define SAGE90_NW (SAGE90_SERIAL == 1 ? 5 - SAGE90_KH : 4 - SAGE90_KH)
#endif
#ifndef SAGE90_STAGES
#define SAGE90_STAGES 8  // K/V^T tiles the producer may run ahead by
#endif
// Registers per thread after the split: 640 threads start with 96 each (the launch bound's 102, in steps of 8); the
// producer gives back all but 24 and the four consumer warpgroups take 112: 128 * 24 + 512 * 112 = 60416 of 65536.
// The serial consumers need about 108 (O and the shared scores/accumulator: 2 x 32, P and Q fragments: 16,
// statistics, scales, descriptors); the overlapped ones about 156 (a separate accumulator and a second P set).
// SAGE90_KEYS=128: 512 threads start with 128, three consumer warpgroups take 160 (the scores alone are 64; ptxas
// uses 156).
#ifndef SAGE90_PRODUCER_REGS
#define SAGE90_PRODUCER_REGS 24
#endif
#ifndef SAGE90_CONSUMER_REGS
// Serial: 112, or 160 with 128-key tiles; overlapped: 160, or 240.
#define SAGE90_CONSUMER_REGS (SAGE90_SERIAL == 1 ? 64 + 48 * SAGE90_KH : 80 + 80 * SAGE90_KH)
#endif
#ifndef SAGE90_LIN_BOUND
// 1 (the default with SAGE90_LIN_FAST): before the row minima, a bound known per row decides whether any clamp is
// needed. |S| <= 127 * sum |Q8| (K8's codes are within +-127), so no score lies below L where
//   B * max(ks) + m <= log2(448) + 126 and m >= -128,  B = qs * (127 * sum |Q8| + 1), m the running maximum
// (B and m the larger of the thread's two rows, for one register and test fewer):
// M (S - im) + A >= 0 for S >= -127 sum |Q8| asks sc (127 sum |Q8| + im + 1) <= log2(448) + 127 + ym - m up to
// M's rounding (at most 2^-24 of the score span, < 0.13) and the float roundings (|m|, |ym| <= 263 then: < 0.03), and
// sc * im is ym, so the row's own scores cancel; the margin of 1 covers the rest. A few float instructions a tile
// instead of the 72 VIMNMX3 of the minima and the clamps' reciprocals: the exact test runs only where the bound fails.
// Not in the serial schedule at 128 keys: its one more live register there made ptxas serialise the wgmmas (C7511).
#define SAGE90_LIN_BOUND (SAGE90_LIN_FAST && !(SAGE90_SERIAL && SAGE90_KH == 2))
#endif
#if SAGE90_LIN_BOUND && !SAGE90_LIN_FAST
#error "SAGE90_LIN_BOUND is a first test for SAGE90_LIN_FAST"
#endif
#define SAGE90_THREADS (128 * (SAGE90_NW + 1))
// Registers a thread starts with (the launch bound's share, in steps of 8). setmaxnreg.inc takes registers only from
// the CTA's pool, i.e. what the producer's setmaxnreg.dec gave back: asking for more waits forever (SAGE90_NW=4 with
// 120 hung on an H100; 4 consumer warpgroups start with 96 and can reach 112).
#define SAGE90_LAUNCH_REGS ((65536 / SAGE90_THREADS) & ~7)
static_assert(SAGE90_NW * (SAGE90_CONSUMER_REGS - SAGE90_LAUNCH_REGS) <= SAGE90_LAUNCH_REGS - SAGE90_PRODUCER_REGS,
              "setmaxnreg.inc would wait for registers the producer never frees: lower SAGE90_CONSUMER_REGS (SAGE90_NW=4: 112)");
#define SAGE90_ROWS (64 * SAGE90_NW)  // query rows per block; the host pads nq_pad to a multiple of it
#define SAGE90_TILE 4096              // bytes of one 64 x 64 8-bit tile
// A V^T stage: the tile's 64 channel rows and, with SAGE_TC_ROWSUM (common.cuh), 8 rows of E4M3 ones after them, which
// P.V's wgmma (N = 72) turns into the row sums. 4608 bytes keep every stage on the 64-byte swizzle's 512-byte repeat.
#define SAGE90_VT_TILE (SAGE90_TILE + 512 * SAGE_TC_ROWSUM)
#define SAGE90_KSCALE 256             // bytes of one key tile's 64 K scales
// K and V^T stages (SAGE90_KH 64-key tiles each, back to back), the stages' K scales, the full/empty barrier of each
// stage, room to align the base to 1024.
#define SAGE90_SMEM (SAGE90_STAGES * SAGE90_KH * (SAGE90_TILE + SAGE90_VT_TILE + SAGE90_KSCALE) + 8 * 2 * SAGE90_STAGES + 1024)
#define SAGE90_K_STAGE (SAGE90_KH * SAGE90_TILE)     // bytes of a stage's K tiles
#define SAGE90_VT_STAGE (SAGE90_KH * SAGE90_VT_TILE) // bytes of a stage's V^T tiles
#define SAGE90_KS_STAGE (SAGE90_KH * SAGE90_KSCALE)  // bytes of a stage's K scales
// P.V's accumulator registers a thread: 64 channels, and the ones' columns 64..71 (rows r and r + 8, twice each).
#define SAGE90_PV_REGS (32 + 4 * SAGE_TC_ROWSUM)
// The scores' registers a thread (int32, N = SAGE90_KEYS), which the serial schedule's P.V accumulator reuses.
#define SAGE90_S_REGS (32 * SAGE90_KH)
#if SAGE90_KH > 1 && !SAGE_TC_ROWSUM
#error "SAGE90_KEYS=128 (the default) is written for the tensor-core row sums: add SAGE90_KEYS=64 to SAGE_TC_ROWSUM=0"
#endif

// ---- wgmma ------------------------------------------------------------------------------------------------------
// The 64 x 64 accumulator is 32 registers a thread (s32 or f32: common.cuh's WGMMA_ACC32), A from registers is 4 x .b32
// (16 8-bit values).
// PTX ISA (wgmma.mma_async, integer and .e4m3 forms; neither has a transpose operand: both operands K-major):
//   wgmma.mma_async.sync.aligned.m64n64k32.s32.s8.s8     d, a, b-desc, scale-d;
//   wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 d, a, b-desc, scale-d, imm-scale-a, imm-scale-b;
// scale-d is a predicate (false: D = A.B, true: D += A.B); imm-scale-a/b are 1 or -1 (negation), here 1.
__device__ __forceinline__ void wgmma_s8_m64n64k32(int* d, const u32* a, u64 db, int accumulate)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k32.s32.s8.s8 " WGMMA_ACC32 ", {%32,%33,%34,%35}, %36, p;\n}\n"
                 : WGMMA_ACC32_OPERANDS(WGMMA_RW_I, d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
}

// The scores of a 128-key tile (SAGE90_KEYS=128): N = 128, a 64-register accumulator, operands %0..%63.
#define WGMMA_ACC64 \
    "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29," \
    "%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57," \
    "%58,%59,%60,%61,%62,%63}"
__device__ __forceinline__ void wgmma_s8_m64n128k32(int* d, const u32* a, u64 db, int accumulate)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 " WGMMA_ACC64 ", {%64,%65,%66,%67}, %68, p;\n}\n"
                 : WGMMA_ACC32_OPERANDS(WGMMA_RW_I, d), WGMMA_ACC32_OPERANDS(WGMMA_RW_I, (d + 32))
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
}

__device__ __forceinline__ void wgmma_e4m3_m64n64k32(float* d, const u32* a, u64 db, int accumulate)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 " WGMMA_ACC32 ", {%32,%33,%34,%35}, %36, p, 1, 1;\n}\n"
                 : WGMMA_ACC32_OPERANDS(WGMMA_RW_F, d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
}

// The same with the float accumulator in 32-bit integer registers (PTX takes .b32 registers for .f32 operands): the
// serial schedule keeps the scores and P.V's accumulator in one register array.
__device__ __forceinline__ void wgmma_e4m3_m64n64k32_bits(int* d, const u32* a, u64 db, int accumulate)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 " WGMMA_ACC32 ", {%32,%33,%34,%35}, %36, p, 1, 1;\n}\n"
                 : WGMMA_ACC32_OPERANDS(WGMMA_RW_I, d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
}

// P.V at N = 72 (SAGE_TC_ROWSUM): the accumulator is 36 registers, columns 64..71 those of the ones.
#define WGMMA_ACC36                                                                                                    \
    "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30," \
    "%31,%32,%33,%34,%35}"
__device__ __forceinline__ void wgmma_e4m3_m64n72k32_bits(int* d, const u32* a, u64 db, int accumulate)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %41, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n72k32.f32.e4m3.e4m3 " WGMMA_ACC36 ", {%36,%37,%38,%39}, %40, p, 1, 1;\n}\n"
                 : WGMMA_ACC32_OPERANDS(WGMMA_RW_I, d), "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(accumulate));
}

// Shared-memory matrix descriptor for the 8-bit K-major tiles (the format: common.cuh's wgmma_desc; PTX ISA "Matrix
// Descriptor Format" and the canonical layouts of "Shared Memory Matrix Layout"), its fields derived one by one:
//   leading byte offset: the distance between core matrices along K. For a swizzled K-major layout the K direction
//               of one wgmma (k32 x 1 byte = 32 bytes, two 16-byte core-matrix columns) lies inside one swizzle row
//               (64 bytes), so it is not used (wgmma_desc sets 16 bytes, as CUTLASS and attention_sm90.cu do)
//   stride byte offset: the distance between 8-row groups along M (A) or N (B). Our tiles are 64 rows of 64
//               contiguous bytes (TMA box inner size 64 bytes), so 8 rows = 512 bytes.
//               The canonical K-major 64-byte-swizzle layout, in units of T = 16 elements (16 bytes of 8-bit data):
//               ((8, m), (T, 2k)) : ((4T, SBO), (1, T)): row stride 4T = 64 bytes (a swizzle row), SBO between
//               8-row groups -- exactly these tiles (the 16-bit tiles of attention_sm90.cu have 128-byte rows and
//               the 128-byte swizzle: SBO 1024 there)
//   base offset: 0, every tile starts on a 512-byte boundary (the 64-byte swizzle's repeat: 8 rows x 64 bytes; the
//               block aligns the base to 1024 and tiles are 4096 bytes), and a k-step's +32 bytes leaves address
//               bits 7-9, which the base offset would describe, unchanged
//   swizzle mode: 64-byte, the pattern TMA writes with CU_TENSOR_MAP_SWIZZLE_64B (16-byte chunk index, address bits
//               4-5, XOR address bits 7-8)
// A k-step (32 of the 64 bytes of a row) moves the start address by 32 bytes (+2), as the 16-bit kernel's k16 steps do.
__device__ __forceinline__ u64 smem_desc_sw64(u32 addr) { return wgmma_desc(addr, 512, WGMMA_SWIZZLE_64B); }

// int32 to float exactly without the conversion unit (a quarter-rate instruction, as the exponentials are): for
// |x| < 2^22, the bits of 1.5 * 2^23 plus x are the float 1.5 * 2^23 + x, and subtracting 1.5 * 2^23 is exact.
// |Q8.K8| <= 64 * 127 * 127 = 1032256 < 2^22, so the result is (float)x bit for bit.
__device__ __forceinline__ float s32_to_float(int x) { return __int_as_float(x + 0x4B400000) - 12582912.0f; }

// ---- copies (the mbarriers: common.cuh) ---------------------------------------------------------------------------
// One 3D box at (c0, c1, c2) into a swizzled tile; its bytes count towards the barrier's transaction.
__device__ __forceinline__ void tma_load_3d(u32 dst, const TensorMap* map, u32 bar, int c0, int c1, int c2)
{
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], [%2];\n"
        ::"r"(dst), "l"((u64)map), "r"(bar), "r"(c0), "r"(c1), "r"(c2) : "memory");
}
// A plain bulk copy of `bytes` (a multiple of 16; both addresses 16-byte aligned) counted on the same barrier.
__device__ __forceinline__ void bulk_load(u32 dst, const void* src, u32 bytes, u32 bar)
{
    asm volatile(
        "{\n.reg .u64 g;\ncvta.to.global.u64 g, %1;\n"
        "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [g], %2, [%3];\n}\n"
        ::"r"(dst), "l"(src), "r"(bytes), "r"(bar) : "memory");
}

// SAGE90_PINGPONG=1 (the default since 2026-12-06; serial schedule only): the consumer warpgroups issue their score
// wgmmas in turn, 0, 1, .., NW - 1, 0, .. (FlashAttention-3's warpgroup ping-pong, by named barriers), which staggers
// them so that one's softmax meets the others' wgmmas rather than their softmax on the special-function unit. The
// results are the same bit for bit. H200, same call as above: 1 to 2 % faster at either key step. (A turn around the
// softmax's float part instead was written too: ptxas then serialised the wgmmas, C7511, so it was dropped
// unmeasured.) 0: no order (the default of SAGE90_SERIAL=0, which it does not apply to).
#ifndef SAGE90_PINGPONG
#define SAGE90_PINGPONG SAGE90_SERIAL
#endif
#if SAGE90_PINGPONG && (!SAGE90_SERIAL || SAGE90_NW < 2 || SAGE90_NW > 15)
#error "SAGE90_PINGPONG (on by default with the serial schedule) needs it and 2 to 15 consumer warpgroups (named barriers 1 .. NW): add SAGE90_PINGPONG=0"
#endif
#if SAGE90_PINGPONG
// Named barrier 1 + w is warpgroup w's turn: its 128 threads wait there (bar.sync) for the previous warpgroup's 128
// arrivals (bar.arrive), made once that one's wgmmas are issued. ptxas keeps both in order with the wgmmas (SASS).
__device__ __forceinline__ void turn_take(int wg) { asm volatile("bar.sync %0, 256;" ::"r"(1 + wg) : "memory"); }
__device__ __forceinline__ void turn_pass(int wg)
{
    asm volatile("bar.arrive %0, 256;" ::"r"(1 + (wg + 1) % SAGE90_NW) : "memory");
}
#endif

// ---- the consumer warpgroups ----------------------------------------------------------------------------------------
// A key tile's K scales for this thread's group, one per 64-key half. SAGE90_EARLY_KS (the overlapped schedule's
// default): read from shared memory when the tile's scores are issued, well before the softmax that needs them, so
// that the load's latency hides; read inside the softmax, the scales' multiply waiting on it took 3 % of the stall
// samples (H100, ncu, 2026-12-06). The serial schedule reads them there: see kscale_of.
#ifndef SAGE90_EARLY_KS
#define SAGE90_EARLY_KS (1 - SAGE90_SERIAL)
#endif
#if SAGE90_EARLY_KS && SAGE90_SERIAL
#error "SAGE90_EARLY_KS is for the overlapped schedule"
#endif
struct KScales
{
    float v[SAGE90_KH];
};
__device__ __forceinline__ float kscale(u32 ks_smem, int h, int lane)
{
    float ks;
    asm volatile("ld.shared.f32 %0, [%1];" : "=f"(ks) : "r"(ks_smem + h * SAGE90_KSCALE + 4 * (2 * (lane & 3))));
    return ks;
}
__device__ __forceinline__ KScales load_kscales(u32 ks_smem, int lane)
{
    KScales ks;
#pragma unroll
    for (int h = 0; h < SAGE90_KH; ++h) ks.v[h] = kscale(ks_smem, h, lane);
    return ks;
}
// The softmax's source of scales: read there from shared memory (the serial schedule: the same code as before the
// overlapped schedule read them early, which its builds at 96 and 128 registers need to keep ptxas from serialising
// their wgmmas, C7511), or read before.
__device__ __forceinline__ float kscale_of(u32 ks_smem, int h, int lane) { return kscale(ks_smem, h, lane); }
__device__ __forceinline__ float kscale_of(const KScales& ks, int h, int) { return ks.v[h]; }

struct Sage90State
{
    float o[32 + 2 * SAGE_TC_ROWSUM];  // the running output (the outer float accumulator); o[32], o[33]: the row
                                       // sums of rows r and r + 8 (SAGE_TC_ROWSUM)
#if !SAGE90_SERIAL && SAGE_TC_ROWSUM
    int t[SAGE90_PV_REGS];  // one tile's P.V as float bits (the wgmma accumulator, the inner level), row sums in t[32..35]
#elif !SAGE90_SERIAL
    float t[32];  // one tile's P.V (the wgmma accumulator, the inner level; the serial schedule uses s's registers)
#endif
    // One tile's Q8.K8 (exact int32) in s[0 .. SAGE90_S_REGS - 1]; the serial schedule's P.V accumulator in s[0 .. 35].
    int s[SAGE90_S_REGS > SAGE90_PV_REGS ? SAGE90_S_REGS : SAGE90_PV_REGS];
#if SAGE90_KH == 1
    float f[32];  // its probabilities, between the softmax and the packing (SAGE90_KEYS=128: in s's registers)
#endif
    u32 p[8 * SAGE90_KH];    // P * 448 in E4M3 as the A fragments of P.V's k-steps (two per 64 keys)
#if !SAGE90_SERIAL
    u32 p2[8 * SAGE90_KH];  // the same for odd tiles (p: even ones), packed while the previous tile's P.V still reads p
#endif
    u32 q[8];     // Q8 as the A fragments of Q.K's two k-steps
#if SAGE90_EARLY_KS
    KScales ks;  // the K scales of the tile whose scores are in flight
#endif
    float m0, m1;          // running maxima (base 2), rows r and r + 8
#if !SAGE_TC_ROWSUM
    float l0, l1;          // this thread's share of the row sums (of P * 448), rows r and r + 8
#endif
    float c0, c1;          // exp2(m_old - m) of the tile whose P is in p
    float qs0, qs1;        // Q's scales of rows r and r + 8 (softmax scale * log2 e folded in)
#if SAGE90_LIN_BOUND
    float bq;  // qs * (127 * sum |Q8| + 1), the larger of rows r and r + 8: the clamps' bound (SAGE90_LIN_BOUND)
#endif
};

struct Sage90Block
{
    u32 full, empty, kscale;  // first stage's barriers (8 bytes each) and K scales (SAGE90_KSCALE bytes each)
    u64 dk, dv;               // descriptors of stage 0's K and V^T tiles
    int nk, lane, wg;
};

// One committed wgmma group of two k32 steps (A fragments a[0..3], then a[4..7]; B 32 bytes further) into the
// accumulator d of N registers, the first step overwriting it.
template <typename Acc, int N, void (*WGMMA)(Acc*, const u32*, u64, int)>
__device__ __forceinline__ void issue_k64(Acc* d, const u32* a, u64 db)
{
    wgmma_fence();
    fence_regs(d, N);
    WGMMA(d, a, db, 0);
    WGMMA(d, a + 4, db + (32 >> 4), 1);
    wgmma_commit();
}

// S = Q8.K8^T: two k-steps of 32 head-dim bytes, N = the tile's keys (a stage's K tiles lie back to back, so N = 128
// reads 16 groups of 8 rows at the descriptor's 512-byte stride).
__device__ __forceinline__ void issue_qk8(Sage90State& st, u64 dk)
{
#if SAGE90_KH == 1
    issue_k64<int, 32, wgmma_s8_m64n64k32>(st.s, st.q, dk);
#else
    issue_k64<int, 64, wgmma_s8_m64n128k32>(st.s, st.q, dk);
#endif
}

// The next scores' wgmma, issued in turn with SAGE90_PINGPONG.
__device__ __forceinline__ void issue_scores(Sage90State& st, const Sage90Block& blk, u64 dk)
{
#if SAGE90_PINGPONG
    turn_take(blk.wg);
#endif
    issue_qk8(st, dk);
#if SAGE90_PINGPONG
    turn_pass(blk.wg);
#endif
}

#if SAGE_TC_ROWSUM
// T = P.V for one tile into d (float bits, N = 72 with the ones' rows): two k-steps on each of the stage's V^T tiles,
// all into one accumulator (a 128-key tile: keys 0..63, then 64..127, P's fragments in the same order), so the ones'
// columns sum the row over the whole tile.
__device__ __forceinline__ void issue_pv8_into(int* d, const u32* p, u64 dv)
{
    wgmma_fence();
    fence_regs(d, SAGE90_PV_REGS);
#pragma unroll
    for (int h = 0; h < SAGE90_KH; ++h)
    {
        const u64 dh = dv + h * (SAGE90_VT_TILE >> 4);
        wgmma_e4m3_m64n72k32_bits(d, p + 8 * h, dh, h > 0);
        wgmma_e4m3_m64n72k32_bits(d, p + 8 * h + 4, dh + (32 >> 4), 1);
    }
    wgmma_commit();
}
#endif

// The two-level accumulation from a P.V accumulator held as float bits (d): O = O * c + T, once per tile. With
// SAGE_TC_ROWSUM the ones' columns 64 + 2t of rows r and r + 8 (d[32], d[34]) are the tile's row sums of P's codes,
// rescaled with the output (d[33] and d[35], the columns 65 + 2t, hold the same sums).
__device__ __forceinline__ void accumulate_bits(Sage90State& st, int* d, float c0, float c1)
{
    fence_regs(d, SAGE90_PV_REGS);
#pragma unroll
    for (int i = 0; i < 32; ++i) st.o[i] = st.o[i] * ((i & 2) ? c1 : c0) + __int_as_float(d[i]);
#if SAGE_TC_ROWSUM
    st.o[32] = st.o[32] * c0 + __int_as_float(d[32]);
    st.o[33] = st.o[33] * c1 + __int_as_float(d[34]);
#endif
}

// T = P.V for one tile (a fresh inner accumulator per tile), P's fragments from p.
#if !SAGE90_SERIAL
__device__ __forceinline__ void issue_pv8(Sage90State& st, const u32* p, u64 dv)
{
#if SAGE_TC_ROWSUM
    issue_pv8_into(st.t, p, dv);
#else
    issue_k64<float, 32, wgmma_e4m3_m64n64k32>(st.t, p, dv);
#endif
}
#endif

#define S32_MIN (-2147483647 - 1)
// log2(448): the exponent offset that makes exp2 produce P * 448, the E4M3 code's scale, directly.
#define SAGE90_LOG2_448 8.807354922057604f
#ifndef SAGE90_EXP_EMU
#define SAGE90_EXP_EMU 0  // chunks (of 8, 4 scores each) whose exponentials run on the FMA pipes (common.cuh's ex2_poly)
#endif
// SAGE90_EXP_LIN=1 (the default since 2026-12-06; 0 is the A/B alternative): P * 448 without the special-function
// unit. The float bits of 2^y are about (y + 127) * 2^23 (Schraudolph: the mantissa linear in y's fraction, at most
// 6.1 % high, before E4M3 keeps 3 of its bits), and that integer is one IMAD on the int32 score: S * M + C with
// M = round(sc * 2^23). One IMNMX first clamps S so that y >= -127 (M, C and the clamp per row, 64-key half and K
// group, anchored at the thread's integer maximum there so that M's rounding scales only the distance from it; see
// lin_row). Two integer instructions a score instead of the bias IADD, the FFMA and MUFU.EX2, which was the busiest
// unit (66 exponentials a warp and 128 keys at 8 cycles each): H100, [2, 30, 17776, 64], two interleaved rounds in one
// call: 7.49 / 7.56 ms a call against 8.08 / 8.15 with exp2 (F16 kernel 10.15 ms); the 2b step's error against the
// exact step 1.730e-3 against 1.722e-3. The numerics are integer arithmetic: the CPU emulation
// (Sage8Attention.LinearProbabilities) follows them bit for bit. 0 builds the exp2 kernel (SageAttention2's numerics).
#if SAGE90_EXP_LIN && SAGE90_EXP_EMU
#error "SAGE90_EXP_LIN (the default) has no special-function exponentials to move: add SAGE90_EXP_LIN=0 to SAGE90_EXP_EMU"
#endif
#ifndef SAGE90_SUM_CHAINS
#define SAGE90_SUM_CHAINS 2  // independent row-sum chains a row (1, 2, 4 or 8): 2 measured 2.5 % faster than 1 (H100)
#endif

#if SAGE90_EXP_LIN
// The constants of the scores one thread holds of a row in a 64-key half (one K scale group, scale sc), whose integer
// maximum im converts to the score ym (dy = ym - the running maximum <= 0): P * 448's float bits for a score S >= L
// are S * M + C, with
//   M = round(sc * 2^23), A = (log2(448) + 127 + dy) * 2^23 (the maximum's bits, 0 where all of them lie below
//   2^-127), C = A - im * M, so S's bits are A + (S - im) * M, exact in int32 arithmetic (wrapping products cancel);
//   L = im - d with d a little below A / M (at most 2^22; |S| <= 2^20), so that no bits are negative (the float of
//   such bits would be negative or NaN): a clamped score gives a denormal at most, which E4M3 rounds to 0.
// lin_row gives M and C, lin_low the clamp L (needed only where a score may lie below it: SAGE90_LIN_FAST).
__device__ __forceinline__ float lin_top(float dy) { return fmaxf(SAGE90_LOG2_448 + 127.0f + dy, 0.0f) * 8388608.0f; }
__device__ __forceinline__ void lin_row(float sc, float dy, int im, int& m, int& c)
{
    m = __float2int_rn(sc * 8388608.0f);
    c = __float2int_rn(lin_top(dy)) - im * m;
}
__device__ __forceinline__ int lin_low(float dy, int im, int m)
{
    float r;  // 1 / M, approximate (and inf for M = 0, where d becomes 2^22): d stays below A / M by the factor
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"((float)m));
    const float d = fminf(lin_top(dy) * (r * (1.0f - 1.0f / 1048576.0f)), 4194304.0f);
    return im - (int)d;
}
#endif

// The largest (MAX) or smallest of the 16 integer scores a thread holds of one row in a 64-key half s: elements 4c + R
// and 4c + R + 1, R = 0 for row r and 2 for row r + 8. Eight three-input VIMNMX3 (DPX) and a two-input one.
template <bool MAX, int R>
__device__ __forceinline__ int half_row_extreme(const int* s)
{
    auto e3 = [](int a, int b, int c) { return MAX ? __vimax3_s32(a, b, c) : __vimin3_s32(a, b, c); };
    int x = e3(e3(s[R], s[R + 1], s[R + 4]), e3(s[R + 5], s[R + 8], s[R + 9]), e3(s[R + 12], s[R + 13], s[R + 16]));
    x = e3(x, e3(s[R + 17], s[R + 20], s[R + 21]), e3(s[R + 24], s[R + 25], s[R + 28]));
    return MAX ? max(x, s[R + 29]) : min(x, s[R + 29]);
}

// The scores of the tile at key kv0 (its S resident in st.s, its K scales from kss): the online softmax step, with
// P * 448 left in st.f and (SAGE_TC_ROWSUM=0) this thread's share of the tile's row sums (of P * 448) added to l. The
// kernel is bound by instruction issue and the exponential unit, so each score costs as few instructions as the
// reference's roundings allow (373 per thread and tile before, SASS of sm_90a; about 230 now):
//   - the row maximum is taken over the integer dot products (three-input VIMNMX3) and converted once: the reference's
//     scores are float(S) * sc rounded, a monotone map for sc > 0, so its maximum is the converted integer maximum;
//   - float(S) * sc - m + log2(448) is one FFMA on the biased integer bits: A = bits(S + 1.5 * 2^23) is the float
//     1.5 * 2^23 + S exactly (s32_to_float), and A * sc + (log2(448) - m - 1.5 * 2^23 * sc) differs from the
//     reference's rounded score only by the rounding of that row constant, less than one unit of sc (the integer dot
//     product's own quantization step) and the same for every score the thread holds in the row;
//   - the factor 448 is in the exponent, so P * 448 needs no multiply and the row sums carry it (store_o8 divides by
//     them alone).
// Every column a thread holds (8 (i >> 2) + 2 (lane & 3) + (i & 1) for element i) is in K scale group lane & 3, whose
// scale token 2 (lane & 3) carries. TAIL: the last tile, whose keys from nk on take no weight.
template <bool TAIL, typename KS>
__device__ __forceinline__ void softmax8(Sage90State& st, const KS& kss, int kv0, int nk, int lane)
{
    // Per 64-key half h of the tile (elements 32h .. 32h + 31): its K scale block's scale for this thread's group.
    // The reference rounds sq * sk first, then multiplies the integer dot product by it.
    float sc0[SAGE90_KH], sc1[SAGE90_KH], ksm;
#pragma unroll
    for (int h = 0; h < SAGE90_KH; ++h)
    {
        const float ks = kscale_of(kss, h, lane);
        sc0[h] = st.qs0 * ks;
        sc1[h] = st.qs1 * ks;
        ksm = h == 0 ? ks : fmaxf(ksm, ks);
    }
    if (TAIL)
    {
#pragma unroll
        for (int i = 0; i < SAGE90_S_REGS; ++i)
            if (kv0 + (i >> 2) * 8 + (lane & 3) * 2 + (i & 1) >= nk) st.s[i] = S32_MIN;
    }
    // Row r holds elements 4c, 4c + 1 and row r + 8 elements 4c + 2, 4c + 3: 16 each a half, maxima in 8 VIMNMX3 a
    // row, converted with the half's scale (a monotone map each, so the larger converted maximum is the tile's).
    // A thread whose keys in a half are all masked holds S32_MIN there, and its scale is 0 (the pre-pass writes 0 for
    // a group whose scale token is padded, and then every key of the group is), so that half converts to -0. That is
    // no real score's bound, but it never raises the maximum: K smoothing makes a row's real scores sum to zero, so
    // their maximum is >= 0 up to rounding. The quad holds the tile's first key, which is always real.
    float x0, x1;
#if SAGE90_EXP_LIN
    int im0[SAGE90_KH], im1[SAGE90_KH];
    float ym0[SAGE90_KH], ym1[SAGE90_KH];
#endif
#pragma unroll
    for (int h = 0; h < SAGE90_KH; ++h)
    {
        const int i0 = half_row_extreme<true, 0>(st.s + 32 * h), i1 = half_row_extreme<true, 2>(st.s + 32 * h);
        const float y0 = s32_to_float(i0) * sc0[h], y1 = s32_to_float(i1) * sc1[h];
#if SAGE90_EXP_LIN
        im0[h] = i0;
        im1[h] = i1;
        ym0[h] = y0;
        ym1[h] = y1;
#endif
        x0 = h == 0 ? y0 : fmaxf(x0, y0);
        x1 = h == 0 ? y1 : fmaxf(x1, y1);
    }
    x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 1));
    x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 2));
    x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 1));
    x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 2));
    const float n0 = fmaxf(st.m0, x0), n1 = fmaxf(st.m1, x1);
    st.c0 = ex2_approx(st.m0 - n0);
    st.c1 = ex2_approx(st.m1 - n1);
    st.m0 = n0;
    st.m1 = n1;
#if SAGE90_EXP_LIN
    // Per row and half: M and C (lin_row); the clamp L (lin_low) only where a score may lie below it.
    int mm0[SAGE90_KH], mm1[SAGE90_KH], lo0[SAGE90_KH], lo1[SAGE90_KH], cc0[SAGE90_KH], cc1[SAGE90_KH];
#pragma unroll
    for (int h = 0; h < SAGE90_KH; ++h)
    {
        lin_row(sc0[h], ym0[h] - n0, im0[h], mm0[h], cc0[h]);
        lin_row(sc1[h], ym1[h] - n1, im1[h], mm1[h], cc1[h]);
    }
    auto clamps = [&]()
    {
#pragma unroll
        for (int h = 0; h < SAGE90_KH; ++h)
        {
            lo0[h] = lin_low(ym0[h] - n0, im0[h], mm0[h]);
            lo1[h] = lin_low(ym1[h] - n1, im1[h], mm1[h]);
        }
    };
#else
    float b0[SAGE90_KH], b1[SAGE90_KH];
#pragma unroll
    for (int h = 0; h < SAGE90_KH; ++h)
    {
        b0[h] = fmaf(-12582912.0f, sc0[h], SAGE90_LOG2_448 - n0);
        b1[h] = fmaf(-12582912.0f, sc1[h], SAGE90_LOG2_448 - n1);
    }
#endif
#if !SAGE_TC_ROWSUM
    // Row sums in SAGE90_SUM_CHAINS independent chains a row (chunk c adds to chain c mod chains), combined in order:
    // one chain is 16 dependent adds after the last exponential. (SAGE_TC_ROWSUM: P.V's wgmma sums P's codes.)
    float r0[SAGE90_SUM_CHAINS], r1[SAGE90_SUM_CHAINS];
#endif
    const int* s = st.s;
#if SAGE90_EXP_LIN && SAGE90_LIN_FAST
    // The clamps are needed only where a score lies below its L: where none of the warp's does (the usual case: a row
    // spans far less than 127 octaves), a second copy of the loop skips them. The minima: 8 VIMNMX3 a row and half.
#if SAGE90_LIN_BOUND
    constexpr float bound = SAGE90_LOG2_448 + 126.0f;
    bool unclamped = !TAIL && fmaf(st.bq, ksm, fmaxf(n0, n1)) <= bound && fminf(n0, n1) >= -128.0f;
    unclamped = __all_sync(0xffffffffu, unclamped);
    if (__builtin_expect(!unclamped, 0))
#else
    bool unclamped;
#endif
    {
        clamps();
        unclamped = !TAIL;
#pragma unroll
        for (int h = 0; h < SAGE90_KH; ++h)
        {
            const int j0 = half_row_extreme<false, 0>(st.s + 32 * h), j1 = half_row_extreme<false, 2>(st.s + 32 * h);
            unclamped = unclamped && j0 >= lo0[h] && j1 >= lo1[h];
        }
        unclamped = __all_sync(0xffffffffu, unclamped);
    }
    if (__builtin_expect(unclamped, 1))
    {
#pragma unroll
        for (int i = 0; i < SAGE90_S_REGS; ++i)
        {
            const bool hi = (i & 2) != 0;
            const int h = i >> 5;
            const float p = __int_as_float(s[i] * (hi ? mm1[h] : mm0[h]) + (hi ? cc1[h] : cc0[h]));
#if SAGE90_KH == 1
            st.f[i] = p;
#else
            st.s[i] = __float_as_int(p);
#endif
        }
        return;
    }
#elif SAGE90_EXP_LIN
    clamps();
#endif
#pragma unroll
    for (int i = 0; i < SAGE90_S_REGS; ++i)
    {
        const bool hi = (i & 2) != 0;
        const int h = i >> 5;
#if SAGE90_EXP_LIN
        float p = __int_as_float(max(s[i], hi ? lo1[h] : lo0[h]) * (hi ? mm1[h] : mm0[h]) + (hi ? cc1[h] : cc0[h]));
#else
        const float arg = fmaf(__int_as_float(s[i] + 0x4B400000), hi ? sc1[h] : sc0[h], hi ? b1[h] : b0[h]);
        float p = (i >> 2) < SAGE90_EXP_EMU ? ex2_poly(arg) : ex2_approx(arg);
#endif
        // Masked keys: their argument is far below zero only when sc is not tiny, so they are zeroed outright.
        if (TAIL && kv0 + (i >> 2) * 8 + (lane & 3) * 2 + (i & 1) >= nk) p = 0.0f;
#if SAGE90_KH == 1
        st.f[i] = p;
#else
        // Over the score just read: a separate array made ptxas serialise the wgmmas at N = 128 (C7511), while at
        // N = 64 it is the aliasing that does.
        st.s[i] = __float_as_int(p);
#endif
#if !SAGE_TC_ROWSUM
        // A chain's first term is assigned, not added to 0 (the same value: p >= 0), saving an FADD per chain.
        float& r = hi ? r1[(i >> 2) % SAGE90_SUM_CHAINS] : r0[(i >> 2) % SAGE90_SUM_CHAINS];
        if ((i >> 2) < SAGE90_SUM_CHAINS && (i & 1) == 0) r = p;
        else r += p;
#endif
    }
#if !SAGE_TC_ROWSUM
#pragma unroll
    for (int k = 1; k < SAGE90_SUM_CHAINS; ++k)
    {
        r0[0] += r0[k];
        r1[0] += r1[k];
    }
    st.l0 = st.l0 * st.c0 + r0[0];
    st.l1 = st.l1 * st.c1 + r1[0];
#endif
}

// The softmax of the tile at key kv0: the tail form only for the last tile, which has keys past nk.
template <typename KS>
__device__ __forceinline__ void softmax8_at(Sage90State& st, const KS& ks, int kv0, int nk, int lane)
{
    if (kv0 + SAGE90_KEYS > nk) softmax8<true>(st, ks, kv0, nk, lane);
    else softmax8<false>(st, ks, kv0, nk, lane);
}

// The softmax's P * 448, elementwise as the scores.
__device__ __forceinline__ const float* probabilities(const Sage90State& st)
{
#if SAGE90_KH == 1
    return st.f;
#else
    return reinterpret_cast<const float*>(st.s);
#endif
}

// P * 448 to E4M3 in the A fragments: k-step u covers accumulator chunks 4u .. 4u + 3 (keys 32u .. 32u + 31).
// a0 = row r, chunks 4u and 4u + 1 (slots 4t .. 4t+3 = keys 2t, 2t+1, 2t+8, 2t+9); a1 the same for row r + 8;
// a2, a3 = chunks 4u + 2 and 4u + 3 (slots 16 + 4t ..). The first key of a pair goes to the lower byte.
__device__ __forceinline__ void pack_p8(Sage90State& st, u32* dst)
{
#pragma unroll
    for (int u = 0; u < 2 * SAGE90_KH; ++u)
#pragma unroll
        for (int h = 0; h < 2; ++h)
        {
            const int c = 4 * u + 2 * h;  // chunks c, c + 1
            const float* lo = probabilities(st) + 4 * c;
            const float* hi = probabilities(st) + 4 * (c + 1);
            dst[4 * u + 2 * h] = e4m3x4(lo[0], lo[1], hi[0], hi[1]);
            dst[4 * u + 2 * h + 1] = e4m3x4(lo[2], lo[3], hi[2], hi[3]);
        }
}

#if !SAGE90_SERIAL
// The two-level accumulation: O = O * exp2(m_old - m) + T, once per tile (T is complete: its wgmma group retired).
__device__ __forceinline__ void accumulate_tile(Sage90State& st, float c0, float c1)
{
#if SAGE_TC_ROWSUM
    accumulate_bits(st, st.t, c0, c1);
#else
    fence_regs(st.t, 32);
#pragma unroll
    for (int c = 0; c < 8; ++c)
    {
        st.o[4 * c] = st.o[4 * c] * c0 + st.t[4 * c];
        st.o[4 * c + 1] = st.o[4 * c + 1] * c0 + st.t[4 * c + 1];
        st.o[4 * c + 2] = st.o[4 * c + 2] * c1 + st.t[4 * c + 2];
        st.o[4 * c + 3] = st.o[4 * c + 3] * c1 + st.t[4 * c + 3];
    }
#endif
}
#endif

#if !SAGE90_SERIAL
// The schedule: the scores of tile j + 2 are issued as soon as tile j + 1's softmax has read its own and P_{j+1} is
// packed, so T_j's accumulation runs while they are on the tensor cores, and tile j + 2's barrier is tested (not
// waited on) before the softmax, so its answer's latency hides behind it. P alternates between two fragment sets
// (p for even tiles, p2 for odd ones): P_{j+1} is packed while P_j.V_j still reads P_j. Against issuing S_{j+1} and
// waiting on it right away, with a blocking barrier wait before (H100, [2, 30, 17776, 64]): 9.46 -> 8.74 ms a call,
// 8.92 without the early test; the same operations in the same order per tile, so the same results bit for bit.
// Step j (0 <= j <= tiles - 2), on entry: S_{j+1}, then P_j.V_j in flight (committed in that order), P_j in set j & 1.
// NEXT = (j + 1) & 1, the set P_{j+1} goes to; ISSUE: tile j + 2 exists (j <= tiles - 3), so tile j + 1 is not the
// last and has no masked keys. Straight-line per instantiation: ptxas follows in-flight wgmma groups only through such
// code (a branch on whether a group was issued serialises every wgmma: its warning C7514).
template <int NEXT, bool ISSUE>
__device__ __forceinline__ void sage90_step(const Sage90Block& blk, Sage90State& st, int j)
{
    const float c0 = st.c0, c1 = st.c1;  // tile j's correction, before tile j + 1's softmax replaces it
    u32* pn = NEXT ? st.p2 : st.p;
    const int s1 = (j + 1) % SAGE90_STAGES, t2 = j + 2, s2 = t2 % SAGE90_STAGES;
    // Tile j + 2's stage, asked before the softmax and needed after it.
    const u32 ready = ISSUE ? mbar_test(blk.full + 8 * s2, (t2 / SAGE90_STAGES) & 1) : 0;
#if SAGE90_EARLY_KS
    const KScales ks = st.ks;
#else
    const u32 ks = blk.kscale + s1 * SAGE90_KS_STAGE;
#endif
    wgmma_wait<1>();  // S_{j+1}; P_j.V_j may still run
    fence_regs(st.s, SAGE90_S_REGS);
    if (ISSUE) softmax8<false>(st, ks, (j + 1) * SAGE90_KEYS, blk.nk, blk.lane);
    else softmax8_at(st, ks, (j + 1) * SAGE90_KEYS, blk.nk, blk.lane);
    pack_p8(st, pn);
    if (ISSUE)
    {
        if (!ready) mbar_wait(blk.full + 8 * s2, (t2 / SAGE90_STAGES) & 1);
        issue_qk8(st, blk.dk + s2 * (SAGE90_K_STAGE >> 4));
#if SAGE90_EARLY_KS
        st.ks = load_kscales(blk.kscale + s2 * SAGE90_KS_STAGE, blk.lane);
#endif
        wgmma_wait<1>();  // P_j.V_j; S_{j+2} may still run
    }
    else
        wgmma_wait<0>();
    accumulate_tile(st, c0, c1);
    if (blk.lane == 0) mbar_arrive(blk.empty + 8 * (j % SAGE90_STAGES));  // one arrival per warp
    issue_pv8(st, pn, blk.dv + s1 * (SAGE90_VT_STAGE >> 4));
}
#endif

#if SAGE90_SERIAL
// The serial schedule (SAGE90_SERIAL=1): no wgmma overlaps this warpgroup's own work, so the scores and P.V's
// accumulator are never live together and share registers (about 108 a thread with everything else), and a fourth
// consumer warpgroup hides each one's waits instead. Step j: P_j.V_j, T_j into O, then tile j + 1's scores
// and softmax (LAST: tile j + 1 is the last tile, which may have masked keys). The same operations per tile as above.
// The two-level accumulation from the shared registers: O = O * exp2(m_old - m) + T (T's float bits in s).
__device__ __forceinline__ void accumulate_from_s(Sage90State& st) { accumulate_bits(st, st.s, st.c0, st.c1); }

// T_j = P_j.V_j into s's registers.
__device__ __forceinline__ void issue_pv8_into_s(Sage90State& st, u64 dv)
{
#if SAGE_TC_ROWSUM
    issue_pv8_into(st.s, st.p, dv);
#else
    issue_k64<int, SAGE90_PV_REGS, wgmma_e4m3_m64n64k32_bits>(st.s, st.p, dv);
#endif
}

template <bool LAST>
__device__ __forceinline__ void sage90_serial_step(const Sage90Block& blk, Sage90State& st, int j)
{
    const int sj = j % SAGE90_STAGES, t1 = j + 1, s1 = t1 % SAGE90_STAGES;
    issue_pv8_into_s(st, blk.dv + sj * (SAGE90_VT_STAGE >> 4));
    const u32 ready = mbar_test(blk.full + 8 * s1, (t1 / SAGE90_STAGES) & 1);
    wgmma_wait<0>();
    accumulate_from_s(st);
    if (blk.lane == 0) mbar_arrive(blk.empty + 8 * sj);  // one arrival per warp
    if (!ready) mbar_wait(blk.full + 8 * s1, (t1 / SAGE90_STAGES) & 1);
    issue_scores(st, blk, blk.dk + s1 * (SAGE90_K_STAGE >> 4));
    wgmma_wait<0>();
    fence_regs(st.s, SAGE90_S_REGS);
    const u32 ks = blk.kscale + s1 * SAGE90_KS_STAGE;
    if (LAST) softmax8_at(st, ks, t1 * SAGE90_KEYS, blk.nk, blk.lane);
    else softmax8<false>(st, ks, t1 * SAGE90_KEYS, blk.nk, blk.lane);
    pack_p8(st, st.p);
}
#endif

// O * V's channel scale / l in the output's dtype (l sums P * 448, or its codes); rows `row`, `row + 8`. The tensor
// cores' sums are whole rows; float sums are a thread's share, summed over the quad first.
template <typename T>
__device__ __forceinline__ void store_o8(const Sage8Args& s, const Sage90State& st, i64 bh, i64 b, i64 h, int row, int lane)
{
    const AttentionArgs& a = s.a;
#if SAGE_TC_ROWSUM
    const float l0 = st.o[32], l1 = st.o[33];
#else
    float l0 = st.l0, l1 = st.l1;
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
#endif
    const float inv0 = 1.0f / l0, inv1 = 1.0f / l1;
    const float* vsc = s.vscale + bh * 64;
    T* y = (T*)a.y + b * a.ys[0] + h * a.ys[1];
#pragma unroll
    for (int c = 0; c < 8; ++c)
#pragma unroll
        for (int e = 0; e < 2; ++e)
        {
            const int col = 8 * c + 2 * (lane & 3) + e;
            const float scale = vsc[col];
            if (row < a.nq) y[(i64)row * a.ys[2] + col * a.ys[3]] = from_float<T>(st.o[4 * c + e] * scale * inv0);
            if (row + 8 < a.nq) y[(i64)(row + 8) * a.ys[2] + col * a.ys[3]] = from_float<T>(st.o[4 * c + 2 + e] * scale * inv1);
        }
}

template <typename T>
__device__ void sage8_attention_sm90_impl(const Sage90Args& ta)
{
    const Sage8Args& sa = ta.s;
    const AttentionArgs& a = sa.a;
    constexpr int NW = SAGE90_NW, S = SAGE90_STAGES;
    extern __shared__ unsigned char smem_raw[];
    const u32 k_smem = (smem_addr(smem_raw) + 1023) & ~1023u;
    const u32 v_smem = k_smem + S * SAGE90_K_STAGE, ks_smem = v_smem + S * SAGE90_VT_STAGE;
    const u32 full = ks_smem + S * SAGE90_KS_STAGE, empty = full + 8 * S;
    const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
    const int bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
    const int q0 = blockIdx.x * SAGE90_ROWS, tiles = sa.nk_pad / SAGE90_KEYS;
    if (tid == 0)
    {
        for (int s = 0; s < S; ++s)
        {
            mbar_init(full + 8 * s, 1);
            mbar_init(empty + 8 * s, NW * 4);
        }
        mbar_init_fence();
    }
#if SAGE_TC_ROWSUM
    // Rows 64..71 of every V^T tile: E4M3 ones (0x38; any swizzle of them is the same), written once (TMA writes only
    // the first 4096 bytes of a tile). wgmma reads shared memory through the async proxy: the fence orders these
    // generic-proxy stores before it, the block barrier before any consumer's first P.V. 16-byte stores with no
    // branch, one per thread and round (threads past the S * KH * 32 stores repeat one; two rounds with two consumer
    // warpgroups): a runtime loop or a guarded store here made ptxas serialise every wgmma (C7511).
    constexpr int ONES = SAGE90_STAGES * SAGE90_KH * 32;
    static_assert((ONES & (ONES - 1)) == 0, "the ones' stores are indexed modulo their count");
#pragma unroll
    for (int round = 0; round < (ONES + SAGE90_THREADS - 1) / SAGE90_THREADS; ++round)
    {
        const int i = (tid + round * SAGE90_THREADS) & (ONES - 1);
        asm volatile("st.shared.v2.u64 [%0], {%1, %1};" ::"r"(v_smem + (i >> 5) * SAGE90_VT_TILE + SAGE90_TILE + (i & 31) * 16),
                     "l"(0x3838383838383838ull) : "memory");
    }
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
    __syncthreads();

    if (wg == NW)
    {
        setmaxnreg_dec<SAGE90_PRODUCER_REGS>();
        // The producer: one thread issues every copy. A stage is refilled once all consumer warps released it.
        if (tid == NW * 128)
        {
            const float* kscale = sa.kscale + (i64)bh * sa.nk_pad;
            for (int t = 0; t < tiles; ++t)
            {
                const int s = t % S;
                if (t >= S) mbar_wait(empty + 8 * s, ((t / S) + 1) & 1);
                mbar_expect_tx(full + 8 * s, SAGE90_KH * (2 * SAGE90_TILE + SAGE90_KSCALE));
#pragma unroll
                for (int h = 0; h < SAGE90_KH; ++h)
                {
                    const int key = t * SAGE90_KEYS + 64 * h;
                    tma_load_3d(k_smem + s * SAGE90_K_STAGE + h * SAGE90_TILE, &ta.k8, full + 8 * s, 0, key, bh);
                    tma_load_3d(v_smem + s * SAGE90_VT_STAGE + h * SAGE90_VT_TILE, &ta.vt8, full + 8 * s, key, 0, bh);
                }
                bulk_load(ks_smem + s * SAGE90_KS_STAGE, kscale + t * SAGE90_KEYS, SAGE90_KS_STAGE, full + 8 * s);
            }
        }
        return;
    }

    setmaxnreg_inc<SAGE90_CONSUMER_REGS>();
    Sage90Block blk;
    blk.full = full;
    blk.empty = empty;
    blk.kscale = ks_smem;
    blk.dk = smem_desc_sw64(k_smem);
    blk.dv = smem_desc_sw64(v_smem);
    blk.nk = a.nk;
    blk.lane = lane;
    blk.wg = wg;
#if SAGE90_PINGPONG
    // The first turn is warpgroup 0's: the last one passes it before any softmax.
    if (wg == NW - 1) asm volatile("bar.arrive 1, 256;");
#endif

    Sage90State st;
    // Q's A fragments straight from the pre-pass's rows (rows < nq_pad: the host pads it to whole blocks).
    const int row = q0 + wg * 64 + warp * 16 + (lane >> 2);
    const signed char* q8 = sa.q8 + ((i64)bh * sa.nq_pad + row) * 64 + 4 * (lane & 3);
#pragma unroll
    for (int u = 0; u < 2; ++u)
#pragma unroll
        for (int r = 0; r < 4; ++r) st.q[4 * u + r] = *(const u32*)(q8 + (r & 1) * 8 * 64 + u * 32 + (r >> 1) * 16);
    st.qs0 = sa.qscale[(i64)bh * sa.nq_pad + row];
    st.qs1 = sa.qscale[(i64)bh * sa.nq_pad + row + 8];
#if SAGE90_LIN_BOUND
    {
        // sum |Q8| of rows r and r + 8 (fragments 4u + r: row r + 8 for odd r), summed over the quad.
        u32 a0 = 0, a1 = 0;
#pragma unroll
        for (int i = 0; i < 8; ++i)
        {
            const u32 b = __vabsdiffs4(st.q[i], 0u);
            if (i & 1) a1 = __dp4a(b, 0x01010101u, a1);
            else a0 = __dp4a(b, 0x01010101u, a0);
        }
        a0 += __shfl_xor_sync(0xffffffffu, a0, 1);
        a0 += __shfl_xor_sync(0xffffffffu, a0, 2);
        a1 += __shfl_xor_sync(0xffffffffu, a1, 1);
        a1 += __shfl_xor_sync(0xffffffffu, a1, 2);
        st.bq = fmaxf(st.qs0 * (float)(127 * a0 + 1), st.qs1 * (float)(127 * a1 + 1));
    }
#endif
#pragma unroll
    for (int i = 0; i < 32 + 2 * SAGE_TC_ROWSUM; ++i) st.o[i] = 0.0f;
    st.m0 = st.m1 = -F_INF;
#if !SAGE_TC_ROWSUM
    st.l0 = st.l1 = 0.0f;
#endif

    // Tile 0's scores and P; then each step issues the next tile's scores with this tile's P.V.
    mbar_wait(full, 0);
    issue_scores(st, blk, blk.dk);
    wgmma_wait<0>();
    fence_regs(st.s, SAGE90_S_REGS);
    softmax8_at(st, blk.kscale, 0, a.nk, lane);
    pack_p8(st, st.p);
#if SAGE90_SERIAL
    for (int j = 0; j + 1 < tiles; ++j)
    {
        if (j + 2 < tiles) sage90_serial_step<false>(blk, st, j);
        else sage90_serial_step<true>(blk, st, j);
    }
    issue_pv8_into_s(st, blk.dv + ((tiles - 1) % S) * (SAGE90_VT_STAGE >> 4));
    wgmma_wait<0>();
    accumulate_from_s(st);
    if (lane == 0) mbar_arrive(blk.empty + 8 * ((tiles - 1) % S));
#if SAGE90_PINGPONG
    // Every warpgroup passed its turn once per tile (the first tile's in the prologue); the last one's final pass is
    // warpgroup 0's to take, so that no arrival is left pending on a barrier when the block ends.
    if (wg == 0) asm volatile("bar.sync 1, 256;");
#endif
#else
    if (tiles == 1)
    {
        issue_pv8(st, st.p, blk.dv);
    }
    else
    {
        mbar_wait(full + 8 * (1 % S), (1 / S) & 1);
        issue_qk8(st, blk.dk + (1 % S) * (SAGE90_K_STAGE >> 4));
#if SAGE90_EARLY_KS
        st.ks = load_kscales(blk.kscale + (1 % S) * SAGE90_KS_STAGE, lane);
#endif
        issue_pv8(st, st.p, blk.dv);
        // Steps 0 .. tiles - 3 issue the scores two tiles ahead, in pairs (P alternates between the two sets);
        // step tiles - 2 does not, and its softmax is the last tile's.
        int j = 0;
        for (; j + 4 <= tiles; j += 2)
        {
            sage90_step<1, true>(blk, st, j);
            sage90_step<0, true>(blk, st, j + 1);
        }
        if (j + 3 == tiles)
        {
            sage90_step<1, true>(blk, st, j);
            sage90_step<0, false>(blk, st, j + 1);
        }
        else
            sage90_step<1, false>(blk, st, j);
    }
    // The last tile's P.V.
    wgmma_wait<0>();
    accumulate_tile(st, st.c0, st.c1);
    if (lane == 0) mbar_arrive(blk.empty + 8 * ((tiles - 1) % S));
#endif
    store_o8<T>(sa, st, bh, b, h, row, lane);
}

extern "C" __global__ void __launch_bounds__(SAGE90_THREADS, 1)
    sage8_attention_sm90_f16(const __grid_constant__ Sage90Args a) { sage8_attention_sm90_impl<f16>(a); }
extern "C" __global__ void __launch_bounds__(SAGE90_THREADS, 1)
    sage8_attention_sm90_bf16(const __grid_constant__ Sage90Args a) { sage8_attention_sm90_impl<bf16>(a); }
