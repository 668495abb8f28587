// Row kernels (one block per row of a contiguous [rows, cols] input): reductions, softmax, layer and RMS norm;
// and group norm in three steps (partial statistics, finalisation, normalise + affine + activation).
// Statistics accumulate in double and follow the CPU backend's formulas, so float32 results agree to rounding.

struct RowArgs
{
    const void* x;
    void* y;
    const float* gamma;  // [cols] or null
    const float* beta;   // [cols] or null
    i64 rows;
    int cols;
    int op;  // ReduceOp for reduce_rows
    float eps;
    int pad;
};
static_assert(sizeof(RowArgs) == 56, "RowArgs must match KernelArgs.cs");

template <typename TI, typename TO>
__device__ void reduce_impl(const RowArgs& a)
{
    __shared__ double dscratch[32];
    __shared__ float fscratch[32];
    const TI* x = (const TI*)a.x + (i64)blockIdx.x * a.cols;
    TO* y = (TO*)a.y;
    float result;
    if (a.op <= 1)  // Sum, Mean
    {
        double s = 0;
        for (int j = threadIdx.x; j < a.cols; j += blockDim.x) s += to_float(x[j]);
        s = block_reduce<SumOp<double>>(s, dscratch);
        result = a.op == 0 ? (float)s : (float)s / a.cols;
    }
    else if (a.op == 2)
    {
        float m = -F_INF;
        for (int j = threadIdx.x; j < a.cols; j += blockDim.x) m = MaxOp<float>::apply(m, to_float(x[j]));
        result = block_reduce<MaxOp<float>>(m, fscratch);
    }
    else
    {
        float m = F_INF;
        for (int j = threadIdx.x; j < a.cols; j += blockDim.x) m = MinOp<float>::apply(m, to_float(x[j]));
        result = block_reduce<MinOp<float>>(m, fscratch);
    }
    if (threadIdx.x == 0) y[blockIdx.x] = from_float<TO>(result);
}

template <typename TI, typename TO>
__device__ void softmax_impl(const RowArgs& a)
{
    __shared__ double dscratch[32];
    __shared__ float fscratch[32];
    const TI* x = (const TI*)a.x + (i64)blockIdx.x * a.cols;
    TO* y = (TO*)a.y + (i64)blockIdx.x * a.cols;
    float m = -F_INF;
    for (int j = threadIdx.x; j < a.cols; j += blockDim.x) m = MaxOp<float>::apply(m, to_float(x[j]));
    m = block_reduce<MaxOp<float>>(m, fscratch);
    double s = 0;
    for (int j = threadIdx.x; j < a.cols; j += blockDim.x) s += expf(to_float(x[j]) - m);
    float sum = (float)block_reduce<SumOp<double>>(s, dscratch);
    for (int j = threadIdx.x; j < a.cols; j += blockDim.x) y[j] = from_float<TO>(expf(to_float(x[j]) - m) / sum);
}

template <typename TI, typename TO>
__device__ void layer_norm_impl(const RowArgs& a)
{
    __shared__ double dscratch[32];
    const TI* x = (const TI*)a.x + (i64)blockIdx.x * a.cols;
    TO* y = (TO*)a.y + (i64)blockIdx.x * a.cols;
    double s = 0;
    for (int j = threadIdx.x; j < a.cols; j += blockDim.x) s += to_float(x[j]);
    double mean = block_reduce<SumOp<double>>(s, dscratch) / a.cols;
    double q = 0;
    for (int j = threadIdx.x; j < a.cols; j += blockDim.x)
    {
        double d = to_float(x[j]) - mean;
        q += d * d;
    }
    double variance = block_reduce<SumOp<double>>(q, dscratch) / a.cols;
    float inv = (float)(1.0 / sqrt(variance + (double)a.eps));
    float m = (float)mean;
    for (int j = threadIdx.x; j < a.cols; j += blockDim.x)
    {
        // As the CPU backend: (x − mean)·inv rounded once, then γ·n + β fused.
        float v = __fmul_rn(to_float(x[j]) - m, inv);
        if (a.gamma && a.beta) v = __fmaf_rn(v, a.gamma[j], a.beta[j]);
        else if (a.gamma) v = __fmul_rn(v, a.gamma[j]);
        else if (a.beta) v = __fadd_rn(v, a.beta[j]);
        y[j] = from_float<TO>(v);
    }
}

