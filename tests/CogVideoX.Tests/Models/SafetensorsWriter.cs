using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace CogVideoX.Tests.Models;

/// <summary>Writes float32 tensors to a .safetensors file (tests build modified checkpoints with it).</summary>
public static class SafetensorsWriter
{
    public static void WriteF32(string path, IReadOnlyList<(string Name, int[] Shape, float[] Data)> tensors)
    {
        var header = new StringBuilder("{");
        long offset = 0;
        for (int i = 0; i < tensors.Count; i++)
        {
            var (name, shape, data) = tensors[i];
            long end = offset + data.Length * 4L;
            if (i > 0) header.Append(',');
            header.Append(CultureInfo.InvariantCulture,
                $"\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{string.Join(",", shape)}],\"data_offsets\":[{offset},{end}]}}");
            offset = end;
        }
        header.Append('}');
        while ((header.Length + 8) % 8 != 0) header.Append(' ');
        var headerBytes = Encoding.UTF8.GetBytes(header.ToString());
        using var stream = File.Create(path);
        stream.Write(BitConverter.GetBytes((ulong)headerBytes.Length));
        stream.Write(headerBytes);
        foreach (var (_, _, data) in tensors)
            stream.Write(MemoryMarshal.AsBytes(data.AsSpan()));
    }
}
