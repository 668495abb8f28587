// FP8 linears (--linear fp8): per-row quantization to E4M3 and the dequantizing epilogue around a cuBLASLt FP8 GEMM.
// Compiled lazily, on the first FP8 linear: a failure here never touches another module. The conversion is written out
// (no cuda_fp8.h) to match the CPU reference (E4M3 in C#) bit for bit (common.cuh).

// u8, e4m3_from_float and e4m3_row_scale: common.cuh (ln_rows_impl's quantizing form uses them too).

// codes[r, c] = E4M3(x[r, c] / scale[r]) with scale[r] = amax of the row / 448. One block per row (grid-stride over rows).
struct Fp8QuantizeArgs
{
    const void* x;   // [rows, cols], row stride xStride, unit column stride
    u8* codes;       // [rows, cols] contiguous
    float* scales;   // [rows]
    i64 rows;
    i64 cols;
    i64 xStride;
};
static_assert(sizeof(Fp8QuantizeArgs) == 48, "Fp8QuantizeArgs must match KernelArgs.cs");

template <typename T>
__device__ void fp8_quantize_rows_impl(const Fp8QuantizeArgs& a)
{
    __shared__ float scratch[32];
    const T* x = (const T*)a.x;
    for (i64 r = blockIdx.x; r < a.rows; r += gridDim.x)
    {
        const T* row = x + r * a.xStride;
        float amax = 0.0f;
        for (i64 c = threadIdx.x; c < a.cols; c += blockDim.x) amax = MaxOp<float>::apply(amax, fabsf(to_float(row[c])));
        amax = block_reduce<MaxOp<float>>(amax, scratch);
        float scale = e4m3_row_scale(amax);
        if (threadIdx.x == 0) a.scales[r] = scale;
        u8* out = a.codes + r * a.cols;
        for (i64 c = threadIdx.x; c < a.cols; c += blockDim.x) out[c] = e4m3_from_float(__fdiv_rn(to_float(row[c]), scale));
    }
}

FLOAT_KERNELS(fp8_quantize_rows, Fp8QuantizeArgs, fp8_quantize_rows_impl)

// The same, eight elements per access: cols and xStride multiples of 8, x 16-byte aligned (the host checks). The
// scalar form above moved 2 bytes in and 1 out per thread and access, and ran at ~0.5 TB/s: 13 % of a 2b FP8 step.
template <typename T>
__device__ void fp8_quantize_rows8_impl(const Fp8QuantizeArgs& a)
{
    __shared__ float scratch[32];
    const i64 vecs = a.cols / 8;
    for (i64 r = blockIdx.x; r < a.rows; r += gridDim.x)
    {
        const T* row = (const T*)a.x + r * a.xStride;
        float amax = 0.0f;
        for (i64 v = threadIdx.x; v < vecs; v += blockDim.x)
        {
            float f[8];
            load8(row + v * 8, f);
#pragma unroll
            for (int e = 0; e < 8; ++e) amax = MaxOp<float>::apply(amax, fabsf(f[e]));
        }
        amax = block_reduce<MaxOp<float>>(amax, scratch);
        const float scale = e4m3_row_scale(amax);
        if (threadIdx.x == 0) a.scales[r] = scale;
        u8* out = a.codes + r * a.cols;
        for (i64 v = threadIdx.x; v < vecs; v += blockDim.x)
        {
            float f[8];
            load8(row + v * 8, f);  // the second read of the row comes from L1/L2
            u32 w[2] = {0u, 0u};
#pragma unroll
            for (int e = 0; e < 8; ++e) w[e >> 2] |= (u32)e4m3_from_float(__fdiv_rn(f[e], scale)) << (8 * (e & 3));
            *(uint2*)(out + v * 8) = make_uint2(w[0], w[1]);
        }
    }
}

FLOAT_KERNELS(fp8_quantize_rows8, Fp8QuantizeArgs, fp8_quantize_rows8_impl)

