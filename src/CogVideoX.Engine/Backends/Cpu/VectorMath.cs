using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace CogVideoX.Engine;

/// <summary>
/// a·b + c on vectors: fused where the hardware fuses, a plain multiply and add otherwise. (The fused API without
/// hardware FMA, e.g. a NativeAOT build for baseline x64, falls back to software per element, about 100× slower.)
/// </summary>
internal static class VectorFma
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> MulAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) =>
        Fma.IsSupported || AdvSimd.IsSupported ? Vector128.FusedMultiplyAdd(a, b, c) : a * b + c;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> MulAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Fma.IsSupported ? Vector256.FusedMultiplyAdd(a, b, c) : a * b + c;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MulAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) =>
        Avx512F.IsSupported ? Vector512.FusedMultiplyAdd(a, b, c) : a * b + c;
}

/// <summary>An element-wise float function with a vector form for each width (the TensorPrimitives pattern).</summary>
internal interface IUnaryOperator
{
    static abstract Vector128<float> Invoke(Vector128<float> x);

    static abstract Vector256<float> Invoke(Vector256<float> x);

    static abstract Vector512<float> Invoke(Vector512<float> x);
}

/// <summary>x·sigmoid(x) = x / (1 + e^−x); e^−x = ∞ for very negative x gives −0, as it should.</summary>
internal readonly struct SiluOperator : IUnaryOperator
{
    public static Vector128<float> Invoke(Vector128<float> x) => x / (Vector128<float>.One + Vector128.Exp(-x));

    public static Vector256<float> Invoke(Vector256<float> x) => x / (Vector256<float>.One + Vector256.Exp(-x));

    public static Vector512<float> Invoke(Vector512<float> x) => x / (Vector512<float>.One + Vector512.Exp(-x));
}

/// <summary>
/// GELU, tanh approximation: 0.5·x·(1 + tanh(u)) with u = √(2/π)·(x + 0.044715·x³), computed as the identical
/// x / (1 + e^−2u), which needs one exp and does not cancel for negative x.
/// </summary>
internal readonly struct GeluTanhOperator : IUnaryOperator
{
    private const float TwoSqrtTwoOverPi = 1.5957691216057308f;
    private const float Cubic = 0.044715f;

    public static Vector128<float> Invoke(Vector128<float> x)
    {
        var u = x * VectorFma.MulAdd(Vector128.Create(Cubic) * x, x, Vector128<float>.One) * Vector128.Create(TwoSqrtTwoOverPi);
        return x / (Vector128<float>.One + Vector128.Exp(-u));
    }

    public static Vector256<float> Invoke(Vector256<float> x)
    {
        var u = x * VectorFma.MulAdd(Vector256.Create(Cubic) * x, x, Vector256<float>.One) * Vector256.Create(TwoSqrtTwoOverPi);
        return x / (Vector256<float>.One + Vector256.Exp(-u));
    }

    public static Vector512<float> Invoke(Vector512<float> x)
    {
        var u = x * VectorFma.MulAdd(Vector512.Create(Cubic) * x, x, Vector512<float>.One) * Vector512.Create(TwoSqrtTwoOverPi);
        return x / (Vector512<float>.One + Vector512.Exp(-u));
    }
}

/// <summary>max(x, 0), NaN kept (as torch.relu).</summary>
internal readonly struct ReluOperator : IUnaryOperator
{
    public static Vector128<float> Invoke(Vector128<float> x) => Vector128.ConditionalSelect(Vector128.LessThan(x, Vector128<float>.Zero), Vector128<float>.Zero, x);

    public static Vector256<float> Invoke(Vector256<float> x) => Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256<float>.Zero), Vector256<float>.Zero, x);

    public static Vector512<float> Invoke(Vector512<float> x) => Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512<float>.Zero), Vector512<float>.Zero, x);
}

