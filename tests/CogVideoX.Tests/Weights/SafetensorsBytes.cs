using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using CogVideoX.Engine;

namespace CogVideoX.Tests.Weights;

/// <summary>Builds .safetensors files byte by byte, valid or deliberately broken, for the loader tests.</summary>
public static class SafetensorsBytes
{
    /// <summary>8-byte little-endian header length, the header text, then the data.</summary>
    public static byte[] Raw(string header, byte[] data, ulong? headerLength = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + h.Length);
        return bytes;
    }

    /// <summary>A valid file holding the given tensors, in order, with correct offsets.</summary>
    public static byte[] Of(params (string Name, DType DType, int[] Shape, byte[] Data)[] tensors)
    {
        var header = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\"}");
        long offset = 0;
        foreach (var t in tensors)
        {
            header.Append(CultureInfo.InvariantCulture,
                $",\"{t.Name}\":{{\"dtype\":\"{t.DType.Name()}\",\"shape\":[{string.Join(",", t.Shape)}],\"data_offsets\":[{offset},{offset + t.Data.Length}]}}");
            offset += t.Data.Length;
        }
        header.Append('}');
        return Raw(header.ToString(), tensors.SelectMany(t => t.Data).ToArray());
    }

    public static byte[] Floats(params float[] values) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    public static byte[] UShorts(ushort[] values) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
}

/// <summary>
/// Reference conversions written from the IEEE 754 definitions with exact double arithmetic, independent of
/// System.Half and of the engine, to check both.
/// </summary>
public static class ReferenceRounding
{
    /// <summary>float32 → float16 bits, round to nearest, ties to even (NaN → a quiet NaN).</summary>
    public static ushort ToF16(float value)
    {
        ushort sign = (ushort)(float.IsNegative(value) ? 0x8000 : 0);
        if (float.IsNaN(value)) return (ushort)(sign | 0x7E00);
        double a = Math.Abs((double)value);
        if (a >= 65520.0) return (ushort)(sign | 0x7C00); // halfway between 65504 and 2^16 rounds (to even) up
        if (a == 0) return sign;
        int e = Math.Max(Math.ILogB(a), -14);             // binade; below 2^-14 the spacing stays 2^-24
        double quantum = Math.ScaleB(1.0, e - 10);
        double n = Math.Round(a / quantum, MidpointRounding.ToEven); // exact: a has 24 significant bits
        double r = n * quantum;
        if (r < Math.ScaleB(1.0, -14)) return (ushort)(sign | (ushort)n);   // subnormal
        int re = Math.ILogB(r);
        int mantissa = (int)(r / Math.ScaleB(1.0, re - 10)) - 1024;
        return (ushort)(sign | ((re + 15) << 10) | mantissa);
    }

    /// <summary>float16 bits → value, from sign, exponent and mantissa.</summary>
    public static float FromF16(ushort bits)
    {
        int sign = bits >> 15, exponent = (bits >> 10) & 0x1F, mantissa = bits & 0x3FF;
        double v = exponent switch
        {
            0 => Math.ScaleB(mantissa, -24),
            31 => mantissa == 0 ? double.PositiveInfinity : double.NaN,
            _ => Math.ScaleB(1024 + mantissa, exponent - 25),
        };
        return (float)(sign == 1 ? -v : v);
    }

    /// <summary>float32 → bfloat16 bits, round to nearest, ties to even.</summary>
    public static ushort ToBF16(float value)
    {
        if (float.IsNaN(value)) return (ushort)((BitConverter.SingleToUInt32Bits(value) >> 16) | 0x40);
        double a = Math.Abs((double)value);
        double r;
        if (a >= Math.ScaleB(2.0 - Math.ScaleB(1.0, -8), 127)) r = double.PositiveInfinity;
        else if (a == 0) r = 0;
        else
        {
            double quantum = Math.ScaleB(1.0, Math.Max(Math.ILogB(a), -126) - 7);
            r = Math.Round(a / quantum, MidpointRounding.ToEven) * quantum;
        }
        // r lies on the bfloat16 grid, so its float32 bits end in 16 zeros.
        uint bits = BitConverter.SingleToUInt32Bits(float.IsNegative(value) ? -(float)r : (float)r);
        return (ushort)(bits >> 16);
    }

    public static float FromBF16(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);
}