// The same codes and scales with each row read from memory once and held in registers (rows8 above reads it twice,
// the second time mostly from L2, and divides with div.rn's slow-path call): every 16-byte load of a thread issued
// before the first is used, the amax an integer maximum of |bits| (abs_max_bits), the division and the scale
// call-free (common.cuh: RowDivisor, e4m3_row_scale), which changes no code. Rows of x 16-byte aligned with cols and
// xStride multiples of 8; codes 8-byte aligned (the host checks and falls back to rows8).
//   fp8_quantize_lanes: `lanes` threads a row (ln_rows' rule: up to 32, four vectors of 8 each where the row allows),
//     VPL vectors a thread: rows up to 4,096 columns (2b's 1,920, 5b's 3,072: the attention output into to_out).
//   fp8_quantize_block: one block a row, VPL vectors a thread: up to 256 · 16 · 8 = 32,768 columns (the GELU output
//     into ff.net.2: 7,680 and 12,288).
struct Fp8RowsArgs
{
    const void* x;   // [rows, cols], row stride xStride, unit column stride
    u8* codes;       // [rows, cols] contiguous
    float* scales;   // [rows]
    i64 rows;
    i64 xStride;
    int cols;
    int lanes;       // fp8_quantize_lanes: threads a row (a power of two, at most 32)
};
static_assert(sizeof(Fp8RowsArgs) == 48, "Fp8RowsArgs must match KernelArgs.cs");

// A thread's vectors of a row (vector first + j·step), all loads in flight before any is used; returns their amax bits.
template <typename T, int VPL>
__device__ __forceinline__ u32 load_row(const T* row, int first, int step, int vecs, Pack8<T>* v)
{
#pragma unroll
    for (int j = 0; j < VPL; ++j)
    {
        int c = first + j * step;
        if (c < vecs) load_pack(row + (i64)c * 8, v[j]);
    }
    u32 m = 0;
#pragma unroll
    for (int j = 0; j < VPL; ++j)
        if (first + j * step < vecs) m = abs_max_bits(v[j], m);
    return m;
}

