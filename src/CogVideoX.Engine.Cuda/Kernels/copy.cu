// Strided copy with dtype conversion, and fill of a strided view with a raw bit pattern.

struct CopyArgs
{
    const void* src;
    void* dst;
    IndexMap3 map;  // stride[0] = source, stride[1] = destination
};
static_assert(sizeof(CopyArgs) == 288, "CopyArgs must match KernelArgs.cs");

// Eight elements per access where the host set MAP_VECTOR8 (float types only).
template <typename TI, typename TO> struct CopyVector8
{
    static __device__ __forceinline__ void run(const TI* s, TO* d)
    {
        float v[8];
        load8(s, v);
        store8(d, v);
    }
};
template <typename T> struct CopyVector8<T, T>
{
    static __device__ __forceinline__ void run(const T* s, T* d)
    {
        if (sizeof(T) == 4) { ((uint4*)d)[0] = ((const uint4*)s)[0]; ((uint4*)d)[1] = ((const uint4*)s)[1]; }
        else *(uint4*)d = *(const uint4*)s;
    }
};
template <> struct CopyVector8<i64, i64> { static __device__ __forceinline__ void run(const i64*, i64*) {} };
template <typename TI> struct CopyVector8<TI, i64> { static __device__ __forceinline__ void run(const TI*, i64*) {} };
template <typename TO> struct CopyVector8<i64, TO> { static __device__ __forceinline__ void run(const i64*, TO*) {} };

template <typename TI, typename TO>
__device__ void copy_impl(const CopyArgs& a)
{
    const TI* s = (const TI*)a.src;
    TO* d = (TO*)a.dst;
    if (a.map.flags & MAP_VECTOR8)
    {
        for_each_vector8(a.map, [&](i64 os, i64 od, i64) { CopyVector8<TI, TO>::run(s + os * 8, d + od * 8); });
        return;
    }
    if (a.map.rank == 1 && a.map.stride[0][0] == 1 && a.map.stride[1][0] == 1)
    {
        for (i64 i = global_index(); i < a.map.count; i += grid_stride()) d[i] = Convert<TO, TI>::run(s[i]);
        return;
    }
    for_each_strided(a.map, [&](i64 os, i64 od, i64) { d[od] = Convert<TO, TI>::run(s[os]); });
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
    for_each_strided(a.map, [&](i64 o, i64, i64) { d[o] = v; });
}

BITS_KERNELS(fill, FillArgs, fill_impl)

// Nearest upsampling of contiguous [R, Ti, Hi, Wi] into contiguous [R, Ti·ft, Hi·fh, Wi·fw] (Wo a multiple of 8):
// each thread writes eight consecutive output columns with one 16-byte (or two, for 4-byte types) store.
struct UpsampleArgs
{
    const void* x;
    void* y;
    i64 vectors;  // R·To·Ho·Wo / 8
    int ti, hi, wi;
    int ft, fh, fw;
    int to, ho, wo;
    int pad;
};
static_assert(sizeof(UpsampleArgs) == 64, "UpsampleArgs must match KernelArgs.cs");

template <typename T>
__device__ void upsample_impl(const UpsampleArgs& a)
{
    const T* x = (const T*)a.x;
    T* y = (T*)a.y;
    const int wv = a.wo / 8;
    for (i64 v = global_index(); v < a.vectors; v += grid_stride())
    {
        i64 row = v / wv;
        int w0 = (int)(v - row * wv) * 8;
        i64 rt = row / a.ho;
        int h = (int)(row - rt * a.ho);
        i64 r = rt / a.to;
        int t = (int)(rt - r * a.to);
        const T* src = x + ((r * a.ti + t / a.ft) * a.hi + h / a.fh) * (i64)a.wi;
        T out[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) out[e] = src[(w0 + e) / a.fw];
        if (sizeof(T) == 2)
        {
            const u16* o = (const u16*)out;
            *(uint4*)(y + v * 8) = make_uint4(o[0] | ((u32)o[1] << 16), o[2] | ((u32)o[3] << 16), o[4] | ((u32)o[5] << 16), o[6] | ((u32)o[7] << 16));
        }
        else
        {
            const u32* o = (const u32*)out;
            ((uint4*)(y + v * 8))[0] = make_uint4(o[0], o[1], o[2], o[3]);
            ((uint4*)(y + v * 8))[1] = make_uint4(o[4], o[5], o[6], o[7]);
        }
    }
}

extern "C" __global__ void upsample_b16(UpsampleArgs a) { upsample_impl<u16>(a); }
extern "C" __global__ void upsample_b32(UpsampleArgs a) { upsample_impl<u32>(a); }