/// <summary>Vectorised span kernels of the CPU backend that TensorPrimitives does not provide.</summary>
internal static class VectorMath
{
    /// <summary>
    /// y = op(x) element by element, widest accelerated vectors first; the tail goes through one padded vector so
    /// every element gets the same arithmetic. x and y may be the same span (each element is read before it is written).
    /// </summary>
    public static void Map<TOp>(ReadOnlySpan<float> x, Span<float> y)
        where TOp : IUnaryOperator
    {
        if (y.Length < x.Length) throw new ArgumentException("destination too short", nameof(y));
        ref float xs = ref MemoryMarshal.GetReference(x);
        ref float ys = ref MemoryMarshal.GetReference(y);
        int n = x.Length, i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i <= n - 16; i += 16)
                TOp.Invoke(Vector512.LoadUnsafe(ref xs, (nuint)i)).StoreUnsafe(ref ys, (nuint)i);
        if (Vector256.IsHardwareAccelerated)
            for (; i <= n - 8; i += 8)
                TOp.Invoke(Vector256.LoadUnsafe(ref xs, (nuint)i)).StoreUnsafe(ref ys, (nuint)i);
        for (; i <= n - 4; i += 4)
            TOp.Invoke(Vector128.LoadUnsafe(ref xs, (nuint)i)).StoreUnsafe(ref ys, (nuint)i);
        if (i < n)
        {
            Span<float> tail = stackalloc float[4];
            x[i..].CopyTo(tail);
            TOp.Invoke(Vector128.Create((ReadOnlySpan<float>)tail)).CopyTo(tail);
            tail[..(n - i)].CopyTo(y[i..]);
        }
    }

    /// <summary>Floats summed per block in vector registers, blocks accumulated in double: accurate and fast.</summary>
    private const int SumBlock = 1024;

    /// <summary>Σ x, in double.</summary>
    public static double Sum(ReadOnlySpan<float> x)
    {
        double total = 0;
        for (int s = 0; s < x.Length; s += SumBlock)
            total += BlockSum(x.Slice(s, Math.Min(SumBlock, x.Length - s)));
        return total;
    }

    /// <summary>Σ (x − mean)², in double (the second pass of a two-pass variance).</summary>
    public static double SumSquaredDeviations(ReadOnlySpan<float> x, float mean)
    {
        double total = 0;
        for (int s = 0; s < x.Length; s += SumBlock)
            total += BlockSumSquares(x.Slice(s, Math.Min(SumBlock, x.Length - s)), mean);
        return total;
    }

    /// <summary>Σ x², in double.</summary>
    public static double SumOfSquares(ReadOnlySpan<float> x) => SumSquaredDeviations(x, 0f);

    /// <summary>Sum of a long float region given by pointer and count (spans are limited to int lengths).</summary>
    public static unsafe double Sum(float* p, long count)
    {
        double total = 0;
        for (long s = 0; s < count; s += SumBlock)
            total += BlockSum(new ReadOnlySpan<float>(p + s, (int)Math.Min(SumBlock, count - s)));
        return total;
    }

    public static unsafe double SumSquaredDeviations(float* p, long count, float mean)
    {
        double total = 0;
        for (long s = 0; s < count; s += SumBlock)
            total += BlockSumSquares(new ReadOnlySpan<float>(p + s, (int)Math.Min(SumBlock, count - s)), mean);
        return total;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double BlockSum(ReadOnlySpan<float> x)
    {
        ref float r = ref MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        for (; i <= n - 16; i += 16)
        {
            acc0 += Vector256.LoadUnsafe(ref r, (nuint)i);
            acc1 += Vector256.LoadUnsafe(ref r, (nuint)(i + 8));
        }
        double sum = Vector256.Sum(acc0 + acc1);
        for (; i < n; i++) sum += x[i];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double BlockSumSquares(ReadOnlySpan<float> x, float mean)
    {
        ref float r = ref MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        var m = Vector256.Create(mean);
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        for (; i <= n - 16; i += 16)
        {
            var d0 = Vector256.LoadUnsafe(ref r, (nuint)i) - m;
            var d1 = Vector256.LoadUnsafe(ref r, (nuint)(i + 8)) - m;
            acc0 = VectorFma.MulAdd(d0, d0, acc0);
            acc1 = VectorFma.MulAdd(d1, d1, acc1);
        }
        double sum = Vector256.Sum(acc0 + acc1);
        for (; i < n; i++)
        {
            double d = x[i] - mean;
            sum += d * d;
        }
        return sum;
    }

    /// <summary>
    /// y = (x − mean)·scale + shift in one pass. Centring first (as torch does) keeps a large mean from cancelling
    /// against the shift: x·scale + (shift − mean·scale) would lose |mean|/σ ulps.
    /// </summary>
    public static void Normalize(ReadOnlySpan<float> x, float mean, float scale, float shift, Span<float> y)
    {
        if (y.Length < x.Length) throw new ArgumentException("destination too short", nameof(y));
        ref float xs = ref MemoryMarshal.GetReference(x);
        ref float ys = ref MemoryMarshal.GetReference(y);
        int n = x.Length, i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var m = Vector512.Create(mean);
            var a = Vector512.Create(scale);
            var b = Vector512.Create(shift);
            for (; i <= n - 16; i += 16)
                VectorFma.MulAdd(Vector512.LoadUnsafe(ref xs, (nuint)i) - m, a, b).StoreUnsafe(ref ys, (nuint)i);
        }
        var m4 = Vector128.Create(mean);
        var a4 = Vector128.Create(scale);
        var b4 = Vector128.Create(shift);
        for (; i <= n - 4; i += 4)
            VectorFma.MulAdd(Vector128.LoadUnsafe(ref xs, (nuint)i) - m4, a4, b4).StoreUnsafe(ref ys, (nuint)i);
        for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(x[i] - mean, scale, shift);
    }
}
