using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace CogVideoX.Weights;

/// <summary>
/// A SHA-256 that says which weights a model folder holds, cheap enough to compute on every run. For each
/// component (by name) and each of its safetensors files (by name) it hashes the file's relative path, its size,
/// its header (every tensor's name, dtype, shape and offsets) and 16 evenly spaced 4 KiB samples of its data —
/// the samples tell apart two fine-tunes with identical layouts, which the headers alone would not.
/// It identifies weights; it is not an integrity check of every byte (that would read gigabytes each run).
/// </summary>
public static class WeightsChecksum
{
    public const int SampleCount = 16;

    public const int SampleBytes = 4096;

    /// <summary>"sha256:&lt;hex&gt;", or null when no component holds weights.</summary>
    public static string? Compute(ModelFolder folder)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        int files = 0;
        foreach (var component in folder.Index.Components.Select(c => c.Name).Order(StringComparer.Ordinal))
        {
            if (!folder.HasComponent(component)) continue;
            var weights = WeightFiles.Find(folder.ComponentPath(component));
            if (weights is null) continue;
            foreach (var file in weights.Files.Order(StringComparer.Ordinal))
            {
                using var st = SafetensorsFile.Open(file);
                Add(hash, $"{component}/{System.IO.Path.GetFileName(file)}", st);
                files++;
            }
        }
        return files == 0 ? null : "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static void Add(IncrementalHash hash, string relativePath, SafetensorsFile file)
    {
        hash.AppendData(Encoding.UTF8.GetBytes(relativePath));
        hash.AppendData([0]);
        Span<byte> number = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(number, file.Length);
        hash.AppendData(number);
        BinaryPrimitives.WriteInt64LittleEndian(number, file.Header.Json.Length);
        hash.AppendData(number);
        hash.AppendData(file.Header.Json);
        long data = file.Header.DataLength;
        if (data <= (long)SampleCount * SampleBytes)
        {
            for (long at = 0; at < data; at += int.MaxValue)
                hash.AppendData(file.DataBytes(at, (int)Math.Min(int.MaxValue, data - at)));
            return;
        }
        for (int i = 0; i < SampleCount; i++)
            hash.AppendData(file.DataBytes((data - SampleBytes) * i / (SampleCount - 1), SampleBytes));
    }
}