template <typename TI, typename TO>
__device__ void rms_norm_impl(const RowArgs& a)
{
    __shared__ double dscratch[32];
    const TI* x = (const TI*)a.x + (i64)blockIdx.x * a.cols;
    TO* y = (TO*)a.y + (i64)blockIdx.x * a.cols;
    double q = 0;
    for (int j = threadIdx.x; j < a.cols; j += blockDim.x)
    {
        double v = to_float(x[j]);
        q += v * v;
    }
    q = block_reduce<SumOp<double>>(q, dscratch);
    float inv = (float)(1.0 / sqrt(q / a.cols + (double)a.eps));
    for (int j = threadIdx.x; j < a.cols; j += blockDim.x)
    {
        float v = __fmul_rn(to_float(x[j]), inv);
        if (a.gamma) v = __fmul_rn(v, a.gamma[j]);
        y[j] = from_float<TO>(v);
    }
}

struct GroupStatsArgs
{
    const void* x;     // contiguous [N, C, S]: group ng is the range [ng * group_len, (ng + 1) * group_len)
    double* partial;   // [N * G, splits, 2]: sum and sum of squares of each split
    i64 group_len;
    int splits;
    int pad;
};
static_assert(sizeof(GroupStatsArgs) == 32, "GroupStatsArgs must match KernelArgs.cs");

template <typename T>
__device__ void group_stats_impl(const GroupStatsArgs& a)
{
    __shared__ double dscratch[32];
    const i64 ng = blockIdx.y;
    const T* x = (const T*)a.x + ng * a.group_len;
    i64 chunk = (a.group_len + a.splits - 1) / a.splits;
    // pad = 1: the group length is a multiple of 8 and x is 16-byte aligned; chunks are rounded up to whole vectors.
    if (a.pad == 1) chunk = (chunk + 7) / 8 * 8;
    i64 start = (i64)blockIdx.x * chunk;
    i64 end = start + chunk < a.group_len ? start + chunk : a.group_len;
    double s = 0, q = 0;
    if (a.pad == 1)
    {
        for (i64 i = start + threadIdx.x * 8; i < end; i += blockDim.x * 8)
        {
            float v[8];
            load8(x + i, v);
#pragma unroll
            for (int e = 0; e < 8; ++e)
            {
                s += v[e];
                q += (double)v[e] * v[e];
            }
        }
    }
    else
    {
        for (i64 i = start + threadIdx.x; i < end; i += blockDim.x)
        {
            double v = to_float(x[i]);
            s += v;
            q += v * v;
        }
    }
    s = block_reduce<SumOp<double>>(s, dscratch);
    q = block_reduce<SumOp<double>>(q, dscratch);
    if (threadIdx.x == 0)
    {
        double* p = a.partial + (ng * a.splits + blockIdx.x) * 2;
        p[0] = s;
        p[1] = q;
    }
}

struct GroupFinalizeArgs
{
    const double* partial;
    float* stats;  // [N * G, 2]: mean, 1 / sqrt(variance + eps)
    i64 group_len;
    int groups_total;
    int splits;
    float eps;
    int pad;
};
static_assert(sizeof(GroupFinalizeArgs) == 40, "GroupFinalizeArgs must match KernelArgs.cs");

extern "C" __global__ void group_norm_finalize(GroupFinalizeArgs a)
{
    int ng = blockIdx.x * blockDim.x + threadIdx.x;
    if (ng >= a.groups_total) return;
    double s = 0, q = 0;
    for (int i = 0; i < a.splits; ++i)
    {
        s += a.partial[((i64)ng * a.splits + i) * 2];
        q += a.partial[((i64)ng * a.splits + i) * 2 + 1];
    }
    double mean = s / a.group_len;
    double variance = q / a.group_len - mean * mean;
    if (variance < 0) variance = 0;
    a.stats[ng * 2] = (float)mean;
    a.stats[ng * 2 + 1] = (float)(1.0 / sqrt(variance + (double)a.eps));
}

