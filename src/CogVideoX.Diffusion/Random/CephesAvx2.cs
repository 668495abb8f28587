using static System.MathF;

namespace CogVideoX.Diffusion;

/// <summary>
/// One lane of the float32 <c>log256_ps</c> / <c>sincos256_ps</c> (Cephes polynomials, from PyTorch's
/// <c>ATen/native/cpu/avx_mathfun.h</c>) that torch's AVX2 <c>randn</c> kernel uses — not libm. PyTorch's AVX2 kernels
/// are built by GCC with <c>-mfma</c> and its default <c>-ffp-contract=fast</c>, which fuses each multiply whose only
/// use is an add into an FMA, taking the multiplies in statement order; every <see cref="FusedMultiplyAdd"/> below
/// stands where that fusion happens, every plain product where it does not. Bit-exactness depends on both.
/// </summary>
internal static class CephesAvx2
{
    private const float SqrtHalf = 0.707106781186547524f;
    private const float LogP0 = 7.0376836292E-2f;
    private const float LogP1 = -1.1514610310E-1f;
    private const float LogP2 = 1.1676998740E-1f;
    private const float LogP3 = -1.2420140846E-1f;
    private const float LogP4 = 1.4249322787E-1f;
    private const float LogP5 = -1.6668057665E-1f;
    private const float LogP6 = 2.0000714765E-1f;
    private const float LogP7 = -2.4999993993E-1f;
    private const float LogP8 = 3.3333331174E-1f;
    private const float LogQ1 = -2.12194440e-4f;
    private const float LogQ2 = 0.693359375f;

    private const float MinusDp1 = -0.78515625f;
    private const float MinusDp2 = -2.4187564849853515625e-4f;
    private const float MinusDp3 = -3.77489497744594108e-8f;
    private const float SinP0 = -1.9515295891E-4f;
    private const float SinP1 = 8.3321608736E-3f;
    private const float SinP2 = -1.6666654611E-1f;
    private const float CosP0 = 2.443315711809948E-005f;
    private const float CosP1 = -1.388731625493765E-003f;
    private const float CosP2 = 4.166664568298827E-002f;
    private const float FourOverPi = 1.27323954473516f;

    /// <summary>Natural log for x &gt; 0 (NaN for x ≤ 0, as the vector code's invalid mask gives).</summary>
    public static float Log(float value)
    {
        if (!(value > 0f)) return float.NaN;
        // Denormals are cut off at the smallest normal, as _mm256_max_ps(x, min_norm_pos) does.
        value = Max(value, 1.17549435e-38f);
        uint bits = BitConverter.SingleToUInt32Bits(value);
        int exponent = (int)(bits >> 23) - 0x7f;
        // Keep the mantissa, force the exponent of 0.5: x in [0.5, 1).
        float x = BitConverter.UInt32BitsToSingle((bits & 0x807fffffu) | 0x3f000000u);
        float e = exponent + 1f;

        bool below = x < SqrtHalf;
        float tmp = below ? x : 0f;
        x -= 1f;
        e -= below ? 1f : 0f;
        x += tmp;

        float z = x * x;
        float y = FusedMultiplyAdd(LogP0, x, LogP1);
        y = FusedMultiplyAdd(y, x, LogP2);
        y = FusedMultiplyAdd(y, x, LogP3);
        y = FusedMultiplyAdd(y, x, LogP4);
        y = FusedMultiplyAdd(y, x, LogP5);
        y = FusedMultiplyAdd(y, x, LogP6);
        y = FusedMultiplyAdd(y, x, LogP7);
        y = FusedMultiplyAdd(y, x, LogP8);
        y *= x;
        // y*z is the first of the two products feeding this add, so it is the one fused.
        y = FusedMultiplyAdd(y, z, e * LogQ1);
        y = FusedMultiplyAdd(-z, 0.5f, y);
        x += y;
        return FusedMultiplyAdd(e, LogQ2, x);
    }

    /// <summary>Sine and cosine of one argument (accurate for |x| &lt; 8192, which covers 2π·[0, 1)).</summary>
    public static void SinCos(float value, out float sin, out float cos)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        uint signSin = bits & 0x80000000u;
        float x = BitConverter.UInt32BitsToSingle(bits & 0x7fffffffu);

        // Octant j = (trunc(x·4/π) + 1) & ~1; cvttps gives int.MinValue on overflow, as the cast below does.
        float scaled = x * FourOverPi;
        int j = scaled < 2147483648f ? (int)scaled : int.MinValue;
        j = (j + 1) & ~1;
        float y = j;
        uint swapSignSin = (uint)(j & 4) << 29;
        bool sinPolyForSin = (j & 2) == 0;

        // Extended-precision range reduction x − j·π/4 in three parts.
        x = FusedMultiplyAdd(y, MinusDp1, x);
        x = FusedMultiplyAdd(y, MinusDp2, x);
        x = FusedMultiplyAdd(y, MinusDp3, x);

        uint signCos = (uint)(~(j - 2) & 4) << 29;
        signSin ^= swapSignSin;

        float z = x * x;
        float yc = FusedMultiplyAdd(CosP0, z, CosP1);
        yc = FusedMultiplyAdd(yc, z, CosP2);
        yc *= z;
        yc = FusedMultiplyAdd(yc, z, -(z * 0.5f));
        yc += 1f;

        float ys = FusedMultiplyAdd(SinP0, z, SinP1);
        ys = FusedMultiplyAdd(ys, z, SinP2);
        ys *= z;
        ys = FusedMultiplyAdd(ys, x, x);

        // The vector code selects with masks and adds the masked-out +0 back; kept literal for the sign of zero.
        float sinFromSinPoly = sinPolyForSin ? ys : 0f;
        float sinFromCosPoly = sinPolyForSin ? 0f : yc;
        float cosFromSinPoly = ys - sinFromSinPoly;
        float cosFromCosPoly = yc - sinFromCosPoly;
        float s = sinFromCosPoly + sinFromSinPoly;
        float c = cosFromCosPoly + cosFromSinPoly;

        sin = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(s) ^ signSin);
        cos = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(c) ^ signCos);
    }
}
