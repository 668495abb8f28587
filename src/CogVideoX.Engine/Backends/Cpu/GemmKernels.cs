using System.Diagnostics;
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
/// A micro-kernel's vector width: the operations <see cref="RegisterTile"/> needs. The micro-kernels below differ
/// only in these and in their tile shape (MR = 6 or 8 rows, NR = two vectors).
/// </summary>
internal unsafe interface ITileVector<TVector> : IMicroKernel
    where TVector : struct
{
    static abstract TVector Load(float* p);

    static abstract void Store(TVector v, float* p);

    static abstract TVector Broadcast(float x);

    static abstract TVector Add(TVector x, TVector y);

    static abstract TVector MulAdd(TVector a, TVector b, TVector c);
}

/// <summary>
/// The register-blocked kernel body shared by every width: an MR × NR tile of C in 2 · MR vector
/// accumulators, one broadcast of A and two vectors of B per reduction step. MR is a constant of the
/// specialisation, so the JIT drops the rows 6–7 code of a six-row width and keeps every accumulator in a register.
/// Each specialisation compiles to the same machine code as the hand-written kernel of its width did; it must not be
/// inlined, because inlined into a caller the accumulators spill to the stack inside the loop (seen in the JIT's
/// disassembly, DOTNET_JitDisasm=Run).
/// </summary>
internal static unsafe class RegisterTile
{
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static void Run<TK, TV>(int kc, float* a, int aStride, float* b, float* c, long ldc, bool accumulate)
        where TK : ITileVector<TV>
        where TV : struct
    {
        Debug.Assert(TK.MR is 6 or 8);
        int lanes = TK.NR / 2;
        TV c00 = default, c01 = default, c10 = default, c11 = default;
        TV c20 = default, c21 = default, c30 = default, c31 = default;
        TV c40 = default, c41 = default, c50 = default, c51 = default;
        TV c60 = default, c61 = default, c70 = default, c71 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = TK.Load(b);
            var b1 = TK.Load(b + lanes);
            var a0 = TK.Broadcast(a[0]);
            c00 = TK.MulAdd(a0, b0, c00);
            c01 = TK.MulAdd(a0, b1, c01);
            var a1 = TK.Broadcast(a[1]);
            c10 = TK.MulAdd(a1, b0, c10);
            c11 = TK.MulAdd(a1, b1, c11);
            var a2 = TK.Broadcast(a[2]);
            c20 = TK.MulAdd(a2, b0, c20);
            c21 = TK.MulAdd(a2, b1, c21);
            var a3 = TK.Broadcast(a[3]);
            c30 = TK.MulAdd(a3, b0, c30);
            c31 = TK.MulAdd(a3, b1, c31);
            var a4 = TK.Broadcast(a[4]);
            c40 = TK.MulAdd(a4, b0, c40);
            c41 = TK.MulAdd(a4, b1, c41);
            var a5 = TK.Broadcast(a[5]);
            c50 = TK.MulAdd(a5, b0, c50);
            c51 = TK.MulAdd(a5, b1, c51);
            if (TK.MR == 8)
            {
                var a6 = TK.Broadcast(a[6]);
                c60 = TK.MulAdd(a6, b0, c60);
                c61 = TK.MulAdd(a6, b1, c61);
                var a7 = TK.Broadcast(a[7]);
                c70 = TK.MulAdd(a7, b0, c70);
                c71 = TK.MulAdd(a7, b1, c71);
            }
            a += aStride;
            b += 2 * lanes;
        }
        StoreRow<TK, TV>(c, c00, c01, accumulate); c += ldc;
        StoreRow<TK, TV>(c, c10, c11, accumulate); c += ldc;
        StoreRow<TK, TV>(c, c20, c21, accumulate); c += ldc;
        StoreRow<TK, TV>(c, c30, c31, accumulate); c += ldc;
        StoreRow<TK, TV>(c, c40, c41, accumulate); c += ldc;
        StoreRow<TK, TV>(c, c50, c51, accumulate);
        if (TK.MR == 8)
        {
            c += ldc;
            StoreRow<TK, TV>(c, c60, c61, accumulate); c += ldc;
            StoreRow<TK, TV>(c, c70, c71, accumulate);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow<TK, TV>(float* c, TV v0, TV v1, bool accumulate)
        where TK : ITileVector<TV>
        where TV : struct
    {
        int lanes = TK.NR / 2;
        if (accumulate)
        {
            v0 = TK.Add(v0, TK.Load(c));
            v1 = TK.Add(v1, TK.Load(c + lanes));
        }
        TK.Store(v0, c);
        TK.Store(v1, c + lanes);
    }
}

/// <summary>
/// 8 × 32 tile of Vector512 for AVX-512 machines: 16 accumulators + 2 B vectors + 1 broadcast of the 32 registers,
/// 16 FMAs per 10 loads, which keeps the FMA units busy while the loads come from L1/L2.
/// </summary>
internal readonly unsafe struct Kernel512 : ITileVector<Vector512<float>>
{
    public static int MR => 8;

    public static int NR => 32;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Run(int kc, float* a, int aStride, float* b, float* c, long ldc, bool accumulate) =>
        RegisterTile.Run<Kernel512, Vector512<float>>(kc, a, aStride, b, c, ldc, accumulate);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(float* p) => Vector512.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector512<float> v, float* p) => v.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Broadcast(float x) => Vector512.Create(x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Add(Vector512<float> x, Vector512<float> y) => x + y;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MulAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => VectorFma.MulAdd(a, b, c);
}

/// <summary>
/// 6 × 16 tile of Vector256 for AVX2 + FMA machines: 12 accumulators + 2 B vectors + 1 broadcast of the 16
/// registers (the classic Haswell shape).
/// </summary>
internal readonly unsafe struct Kernel256 : ITileVector<Vector256<float>>
{
    public static int MR => 6;

    public static int NR => 16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Run(int kc, float* a, int aStride, float* b, float* c, long ldc, bool accumulate) =>
        RegisterTile.Run<Kernel256, Vector256<float>>(kc, a, aStride, b, c, ldc, accumulate);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(float* p) => Vector256.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<float> v, float* p) => v.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Broadcast(float x) => Vector256.Create(x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Add(Vector256<float> x, Vector256<float> y) => x + y;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> MulAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => VectorFma.MulAdd(a, b, c);
}

/// <summary>
/// 8 × 8 tile of Vector128: the portable kernel (SSE, Arm NEON with its 32 registers) and the fallback when neither
/// wider kind is accelerated (without hardware FMA it multiplies and adds separately, see <see cref="VectorFma"/>).
/// </summary>
internal readonly unsafe struct Kernel128 : ITileVector<Vector128<float>>
{
    public static int MR => 8;

    public static int NR => 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Run(int kc, float* a, int aStride, float* b, float* c, long ldc, bool accumulate) =>
        RegisterTile.Run<Kernel128, Vector128<float>>(kc, a, aStride, b, c, ldc, accumulate);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Load(float* p) => Vector128.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector128<float> v, float* p) => v.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Broadcast(float x) => Vector128.Create(x);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Add(Vector128<float> x, Vector128<float> y) => x + y;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> MulAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => VectorFma.MulAdd(a, b, c);
}
