namespace CogVideoX.Engine;

/// <summary>
/// FP8 E4M3 (OCP "E4M3FN", NVIDIA's __nv_fp8_e4m3): 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities,
/// 0x7F/0xFF are NaN, the largest finite value is 448 = 1.75·2⁸, the smallest normal 2⁻⁶, subnormals step by 2⁻⁹.
/// <see cref="FromFloat"/> is PTX's <c>cvt.rn.satfinite.e4m3x2.f32</c> bit for bit: round to nearest, ties to even,
/// magnitudes beyond 448 (infinities too) saturate to ±448, NaN stays NaN, subnormals kept. Kept in this one file so
/// the FP8-linear path's converter and this one can become one.
/// </summary>
public static class Float8E4M3
{
    /// <summary>The largest finite magnitude.</summary>
    public const float MaxValue = 448f;

    /// <summary>The canonical NaN code (the converter's; 0xFF is NaN too).</summary>
    public const byte NaN = 0x7F;

    private static readonly float[] s_decode = BuildDecodeTable();

    /// <summary>The E4M3 code nearest to <paramref name="x"/> (ties to even), saturated to ±448.</summary>
    public static byte FromFloat(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        byte sign = (byte)((bits >> 24) & 0x80);
        if (float.IsNaN(x)) return (byte)(sign | NaN);
        float a = MathF.Abs(x);
        if (a > MaxValue) return (byte)(sign | 0x7E);
        if (a < 0.015625f)
        {
            // Subnormal range (below 2⁻⁶): a multiple of 2⁻⁹; scaling by 2⁹ is exact, so one rounding. 8 is 2⁻⁶, the
            // smallest normal, whose code is 8 as well.
            return (byte)(sign | (int)MathF.Round(a * 512f, MidpointRounding.ToEven));
        }
        uint abits = BitConverter.SingleToUInt32Bits(a);
        int exponent = (int)(abits >> 23) - 127;  // -6 … 8
        uint mantissa = abits & 0x7FFFFF;
        uint kept = mantissa >> 20, rest = mantissa & 0xFFFFF;
        if (rest > 0x80000 || (rest == 0x80000 && (kept & 1) != 0)) kept++;
        if (kept == 8)
        {
            kept = 0;
            exponent++;
        }
        int code = ((exponent + 7) << 3) | (int)kept;
        return (byte)(sign | Math.Min(code, 0x7E));
    }

    /// <summary>The value of an E4M3 code (exact in float).</summary>
    public static float ToFloat(byte code) => s_decode[code];

    /// <summary><paramref name="x"/> rounded to the nearest E4M3 value, as a float.</summary>
    public static float Round(float x) => s_decode[FromFloat(x)];

    private static float[] BuildDecodeTable()
    {
        var table = new float[256];
        for (int code = 0; code < 256; code++)
        {
            int e = (code >> 3) & 0xF, m = code & 7;
            float magnitude = (code & 0x7F) == 0x7F ? float.NaN
                : e == 0 ? m * (1f / 512f)
                : (1f + m / 8f) * MathF.ScaleB(1f, e - 7);
            table[code] = (code & 0x80) != 0 ? -magnitude : magnitude;
        }
        return table;
    }
}

/// <summary>
/// Symmetric INT8 quantization as the 8-bit attention uses it: scale = amax / 127, q = round(x / scale) (ties to even,
/// one IEEE division, as CUDA's <c>__float2int_rn(__fdiv_rn(x, s))</c>), clamped to ±127.
/// </summary>
public static class Int8Quantizer
{
    /// <summary>The scale for a group whose largest magnitude is <paramref name="amax"/> (1 for an all-zero group, never 0).</summary>
    public static float Scale(float amax)
    {
        float s = amax / 127f;
        return s > 0 && float.IsFinite(s) ? s : 1f;
    }

    public static sbyte Quantize(float x, float scale) => (sbyte)Math.Clamp(MathF.Round(x / scale, MidpointRounding.ToEven), -127f, 127f);
}
