namespace CogVideoX.Engine;

/// <summary>Element types a tensor can hold. Compute happens in F32 on the CPU; F16/BF16 are storage types.</summary>
public enum DType : byte
{
    F32,
    F16,
    BF16,
    I64,

    /// <summary>
    /// FP8 E4M3 (the "fn" variant: no infinities, 0x7F/0xFF NaN, largest finite ±448): a storage type for
    /// quantized linear weights and activations only (<see cref="Fp8Weight"/>); nothing computes on it directly.
    /// </summary>
    F8E4M3,
}

public static class DTypes
{
    public static int SizeOf(this DType dtype) => dtype switch
    {
        DType.F32 => 4,
        DType.F16 => 2,
        DType.BF16 => 2,
        DType.I64 => 8,
        DType.F8E4M3 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    /// <summary>Whether ops compute on it (F32, F16, BF16; not I64, and not the FP8 storage type).</summary>
    public static bool IsFloat(this DType dtype) => dtype is DType.F32 or DType.F16 or DType.BF16;

    /// <summary>The name safetensors and the CLI use ("F32", "F16", "BF16", "I64").</summary>
    public static string Name(this DType dtype) => dtype switch
    {
        DType.F32 => "F32",
        DType.F16 => "F16",
        DType.BF16 => "BF16",
        DType.I64 => "I64",
        DType.F8E4M3 => "F8_E4M3",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    /// <summary>Parses user-facing names: f32/float32/fp32, f16/float16/fp16/half, bf16/bfloat16, i64/int64.</summary>
    public static bool TryParse(string text, out DType dtype)
    {
        switch (text.Trim().ToLowerInvariant())
        {
            case "f32": case "fp32": case "float32": case "float": dtype = DType.F32; return true;
            case "f16": case "fp16": case "float16": case "half": dtype = DType.F16; return true;
            case "bf16": case "bfloat16": dtype = DType.BF16; return true;
            case "i64": case "int64": case "long": dtype = DType.I64; return true;
            default: dtype = default; return false;
        }
    }

    /// <summary>Exact bf16 → f32 widening.</summary>
    public static float BF16ToFloat(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>f32 → bf16 with round-to-nearest-even, as PyTorch rounds (NaN kept quiet).</summary>
    public static ushort FloatToBF16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFF_FFFF) > 0x7F80_0000)
            return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    public static float F16ToFloat(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    public static ushort FloatToF16(float value) => BitConverter.HalfToUInt16Bits((Half)value);
}
