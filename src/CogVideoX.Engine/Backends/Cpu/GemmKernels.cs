using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace CogVideoX.Engine;

/// <summary>
/// A register-blocked GEMM micro-kernel: an MR × NR tile of C kept in vector registers while it walks the
/// reduction dimension of one packed A panel and one packed B panel.
/// </summary>
internal unsafe interface IMicroKernel
{
    /// <summary>Rows of the C tile (elements of A broadcast per reduction step).</summary>
    static abstract int MR { get; }

    /// <summary>Columns of the C tile (a whole number of vectors of B per reduction step).</summary>
    static abstract int NR { get; }

    /// <summary>
    /// c[i, j] (+)= Σ_p a[p·aStride + i] · b[p·NR + j] for i &lt; MR, j &lt; NR; C rows are ldc floats apart.
    /// aStride is MR for a packed panel; attention passes a wider stride to read its probabilities in place.
    /// </summary>
    static abstract void Run(int kc, float* a, int aStride, float* b, float* c, long ldc, bool accumulate);
}

/// <summary>
/// 8 × 32 tile of Vector512 for AVX-512 machines: 16 accumulators + 2 B vectors + 1 broadcast of the 32 registers,
/// 16 FMAs per 10 loads, which keeps the FMA units busy while the loads come from L1/L2.
/// </summary>
internal readonly unsafe struct Kernel512 : IMicroKernel
{
    public static int MR => 8;

    public static int NR => 32;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(int kc, float* a, int aStride, float* b, float* c, long ldc, bool accumulate)
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector512<float> c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default, c70 = default, c71 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var a0 = Vector512.Create(a[0]);
            c00 = VectorFma.MulAdd(a0, b0, c00);
            c01 = VectorFma.MulAdd(a0, b1, c01);
            var a1 = Vector512.Create(a[1]);
            c10 = VectorFma.MulAdd(a1, b0, c10);
            c11 = VectorFma.MulAdd(a1, b1, c11);
            var a2 = Vector512.Create(a[2]);
            c20 = VectorFma.MulAdd(a2, b0, c20);
            c21 = VectorFma.MulAdd(a2, b1, c21);
            var a3 = Vector512.Create(a[3]);
            c30 = VectorFma.MulAdd(a3, b0, c30);
            c31 = VectorFma.MulAdd(a3, b1, c31);
            var a4 = Vector512.Create(a[4]);
            c40 = VectorFma.MulAdd(a4, b0, c40);
            c41 = VectorFma.MulAdd(a4, b1, c41);
            var a5 = Vector512.Create(a[5]);
            c50 = VectorFma.MulAdd(a5, b0, c50);
            c51 = VectorFma.MulAdd(a5, b1, c51);
            var a6 = Vector512.Create(a[6]);
            c60 = VectorFma.MulAdd(a6, b0, c60);
            c61 = VectorFma.MulAdd(a6, b1, c61);
            var a7 = Vector512.Create(a[7]);
            c70 = VectorFma.MulAdd(a7, b0, c70);
            c71 = VectorFma.MulAdd(a7, b1, c71);
            a += aStride;
            b += 32;
        }
        Store(c, c00, c01, accumulate); c += ldc;
        Store(c, c10, c11, accumulate); c += ldc;
        Store(c, c20, c21, accumulate); c += ldc;
        Store(c, c30, c31, accumulate); c += ldc;
        Store(c, c40, c41, accumulate); c += ldc;
        Store(c, c50, c51, accumulate); c += ldc;
        Store(c, c60, c61, accumulate); c += ldc;
        Store(c, c70, c71, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector512<float> v0, Vector512<float> v1, bool accumulate)
    {
        if (accumulate)
        {
            v0 += Vector512.Load(c);
            v1 += Vector512.Load(c + 16);
        }
        v0.Store(c);
        v1.Store(c + 16);
    }
}

