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
    if (a.map.flags & MAP_VECTOR8)
    {
        for_each_vector8(a.map, [&](i64 ox, i64 oy, i64)
        {
            float v[8];
            load8(x + ox * 8, v);
#pragma unroll
            for (int e = 0; e < 8; ++e) v[e] = map_value(a.op, v[e], a.p0, a.p1);
            store8(y + oy * 8, v);
        });
        return;
    }
    if (a.map.rank == 1 && a.map.stride[0][0] == 1 && a.map.stride[1][0] == 1)
    {
        for (i64 i = global_index(); i < a.map.count; i += grid_stride())
            y[i] = from_float<TO>(map_value(a.op, to_float(x[i]), a.p0, a.p1));
        return;
    }
    for_each_strided(a.map, [&](i64 ox, i64 oy, i64) { y[oy] = from_float<TO>(map_value(a.op, to_float(x[ox]), a.p0, a.p1)); });
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
    if (args.map.flags & MAP_VECTOR8)
    {
        for_each_vector8(args.map, [&](i64 oa, i64 ob, i64 oy)
        {
            float va[8], vb[8];
            load8(a + oa * 8, va);
            load8(b + ob * 8, vb);
#pragma unroll
            for (int e = 0; e < 8; ++e) va[e] = binary_value(args.op, va[e], vb[e]);
            store8(y + oy * 8, va);
        });
        return;
    }
    for_each_strided(args.map, [&](i64 oa, i64 ob, i64 oy) { y[oy] = from_float<TO>(binary_value(args.op, to_float(a[oa]), to_float(b[ob]))); });
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
    // pad = 1: the spatial size is a multiple of 8 and y is 16-byte aligned, so eight elements share one channel.
    if (a.pad == 1 && a.count < 0x7fffffffLL)
    {
        u32 vectors = (u32)(a.count / 8), spatial8 = (u32)(a.spatial / 8), channels = (u32)a.channels;
        for (u32 i = (u32)global_index(); i < vectors; i += (u32)grid_stride())
        {
            float v[8];
            load8(y + (i64)i * 8, v);
            float b = a.bias[(i / spatial8) % channels];
#pragma unroll
            for (int e = 0; e < 8; ++e) v[e] = v[e] + b;
            store8(y + (i64)i * 8, v);
        }
        return;
    }
    for (i64 i = global_index(); i < a.count; i += grid_stride())
    {
        int c = (int)((i / a.spatial) % a.channels);
        y[i] = from_float<T>(to_float(y[i]) + a.bias[c]);
    }
}

#define ELEMENTWISE(NI, TI, NO, TO) \
    extern "C" __global__ void map_##NI##_##NO(MapArgs a) { map_impl<TI, TO>(a); } \
    extern "C" __global__ void binary_##NI##_##NO(BinaryArgs a) { binary_impl<TI, TO>(a); }
IO_TYPE_PAIRS(ELEMENTWISE)

FLOAT_KERNELS(channel_bias, ChannelBiasArgs, channel_bias_impl)

// y = x + h ⊙ gate over rows of a contiguous last dim (x, h, gate, y: any row strides, gate typically one row per
// batch item): product and sum each rounded once in float, eight elements per access.
struct AddMulArgs
{
    const void* x;
    const void* h;
    const void* gate;
    void* y;
    i64 rows;
    int cols;
    int pad;
    RowMap4 map;  // operand 0 = x, 1 = h, 2 = gate, 3 = y
};
static_assert(sizeof(AddMulArgs) == 216, "AddMulArgs must match KernelArgs.cs");

template <typename T>
__device__ void add_mul_impl(const AddMulArgs& a)
{
    const T* x = (const T*)a.x;
    const T* h = (const T*)a.h;
    const T* g = (const T*)a.gate;
    T* y = (T*)a.y;
    const int vecs = a.cols / 8;
    const i64 total = a.rows * vecs;
    for (i64 i = global_index(); i < total; i += grid_stride())
    {
        i64 r = i / vecs;
        int c = (int)(i - r * vecs) * 8;
        i64 o[4];
        row_offsets(a.map, r, o);
        float vx[8], vh[8], vg[8];
        load8(x + o[0] + c, vx);
        load8(h + o[1] + c, vh);
        load8(g + o[2] + c, vg);
#pragma unroll
        for (int e = 0; e < 8; ++e) vx[e] = __fadd_rn(vx[e], __fmul_rn(vh[e], vg[e]));
        store8(y + o[3] + c, vx);
    }
}

FLOAT_KERNELS(add_mul, AddMulArgs, add_mul_impl)
