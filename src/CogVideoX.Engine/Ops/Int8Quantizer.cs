namespace CogVideoX.Engine;

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
