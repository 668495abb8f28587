using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace CogVideoX.Weights;

/// <summary>
/// Finds the first byte that is not valid UTF-8. JSON readers accept such bytes inside strings and fail only when the
/// string is read, far from the file; checking the bytes first lets the error name the file and the offset.
/// </summary>
internal static class Utf8Check
{
    /// <summary>The offset of the first invalid byte, or −1 when the text is valid UTF-8.</summary>
    public static int FirstInvalid(ReadOnlySpan<byte> bytes)
    {
        if (Utf8.IsValid(bytes)) return -1;
        int at = 0;
        while (at < bytes.Length)
        {
            if (Rune.DecodeFromUtf8(bytes[at..], out _, out int used) != OperationStatus.Done) return at;
            at += used;
        }
        return -1;
    }

    /// <summary>"byte 0xFF at offset 12" for an error message.</summary>
    public static string Describe(ReadOnlySpan<byte> bytes, int offset) => $"byte 0x{bytes[offset]:X2} at offset {offset}";
}
