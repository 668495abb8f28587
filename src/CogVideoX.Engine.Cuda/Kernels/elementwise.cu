// Element-wise kernels over strided operands: unary maps (with affine and clamp), binary ops with broadcasting
// (stride-0 dims), and the per-channel bias add that follows a convolution's GEMM.

// Codes 0..14 are UnaryOp's values in C#; the two below are this module's own.
#define MAP_AFFINE 100
#define MAP_CLAMP 101

struct MapArgs
{
    const void* x;
    void* y;
    int op;
    float p0;
    float p1;
    int pad;
    IndexMap3 map;  // stride[0] = x, stride[1] = y
};
static_assert(sizeof(MapArgs) == 304, "MapArgs must match KernelArgs.cs");

__device__ __forceinline__ float map_value(int op, float x, float p0, float p1)
{
    switch (op)
    {
        case 0: return -x;
        case 1: return expf(x);
        case 2: return logf(x);
        case 3: return sqrtf(x);
        case 4: return 1.0f / sqrtf(x);
        case 5: return sinf(x);
        case 6: return cosf(x);
        case 7: return tanhf(x);
        case 8: return sigmoid(x);
        case 9: return x * sigmoid(x);
        case 10: return gelu_tanh(x);
        case 11: return gelu_erf(x);
        case 12: return relu(x);
        case 13: return fabsf(x);
        case 14: return x * x;
        // Two roundings (multiply, then add), as the CPU backend computes it.
        case MAP_AFFINE: return __fadd_rn(__fmul_rn(x, p0), p1);
        case MAP_CLAMP: return fminf(fmaxf(x, p0), p1);
        default: return F_NAN;
    }
}

template <typename TI, typename TO>
__device__ void map_impl(const MapArgs& a)
{
    const TI* x = (const TI*)a.x;
    TO* y = (TO*)a.y;
    if (a.map.rank == 1 && a.map.stride[0][0] == 1 && a.map.stride[1][0] == 1)
    {
        for (i64 i = global_index(); i < a.map.count; i += grid_stride())
            y[i] = from_float<TO>(map_value(a.op, to_float(x[i]), a.p0, a.p1));
        return;
    }
    for (i64 i = global_index(); i < a.map.count; i += grid_stride())
    {
        i64 ox, oy, unused;
        offsets3(a.map, i, ox, oy, unused);
        y[oy] = from_float<TO>(map_value(a.op, to_float(x[ox]), a.p0, a.p1));
    }
}

struct BinaryArgs
{
    const void* a;
    const void* b;
    void* y;
    int op;
    int pad;
    IndexMap3 map;  // stride[0] = a, stride[1] = b, stride[2] = y
};
static_assert(sizeof(BinaryArgs) == 304, "BinaryArgs must match KernelArgs.cs");

__device__ __forceinline__ float binary_value(int op, float a, float b)
{
    switch (op)
    {
        case 0: return a + b;
        case 1: return a - b;
        case 2: return a * b;
        case 3: return a / b;
        case 4: return a != a || b != b ? F_NAN : fmaxf(a, b);
        case 5: return a != a || b != b ? F_NAN : fminf(a, b);
        default: return F_NAN;
    }
}

template <typename TI, typename TO>
__device__ void binary_impl(const BinaryArgs& args)
{
    const TI* a = (const TI*)args.a;
    const TI* b = (const TI*)args.b;
    TO* y = (TO*)args.y;
    for (i64 i = global_index(); i < args.map.count; i += grid_stride())
    {
        i64 oa, ob, oy;
        offsets3(args.map, i, oa, ob, oy);
        y[oy] = from_float<TO>(binary_value(args.op, to_float(a[oa]), to_float(b[ob])));
    }
}

struct ChannelBiasArgs
{
    void* y;            // contiguous [N, C, S]
    const float* bias;  // [C]
    i64 count;
    i64 spatial;
    int channels;
    int pad;
};
static_assert(sizeof(ChannelBiasArgs) == 40, "ChannelBiasArgs must match KernelArgs.cs");

template <typename T>
__device__ void channel_bias_impl(const ChannelBiasArgs& a)
{
    T* y = (T*)a.y;
    for (i64 i = global_index(); i < a.count; i += grid_stride())
    {
        int c = (int)((i / a.spatial) % a.channels);
        y[i] = from_float<T>(to_float(y[i]) + a.bias[c]);
    }
}

#define ELEMENTWISE(NI, TI, NO, TO) \
    extern "C" __global__ void map_##NI##_##NO(MapArgs a) { map_impl<TI, TO>(a); } \
    extern "C" __global__ void binary_##NI##_##NO(BinaryArgs a) { binary_impl<TI, TO>(a); }
ELEMENTWISE(f32, float, f32, float)
ELEMENTWISE(f16, f16, f16, f16)
ELEMENTWISE(bf16, bf16, bf16, bf16)
ELEMENTWISE(f16, f16, f32, float)
ELEMENTWISE(bf16, bf16, f32, float)

extern "C" __global__ void channel_bias_f32(ChannelBiasArgs a) { channel_bias_impl<float>(a); }
extern "C" __global__ void channel_bias_f16(ChannelBiasArgs a) { channel_bias_impl<f16>(a); }
extern "C" __global__ void channel_bias_bf16(ChannelBiasArgs a) { channel_bias_impl<bf16>(a); }
