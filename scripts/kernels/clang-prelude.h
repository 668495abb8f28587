// What NVRTC gives every kernel source implicitly, for compiling the same sources with clang in CUDA mode on a machine
// without the CUDA toolkit (scripts/kernels/clang-check.sh). Keywords and builtin variables, the device functions and
// math (clang's own headers, which lower to libdevice calls left unresolved in the PTX), the vector types and the warp
// intrinsics the kernels use. It only has to be good enough to type-check: nothing compiled against it ever runs.
typedef __SIZE_TYPE__ size_t;
#define CUDA_VERSION 12080
#define INT_MAX __INT_MAX__
#define INT_MIN (-__INT_MAX__ - 1)
#define HUGE_VALF __builtin_huge_valf()
#define HUGE_VAL __builtin_huge_val()
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __host__ __attribute__((host))
#define __shared__ __attribute__((shared))
#define __constant__ __attribute__((constant))
#define __forceinline__ __inline__ __attribute__((always_inline))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...) __attribute__((launch_bounds(__VA_ARGS__)))
#define __grid_constant__  // clang 19 has no grid_constant attribute; it changes no type
#include <__clang_cuda_builtin_vars.h>
#include <__clang_cuda_libdevice_declares.h>
#include <__clang_cuda_device_functions.h>
#include <__clang_cuda_math.h>

#define CLANG_CHECK_VEC(T, N) \
    struct __attribute__((aligned(sizeof(T)))) N##1 { T x; }; \
    struct __attribute__((aligned(2 * sizeof(T)))) N##2 { T x, y; }; \
    struct N##3 { T x, y, z; }; \
    struct __attribute__((aligned(4 * sizeof(T) > 16 ? 16 : 4 * sizeof(T)))) N##4 { T x, y, z, w; }; \
    static __device__ __forceinline__ N##2 make_##N##2(T x, T y) { return N##2{x, y}; } \
    static __device__ __forceinline__ N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }
CLANG_CHECK_VEC(char, char)
CLANG_CHECK_VEC(unsigned char, uchar)
CLANG_CHECK_VEC(short, short)
CLANG_CHECK_VEC(unsigned short, ushort)
CLANG_CHECK_VEC(int, int)
CLANG_CHECK_VEC(unsigned int, uint)
CLANG_CHECK_VEC(long long, longlong)
CLANG_CHECK_VEC(unsigned long long, ulonglong)
CLANG_CHECK_VEC(float, float)
CLANG_CHECK_VEC(double, double)

#define CLANG_CHECK_SHFL(NAME, KIND)                                                                                \
    static __device__ __forceinline__ float NAME(unsigned m, float v, int lane, int w = 32)                          \
    { return __nvvm_shfl_sync_##KIND##_f32(m, v, lane, ((32 - w) << 8) | 0x1f); }                                    \
    static __device__ __forceinline__ int NAME(unsigned m, int v, int lane, int w = 32)                              \
    { return __nvvm_shfl_sync_##KIND##_i32(m, v, lane, ((32 - w) << 8) | 0x1f); }                                    \
    static __device__ __forceinline__ unsigned NAME(unsigned m, unsigned v, int lane, int w = 32)                    \
    { return (unsigned)__nvvm_shfl_sync_##KIND##_i32(m, (int)v, lane, ((32 - w) << 8) | 0x1f); }                      \
    static __device__ __forceinline__ double NAME(unsigned m, double v, int lane, int w = 32)                        \
    {                                                                                                                \
        long long b = __double_as_longlong(v);                                                                       \
        int lo = NAME(m, (int)b, lane, w), hi = NAME(m, (int)(b >> 32), lane, w);                                    \
        return __longlong_as_double(((long long)hi << 32) | (unsigned)lo);                                           \
    }
CLANG_CHECK_SHFL(__shfl_xor_sync, bfly)
CLANG_CHECK_SHFL(__shfl_sync, idx)
CLANG_CHECK_SHFL(__shfl_down_sync, down)
static __device__ __forceinline__ int __any_sync(unsigned m, int p) { return __nvvm_vote_any_sync(m, p); }
static __device__ __forceinline__ int __all_sync(unsigned m, int p) { return __nvvm_vote_all_sync(m, p); }
static __device__ __forceinline__ unsigned __ballot_sync(unsigned m, int p) { return __nvvm_vote_ballot_sync(m, p); }
static __device__ __forceinline__ void __syncwarp(unsigned m = 0xffffffffu) { __nvvm_bar_warp_sync(m); }
// CUDA 12's DPX device functions (one VIMNMX3 on sm_90, emulated before): the largest and the smallest of three ints.
static __device__ __forceinline__ int __vimax3_s32(int a, int b, int c) { int m = a > b ? a : b; return m > c ? m : c; }
static __device__ __forceinline__ int __vimin3_s32(int a, int b, int c) { int m = a < b ? a : b; return m < c ? m : c; }
// CUDA's sm_61 four-byte dot product with accumulate, unsigned form (the 8-bit kernel's sum |Q8|; clang has
// __vabsdiffs4 but not this).
static __device__ __forceinline__ unsigned __dp4a(unsigned a, unsigned b, unsigned c)
{
    for (int i = 0; i < 32; i += 8) c += ((a >> i) & 0xffu) * ((b >> i) & 0xffu);
    return c;
}