struct GroupApplyArgs
{
    const void* x;
    void* y;
    const float* stats;
    const float* gamma;  // [C] or null
    const float* beta;   // [C] or null
    i64 count;
    i64 spatial;
    int channels;
    int groups;
    int act;
    int pad;
};
static_assert(sizeof(GroupApplyArgs) == 72, "GroupApplyArgs must match KernelArgs.cs");

template <typename TI, typename TO>
__device__ void group_apply_impl(const GroupApplyArgs& a)
{
    const TI* x = (const TI*)a.x;
    TO* y = (TO*)a.y;
    int per_group = a.channels / a.groups;
    // pad = 1: spatial is a multiple of 8, the count fits 31 bits and x, y are 16-byte aligned: eight elements (one
    // channel) per access with 32-bit index math.
    if (a.pad == 1)
    {
        u32 vectors = (u32)(a.count / 8), spatial8 = (u32)(a.spatial / 8), channels = (u32)a.channels;
        for (u32 i = (u32)global_index(); i < vectors; i += (u32)grid_stride())
        {
            u32 nc = i / spatial8;
            u32 c = nc % channels;
            u32 ng = (nc / channels) * (u32)a.groups + c / (u32)per_group;
            float mean = a.stats[ng * 2], inv = a.stats[ng * 2 + 1];
            float scale = a.gamma ? __fmul_rn(inv, a.gamma[c]) : inv;
            float shift = a.beta ? a.beta[c] : 0.0f;
            float v[8];
            load8(x + (i64)i * 8, v);
#pragma unroll
            for (int e = 0; e < 8; ++e) v[e] = activate(a.act, __fmaf_rn(v[e] - mean, scale, shift));
            store8(y + (i64)i * 8, v);
        }
        return;
    }
    for (i64 i = global_index(); i < a.count; i += grid_stride())
    {
        i64 nc = i / a.spatial;
        int c = (int)(nc % a.channels);
        i64 n = nc / a.channels;
        i64 ng = n * a.groups + c / per_group;
        float mean = a.stats[ng * 2], inv = a.stats[ng * 2 + 1];
        // As the CPU backend: (x − mean)·(inv·γ) + β in one fused multiply-add.
        float scale = a.gamma ? __fmul_rn(inv, a.gamma[c]) : inv;
        float v = __fmaf_rn(to_float(x[i]) - mean, scale, a.beta ? a.beta[c] : 0.0f);
        y[i] = from_float<TO>(activate(a.act, v));
    }
}

#define ROWS(NI, TI, NO, TO) \
    extern "C" __global__ void reduce_##NI##_##NO(RowArgs a) { reduce_impl<TI, TO>(a); } \
    extern "C" __global__ void softmax_##NI##_##NO(RowArgs a) { softmax_impl<TI, TO>(a); } \
    extern "C" __global__ void layer_norm_##NI##_##NO(RowArgs a) { layer_norm_impl<TI, TO>(a); } \
    extern "C" __global__ void rms_norm_##NI##_##NO(RowArgs a) { rms_norm_impl<TI, TO>(a); } \
    extern "C" __global__ void group_norm_apply_##NI##_##NO(GroupApplyArgs a) { group_apply_impl<TI, TO>(a); }
IO_TYPE_PAIRS(ROWS)

FLOAT_KERNELS(group_norm_stats, GroupStatsArgs, group_stats_impl)

// ln_rows_impl and LnRowsArgs (LayerNorm over rows held in registers, optionally modulated or rotated): common.cuh,
// where fp8.cu's quantizing form of it lives too.
#define LN_ROWS(N, T) \
    extern "C" __global__ void __launch_bounds__(256) ln_rows_##N##_v1(LnRowsArgs a) { ln_rows_impl<T, 1>(a); } \
    extern "C" __global__ void __launch_bounds__(256) ln_rows_##N##_v2(LnRowsArgs a) { ln_rows_impl<T, 2>(a); } \
    extern "C" __global__ void __launch_bounds__(256) ln_rows_##N##_v4(LnRowsArgs a) { ln_rows_impl<T, 4>(a); } \
    extern "C" __global__ void __launch_bounds__(256) ln_rows_##N##_v8(LnRowsArgs a) { ln_rows_impl<T, 8>(a); } \
    extern "C" __global__ void __launch_bounds__(256) ln_rows_##N##_v12(LnRowsArgs a) { ln_rows_impl<T, 12>(a); } \
    extern "C" __global__ void __launch_bounds__(256) ln_rows_##N##_v16(LnRowsArgs a) { ln_rows_impl<T, 16>(a); }