template <typename T, int VPL>
__device__ void fp8_quantize_lanes_impl(const Fp8RowsArgs& a)
{
    const int lane = threadIdx.x & 31, lanes = a.lanes, l = lane & (lanes - 1);
    const i64 warp = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const i64 row = warp * (32 / lanes) + lane / lanes;
    const bool valid = row < a.rows;
    const int vecs = a.cols >> 3;
    Pack8<T> v[VPL];
    u32 m = valid ? load_row<T, VPL>((const T*)a.x + row * a.xStride, l, lanes, vecs, v) : 0u;
    // Every lane of the warp shuffles, rows past the end included.
    for (int o = lanes >> 1; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (!valid) return;
    const float scale = e4m3_row_scale(abs_bits_to_float(m, (T*)0));
    if (l == 0) a.scales[row] = scale;
    store_codes<T, VPL>(a.codes + row * a.cols, l, lanes, vecs, v, row_divisor(scale));
}

template <typename T, int VPL>
__device__ void fp8_quantize_block_impl(const Fp8RowsArgs& a)
{
    __shared__ u32 scratch[32];
    const i64 row = blockIdx.x;
    const int vecs = a.cols >> 3;
    Pack8<T> v[VPL];
    u32 m = load_row<T, VPL>((const T*)a.x + row * a.xStride, threadIdx.x, blockDim.x, vecs, v);
    m = block_reduce<MaxOp<u32>>(m, scratch);
    const float scale = e4m3_row_scale(abs_bits_to_float(m, (T*)0));
    if (threadIdx.x == 0) a.scales[row] = scale;
    store_codes<T, VPL>(a.codes + row * a.cols, threadIdx.x, blockDim.x, vecs, v, row_divisor(scale));
}

#define FP8_QUANTIZE_REG(N, T) \
    extern "C" __global__ void __launch_bounds__(256) fp8_quantize_lanes_##N##_v1(Fp8RowsArgs a) { fp8_quantize_lanes_impl<T, 1>(a); } \
    extern "C" __global__ void __launch_bounds__(256) fp8_quantize_lanes_##N##_v2(Fp8RowsArgs a) { fp8_quantize_lanes_impl<T, 2>(a); } \
    extern "C" __global__ void __launch_bounds__(256) fp8_quantize_lanes_##N##_v4(Fp8RowsArgs a) { fp8_quantize_lanes_impl<T, 4>(a); } \
    extern "C" __global__ void __launch_bounds__(256) fp8_quantize_lanes_##N##_v8(Fp8RowsArgs a) { fp8_quantize_lanes_impl<T, 8>(a); } \
    extern "C" __global__ void __launch_bounds__(256) fp8_quantize_lanes_##N##_v12(Fp8RowsArgs a) { fp8_quantize_lanes_impl<T, 12>(a); } \
    extern "C" __global__ void __launch_bounds__(256) fp8_quantize_lanes_##N##_v16(Fp8RowsArgs a) { fp8_quantize_lanes_impl<T, 16>(a); } \
    extern "C" __global__ void __launch_bounds__(256) fp8_quantize_block_##N##_v8(Fp8RowsArgs a) { fp8_quantize_block_impl<T, 8>(a); } \
    extern "C" __global__ void __launch_bounds__(256, 1) fp8_quantize_block_##N##_v12(Fp8RowsArgs a) { fp8_quantize_block_impl<T, 12>(a); } \
    extern "C" __global__ void __launch_bounds__(256, 1) fp8_quantize_block_##N##_v16(Fp8RowsArgs a) { fp8_quantize_block_impl<T, 16>(a); }
// (v12 and v16 serve rows past 16,384 columns, none in CogVideoX: held to one block an SM, so that ptxas's occupancy
// targets never trade a spill for them.)
FP8_QUANTIZE_REG(f32, float)
FP8_QUANTIZE_REG(f16, f16)
FP8_QUANTIZE_REG(bf16, bf16)

// The adaptive LayerNorm that feeds an FP8 linear (modulated_layer_norm_fp8): norm.cu's ln_rows arithmetic (common.cuh),
// each row rounded to T as that kernel stores it, then quantized as fp8_quantize_rows8 does, from registers: the
// codes and row scale are the two kernels' bit for bit, with neither the [rows, cols] T tensor written nor read back.
#define LN_FP8_ROWS(N, T, V, BOUNDS) \
    extern "C" __global__ void __launch_bounds__(BOUNDS) ln_fp8_rows_##N##_v##V(LnRowsArgs a) { ln_rows_impl<T, V, LN_FP8>(a); }
// The half types' layouts of the model widths (v4 to v16: 1,024 to 4,096 columns) let ptxas aim at two blocks an SM
// and more; the narrow ones (v1, v2) and float32 (no FP8 model runs float32 activations on a GPU) are held to one,
// so that its occupancy targets never trade a spill for them.
#define LN_FP8_ROWS_HALF(N, T) \
    LN_FP8_ROWS(N, T, 1, 256 COMMA 1) LN_FP8_ROWS(N, T, 2, 256 COMMA 1) LN_FP8_ROWS(N, T, 4, 256) \
    LN_FP8_ROWS(N, T, 8, 256) LN_FP8_ROWS(N, T, 12, 256) LN_FP8_ROWS(N, T, 16, 256)
#define COMMA ,
LN_FP8_ROWS_HALF(f16, f16)
LN_FP8_ROWS_HALF(bf16, bf16)
LN_FP8_ROWS(f32, float, 1, 256 COMMA 1)
LN_FP8_ROWS(f32, float, 2, 256 COMMA 1)
LN_FP8_ROWS(f32, float, 4, 256 COMMA 1)
LN_FP8_ROWS(f32, float, 8, 256 COMMA 1)
LN_FP8_ROWS(f32, float, 12, 256 COMMA 1)
LN_FP8_ROWS(f32, float, 16, 256 COMMA 1)

// y[r, c] = act(acc[r, c] · xScale[r] · wScale[c] + bias[c]), left to right in float, stored in T.
struct Fp8EpilogueArgs
{
    const float* acc;      // [rows, cols] contiguous (the FP8 GEMM's float output)
    const float* xScales;  // [rows]
    const float* wScales;  // [cols]
    const void* bias;      // [cols] of T, or null
    void* y;               // [rows, cols] contiguous
    i64 rows;
    i64 cols;
    int act;
    int pad;
};
static_assert(sizeof(Fp8EpilogueArgs) == 64, "Fp8EpilogueArgs must match KernelArgs.cs");

template <typename T>
__device__ void fp8_epilogue_impl(const Fp8EpilogueArgs& a)
{
    const T* bias = (const T*)a.bias;
    T* y = (T*)a.y;
    i64 count = a.rows * a.cols;
    for (i64 i = global_index(); i < count; i += grid_stride())
    {
        i64 r = i / a.cols, c = i - r * a.cols;
        float v = a.acc[i] * a.xScales[r] * a.wScales[c];
        if (bias) v = v + to_float(bias[c]);
        y[i] = from_float<T>(activate(a.act, v));
    }
}

FLOAT_KERNELS(fp8_epilogue, Fp8EpilogueArgs, fp8_epilogue_impl)

// The value of an E4M3 code (exact in float): subnormals m · 2^-9, normals (1 + m/8) · 2^(e-7), 0x7F/0xFF NaN.
__device__ __forceinline__ float e4m3_to_float(u8 code)
{
    u32 e = (code >> 3) & 0xFu, m = code & 7u;
    float v;
    if (e == 15u && m == 7u) v = __uint_as_float(0x7fc00000u);
    else if (e == 0u) v = (float)m * 0.001953125f;
    else v = __uint_as_float(((e + 120u) << 23) | (m << 20));
    return (code & 0x80u) ? -v : v;
}

// out[i] = the value of codes[i], as float32: the operands of the widened GEMM that computes, for shapes cuBLASLt's
// FP8 GEMM refuses, the same products (exact in float32) with float32 accumulation.
struct Fp8DecodeArgs
{
    const u8* codes;  // [count] contiguous
    float* out;       // [count] contiguous
    i64 count;
};
static_assert(sizeof(Fp8DecodeArgs) == 24, "Fp8DecodeArgs must match KernelArgs.cs");

extern "C" __global__ void fp8_decode_f32(Fp8DecodeArgs a)
{
    for (i64 i = global_index(); i < a.count; i += grid_stride()) a.out[i] = e4m3_to_float(a.codes[i]);
}

// y[r, c] = act(y[r, c] + bias[c]) in place, in float, stored in T: the bias and activation after a scaled FP8 GEMM
// whose cuBLASLt epilogue was reduced to DEFAULT (the scaled product already rounded to T once). One block per row
// (grid-stride over rows), eight columns per 16-byte access where the row width and pointers allow, else one by one.
struct Fp8BiasActArgs
{
    void* y;           // [rows, cols] contiguous
    const void* bias;  // [cols] of T, or null
    i64 rows;
    i64 cols;
    int act;
    int pad;
};
static_assert(sizeof(Fp8BiasActArgs) == 40, "Fp8BiasActArgs must match KernelArgs.cs");

template <typename T>
__device__ void fp8_bias_act_impl(const Fp8BiasActArgs& a)
{
    const T* bias = (const T*)a.bias;
    bool vec = a.cols % 8 == 0 && ((((u64)a.y) | ((u64)a.bias)) & 15u) == 0;
    for (i64 r = blockIdx.x; r < a.rows; r += gridDim.x)
    {
        T* row = (T*)a.y + r * a.cols;
        if (vec)
        {
            for (i64 c = (i64)threadIdx.x * 8; c < a.cols; c += (i64)blockDim.x * 8)
            {
                float v[8], b[8];
                load8(row + c, v);
                if (bias) load8(bias + c, b);
#pragma unroll
                for (int j = 0; j < 8; ++j) v[j] = activate(a.act, bias ? v[j] + b[j] : v[j]);
                store8(row + c, v);
            }
        }
        else
        {
            for (i64 c = threadIdx.x; c < a.cols; c += blockDim.x)
            {
                float v = to_float(row[c]);
                if (bias) v = v + to_float(bias[c]);
                row[c] = from_float<T>(activate(a.act, v));
            }
        }
    }
}

FLOAT_KERNELS(fp8_bias_act, Fp8BiasActArgs, fp8_bias_act_impl)
