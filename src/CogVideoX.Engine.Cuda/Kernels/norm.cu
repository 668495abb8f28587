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
        float v = __fmul_rn(to_float(x[j]) - m, inv);
        if (a.gamma) v = __fmul_rn(v, a.gamma[j]);
        if (a.beta) v = __fadd_rn(v, a.beta[j]);
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
    i64 start = (i64)blockIdx.x * chunk;
    i64 end = start + chunk < a.group_len ? start + chunk : a.group_len;
    double s = 0, q = 0;
    for (i64 i = start + threadIdx.x; i < end; i += blockDim.x)
    {
        double v = to_float(x[i]);
        s += v;
        q += v * v;
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
    for (i64 i = global_index(); i < a.count; i += grid_stride())
    {
        i64 nc = i / a.spatial;
        int c = (int)(nc % a.channels);
        i64 n = nc / a.channels;
        i64 ng = n * a.groups + c / per_group;
        float mean = a.stats[ng * 2], inv = a.stats[ng * 2 + 1];
        float scale = a.gamma ? __fmul_rn(inv, a.gamma[c]) : inv;
        float shift = __fsub_rn(a.beta ? a.beta[c] : 0.0f, __fmul_rn(mean, scale));
        float v = __fadd_rn(__fmul_rn(to_float(x[i]), scale), shift);
        y[i] = from_float<TO>(activate(a.act, v));
    }
}

#define ROWS(NI, TI, NO, TO) \
    extern "C" __global__ void reduce_##NI##_##NO(RowArgs a) { reduce_impl<TI, TO>(a); } \
    extern "C" __global__ void softmax_##NI##_##NO(RowArgs a) { softmax_impl<TI, TO>(a); } \
    extern "C" __global__ void layer_norm_##NI##_##NO(RowArgs a) { layer_norm_impl<TI, TO>(a); } \
    extern "C" __global__ void rms_norm_##NI##_##NO(RowArgs a) { rms_norm_impl<TI, TO>(a); } \
    extern "C" __global__ void group_norm_apply_##NI##_##NO(GroupApplyArgs a) { group_apply_impl<TI, TO>(a); }
ROWS(f32, float, f32, float)
ROWS(f16, f16, f16, f16)
ROWS(bf16, bf16, bf16, bf16)
ROWS(f16, f16, f32, float)
ROWS(bf16, bf16, f32, float)

extern "C" __global__ void group_norm_stats_f32(GroupStatsArgs a) { group_stats_impl<float>(a); }
extern "C" __global__ void group_norm_stats_f16(GroupStatsArgs a) { group_stats_impl<f16>(a); }
extern "C" __global__ void group_norm_stats_bf16(GroupStatsArgs a) { group_stats_impl<bf16>(a); }