LN_ROWS(f32, float)
LN_ROWS(f16, f16)
LN_ROWS(bf16, bf16)

// The per-head q/k norm with the rotary embedding fused (head dims 16 to 128: lanes and vectors as ln_rows picks).
#define LN_ROTARY_ROWS(N, T) \
    extern "C" __global__ void __launch_bounds__(256) ln_rotary_rows_##N##_v1(LnRowsArgs a) { ln_rows_impl<T, 1, LN_ROTARY>(a); } \
    extern "C" __global__ void __launch_bounds__(256) ln_rotary_rows_##N##_v2(LnRowsArgs a) { ln_rows_impl<T, 2, LN_ROTARY>(a); } \
    extern "C" __global__ void __launch_bounds__(256) ln_rotary_rows_##N##_v4(LnRowsArgs a) { ln_rows_impl<T, 4, LN_ROTARY>(a); }
LN_ROTARY_ROWS(f32, float)
LN_ROTARY_ROWS(f16, f16)
LN_ROTARY_ROWS(bf16, bf16)

// A VAE's spatial norm after the group statistics: y = act(((x − mean)·scale_c + beta_c)·m + b) where scale_c folds the
// group's 1/std and the channel's gamma (as group_apply_impl), and m, b are read from [N, C, T, h, w]
// modulation tensors at (n, c, t, row / fh, col / fw). Eight consecutive columns per thread (W a multiple of 8).
struct SpatialNormArgs
{
    const void* x;       // contiguous [N, C, T, H, W]
    void* y;             // contiguous, x's shape
    const float* stats;  // [N * G, 2]
    const float* gamma;  // [C] or null
    const float* beta;   // [C] or null
    const void* scale;   // contiguous [N, C, T, h, w], x's type
    const void* shift;
    i64 vectors;         // N·C·T·H·W / 8
    int channels;
    int groups;
    int frames;
    int height;
    int width;
    int zh;
    int zw;
    int fh;
    int fw;
    int act;
};
static_assert(sizeof(SpatialNormArgs) == 104, "SpatialNormArgs must match KernelArgs.cs");

template <typename T>
__device__ void spatial_norm_impl(const SpatialNormArgs& a)
{
    const T* x = (const T*)a.x;
    T* y = (T*)a.y;
    const T* sc = (const T*)a.scale;
    const T* sh = (const T*)a.shift;
    const int wv = a.width / 8, per_group = a.channels / a.groups;
    for (i64 v = global_index(); v < a.vectors; v += grid_stride())
    {
        i64 row = v / wv;
        int w0 = (int)(v - row * wv) * 8;
        i64 nct = row / a.height;
        int h = (int)(row - nct * a.height);
        i64 nc = nct / a.frames;
        int c = (int)(nc % a.channels);
        i64 ng = (nc / a.channels) * a.groups + c / per_group;
        float mean = a.stats[ng * 2], inv = a.stats[ng * 2 + 1];
        float scale = a.gamma ? __fmul_rn(inv, a.gamma[c]) : inv;
        float shift = a.beta ? a.beta[c] : 0.0f;
        i64 m = (nct * a.zh + h / a.fh) * a.zw;
        float vals[8];
        load8(x + v * 8, vals);
#pragma unroll
        for (int e = 0; e < 8; ++e)
        {
            int col = (w0 + e) / a.fw;
            float n = __fmaf_rn(vals[e] - mean, scale, shift);
            n = __fadd_rn(__fmul_rn(n, to_float(sc[m + col])), to_float(sh[m + col]));
            vals[e] = activate(a.act, n);
        }
        store8(y + v * 8, vals);
    }
}

FLOAT_KERNELS(spatial_norm, SpatialNormArgs, spatial_norm_impl)
