// Strided copy with dtype conversion, and fill of a strided view with a raw bit pattern.

struct CopyArgs
{
    const void* src;
    void* dst;
    IndexMap3 map;  // stride[0] = source, stride[1] = destination
};
static_assert(sizeof(CopyArgs) == 288, "CopyArgs must match KernelArgs.cs");

template <typename TI, typename TO>
__device__ void copy_impl(const CopyArgs& a)
{
    const TI* s = (const TI*)a.src;
    TO* d = (TO*)a.dst;
    if (a.map.rank == 1 && a.map.stride[0][0] == 1 && a.map.stride[1][0] == 1)
    {
        for (i64 i = global_index(); i < a.map.count; i += grid_stride()) d[i] = Convert<TO, TI>::run(s[i]);
        return;
    }
    for (i64 i = global_index(); i < a.map.count; i += grid_stride())
    {
        i64 os, od, unused;
        offsets3(a.map, i, os, od, unused);
        d[od] = Convert<TO, TI>::run(s[os]);
    }
}

#define COPY(NI, TI, NO, TO) extern "C" __global__ void copy_##NI##_##NO(CopyArgs a) { copy_impl<TI, TO>(a); }
#define COPY_FROM(NI, TI) COPY(NI, TI, f32, float) COPY(NI, TI, f16, f16) COPY(NI, TI, bf16, bf16) COPY(NI, TI, i64, i64)
COPY_FROM(f32, float)
COPY_FROM(f16, f16)
COPY_FROM(bf16, bf16)
COPY_FROM(i64, i64)

struct FillArgs
{
    void* dst;
    u64 bits;  // the value's bit pattern in the destination's dtype, computed on the host
    IndexMap3 map;  // stride[0] = destination
};
static_assert(sizeof(FillArgs) == 288, "FillArgs must match KernelArgs.cs");

template <typename T>
__device__ void fill_impl(const FillArgs& a)
{
    T* d = (T*)a.dst;
    T v = (T)a.bits;
    for (i64 i = global_index(); i < a.map.count; i += grid_stride())
    {
        i64 o, u1, u2;
        offsets3(a.map, i, o, u1, u2);
        d[o] = v;
    }
}

extern "C" __global__ void fill_b16(FillArgs a) { fill_impl<u16>(a); }
extern "C" __global__ void fill_b32(FillArgs a) { fill_impl<u32>(a); }
extern "C" __global__ void fill_b64(FillArgs a) { fill_impl<u64>(a); }