/// <summary>
/// 6 × 16 tile of Vector256 for AVX2 + FMA machines: 12 accumulators + 2 B vectors + 1 broadcast of the 16
/// registers (the classic Haswell shape).
/// </summary>
internal readonly unsafe struct Kernel256 : IMicroKernel
{
    public static int MR => 6;

    public static int NR => 16;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(int kc, float* a, int aStride, float* b, float* c, long ldc, bool accumulate)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector256<float> c20 = default, c21 = default, c30 = default, c31 = default;
        Vector256<float> c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var a0 = Vector256.Create(a[0]);
            c00 = VectorFma.MulAdd(a0, b0, c00);
            c01 = VectorFma.MulAdd(a0, b1, c01);
            var a1 = Vector256.Create(a[1]);
            c10 = VectorFma.MulAdd(a1, b0, c10);
            c11 = VectorFma.MulAdd(a1, b1, c11);
            var a2 = Vector256.Create(a[2]);
            c20 = VectorFma.MulAdd(a2, b0, c20);
            c21 = VectorFma.MulAdd(a2, b1, c21);
            var a3 = Vector256.Create(a[3]);
            c30 = VectorFma.MulAdd(a3, b0, c30);
            c31 = VectorFma.MulAdd(a3, b1, c31);
            var a4 = Vector256.Create(a[4]);
            c40 = VectorFma.MulAdd(a4, b0, c40);
            c41 = VectorFma.MulAdd(a4, b1, c41);
            var a5 = Vector256.Create(a[5]);
            c50 = VectorFma.MulAdd(a5, b0, c50);
            c51 = VectorFma.MulAdd(a5, b1, c51);
            a += aStride;
            b += 16;
        }
        Store(c, c00, c01, accumulate); c += ldc;
        Store(c, c10, c11, accumulate); c += ldc;
        Store(c, c20, c21, accumulate); c += ldc;
        Store(c, c30, c31, accumulate); c += ldc;
        Store(c, c40, c41, accumulate); c += ldc;
        Store(c, c50, c51, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector256<float> v0, Vector256<float> v1, bool accumulate)
    {
        if (accumulate)
        {
            v0 += Vector256.Load(c);
            v1 += Vector256.Load(c + 8);
        }
        v0.Store(c);
        v1.Store(c + 8);
    }
}

/// <summary>
/// 8 × 8 tile of Vector128: the portable kernel (SSE, Arm NEON with its 32 registers) and the fallback when neither
/// wider kind is accelerated (without hardware FMA it multiplies and adds separately, see <see cref="VectorFma"/>).
/// </summary>
internal readonly unsafe struct Kernel128 : IMicroKernel
{
    public static int MR => 8;

    public static int NR => 8;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(int kc, float* a, int aStride, float* b, float* c, long ldc, bool accumulate)
    {
        Vector128<float> c00 = default, c01 = default, c10 = default, c11 = default;
        Vector128<float> c20 = default, c21 = default, c30 = default, c31 = default;
        Vector128<float> c40 = default, c41 = default, c50 = default, c51 = default;
        Vector128<float> c60 = default, c61 = default, c70 = default, c71 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = Vector128.Load(b);
            var b1 = Vector128.Load(b + 4);
            var a0 = Vector128.Create(a[0]);
            c00 = VectorFma.MulAdd(a0, b0, c00);
            c01 = VectorFma.MulAdd(a0, b1, c01);
            var a1 = Vector128.Create(a[1]);
            c10 = VectorFma.MulAdd(a1, b0, c10);
            c11 = VectorFma.MulAdd(a1, b1, c11);
            var a2 = Vector128.Create(a[2]);
            c20 = VectorFma.MulAdd(a2, b0, c20);
            c21 = VectorFma.MulAdd(a2, b1, c21);
            var a3 = Vector128.Create(a[3]);
            c30 = VectorFma.MulAdd(a3, b0, c30);
            c31 = VectorFma.MulAdd(a3, b1, c31);
            var a4 = Vector128.Create(a[4]);
            c40 = VectorFma.MulAdd(a4, b0, c40);
            c41 = VectorFma.MulAdd(a4, b1, c41);
            var a5 = Vector128.Create(a[5]);
            c50 = VectorFma.MulAdd(a5, b0, c50);
            c51 = VectorFma.MulAdd(a5, b1, c51);
            var a6 = Vector128.Create(a[6]);
            c60 = VectorFma.MulAdd(a6, b0, c60);
            c61 = VectorFma.MulAdd(a6, b1, c61);
            var a7 = Vector128.Create(a[7]);
            c70 = VectorFma.MulAdd(a7, b0, c70);
            c71 = VectorFma.MulAdd(a7, b1, c71);
            a += aStride;
            b += 8;
        }
        Store(c, c00, c01, accumulate); c += ldc;
        Store(c, c10, c11, accumulate); c += ldc;
        Store(c, c20, c21, accumulate); c += ldc;
        Store(c, c30, c31, accumulate); c += ldc;
        Store(c, c40, c41, accumulate); c += ldc;
        Store(c, c50, c51, accumulate); c += ldc;
        Store(c, c60, c61, accumulate); c += ldc;
        Store(c, c70, c71, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector128<float> v0, Vector128<float> v1, bool accumulate)
    {
        if (accumulate)
        {
            v0 += Vector128.Load(c);
            v1 += Vector128.Load(c + 4);
        }
        v0.Store(c);
        v1.Store(c + 4);
    }
}
