using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using CogVideoX.Engine;
using CogVideoX.Models.Text;
using CogVideoX.Models.Transformer;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;

namespace CogVideoX.Lab.Benchmarks;

/// <summary>
/// A diffusers pipeline folder with deterministic random weights, written from a folder of configs (the published
/// ones kept with the fixtures, <c>tests/fixtures/golden/real_configs/CogVideoX-2b</c>): benchmarks then run the real
/// loading path — safetensors files, memory-mapped — at full size without downloading the weights. Speed and memory do
/// not depend on the values. Matrices get a spread of 1/√fan_in, biases 0.02, norm weights 1 ± 0.05, so the
/// activations keep a sane range. A folder already written for the same configs, dtype and seed is reused.
/// </summary>
public static class RandomModelFolder
{
    private const string Marker = "random-weights.json";
    private const int PoolSize = 1 << 23;
    private const int ChunkValues = 1 << 22;

    /// <summary>
    /// Writes (or reuses) <paramref name="target"/>: the configs of <paramref name="configFolder"/> (model_index.json,
    /// scheduler/, transformer/, vae/, text_encoder/), a tokenizer folder, and random weights in <paramref name="dtype"/>.
    /// </summary>
    public static string Create(string configFolder, string tokenizerFolder, string target, DType dtype, int seed = 0, Action<string>? log = null)
    {
        if (!dtype.IsFloat()) throw new CogVideoXException($"random weights are written as a float dtype, not {dtype.Name()}");
        foreach (var component in new[] { PipelineComponents.Transformer, PipelineComponents.Vae, PipelineComponents.TextEncoder })
            if (!File.Exists(Path.Combine(configFolder, component, "config.json")))
                throw new CogVideoXException($"{configFolder}: no {component}/config.json; give a folder with the model's configs (e.g. tests/fixtures/golden/real_configs/CogVideoX-2b)");
        if (!File.Exists(Path.Combine(tokenizerFolder, "spiece.model")))
            throw new CogVideoXException($"{tokenizerFolder}: no spiece.model; give a T5 tokenizer folder");
        string identity = Identity(configFolder, dtype, seed);
        var markerPath = Path.Combine(target, Marker);
        if (File.Exists(markerPath) && File.ReadAllText(markerPath).Contains(identity, StringComparison.Ordinal))
        {
            log?.Invoke($"random weights: reusing {target}");
            return target;
        }
        if (File.Exists(markerPath)) File.Delete(markerPath);
        Directory.CreateDirectory(target);
        File.Copy(Path.Combine(configFolder, "model_index.json"), Path.Combine(target, "model_index.json"), overwrite: true);
        CopyFolder(Path.Combine(configFolder, PipelineComponents.Scheduler), Path.Combine(target, PipelineComponents.Scheduler));
        CopyFolder(tokenizerFolder, Path.Combine(target, PipelineComponents.Tokenizer));

        var transformer = TransformerConfig.Load(Path.Combine(configFolder, "transformer", "config.json"));
        var vae = VaeConfig.Load(Path.Combine(configFolder, "vae", "config.json"));
        var text = T5Config.Load(Path.Combine(configFolder, "text_encoder", "config.json"));
        Write(configFolder, target, PipelineComponents.Transformer, "diffusion_pytorch_model.safetensors", CogVideoXTransformer.ParameterShapes(transformer), dtype, seed, log);
        Write(configFolder, target, PipelineComponents.Vae, "diffusion_pytorch_model.safetensors", CogVideoXVae.DecoderParameterShapes(vae), dtype, seed + 1, log);
        Write(configFolder, target, PipelineComponents.TextEncoder, "model.safetensors", T5Encoder.ParameterShapes(text), dtype, seed + 2, log);
        File.WriteAllText(markerPath, JsonSerializer.Serialize(new Dictionary<string, string> { ["identity"] = identity, ["source"] = Path.GetFullPath(configFolder) },
            RandomFolderJson.Default.DictionaryStringString));
        return target;
    }

    /// <summary>The configs' hash, the dtype and the seed: a folder written for these is reused as it is.</summary>
    private static string Identity(string configFolder, DType dtype, int seed)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var component in new[] { PipelineComponents.Transformer, PipelineComponents.Vae, PipelineComponents.TextEncoder })
            sha.AppendData(File.ReadAllBytes(Path.Combine(configFolder, component, "config.json")));
        sha.AppendData(Encoding.UTF8.GetBytes($"{dtype.Name()}/{seed}/v1"));
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)), overwrite: true);
    }

    private static void Write(string configFolder, string target, string component, string fileName,
        IReadOnlyList<(string Name, int[] Shape)> tensors, DType dtype, int seed, Action<string>? log)
    {
        var folder = Path.Combine(target, component);
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(configFolder, component, "config.json"), Path.Combine(folder, "config.json"), overwrite: true);
        foreach (var old in Directory.GetFiles(folder, "*.safetensors*")) File.Delete(old);
        long bytes = tensors.Sum(t => Elements(t.Shape)) * dtype.SizeOf();
        log?.Invoke($"random weights: writing {component} ({tensors.Count} tensors, {bytes / (double)(1L << 30):0.00} GiB {dtype.Name()})");
        var path = Path.Combine(folder, fileName);
        var temporary = path + ".partial";
        WriteSafetensors(temporary, tensors, dtype, seed);
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>A safetensors file written tensor by tensor in chunks (no tensor is held whole in memory).</summary>
    private static void WriteSafetensors(string path, IReadOnlyList<(string Name, int[] Shape)> tensors, DType dtype, int seed)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 22);
        var header = Header(tensors, dtype);
        stream.Write(BitConverter.GetBytes((ulong)header.Length));
        stream.Write(header);
        var pool = Pool(seed);
        var values = new float[ChunkValues];
        var bytes = new byte[ChunkValues * dtype.SizeOf()];
        foreach (var (name, shape) in tensors)
        {
            long n = Elements(shape);
            var (scale, shift) = Distribution(name, shape);
            long start = (uint)StableHash(name) % (PoolSize - ChunkValues);
            for (long at = 0; at < n; at += ChunkValues)
            {
                int count = (int)Math.Min(ChunkValues, n - at);
                var window = pool.AsSpan((int)((start + at) % (PoolSize - ChunkValues)), count);
                var chunk = values.AsSpan(0, count);
                TensorPrimitives.Multiply(window, scale, chunk);
                TensorPrimitives.Add(chunk, shift, chunk);
                int written = Encode(chunk, dtype, bytes);
                stream.Write(bytes, 0, written);
            }
        }
    }

    private static int Encode(ReadOnlySpan<float> values, DType dtype, byte[] into)
    {
        switch (dtype)
        {
            case DType.F32:
                MemoryMarshal.AsBytes(values).CopyTo(into);
                return values.Length * 4;
            case DType.F16:
                TensorPrimitives.ConvertToHalf(values, MemoryMarshal.Cast<byte, Half>(into.AsSpan()));
                return values.Length * 2;
            case DType.BF16:
                var output = MemoryMarshal.Cast<byte, ushort>(into.AsSpan());
                for (int i = 0; i < values.Length; i++)
                {
                    uint bits = BitConverter.SingleToUInt32Bits(values[i]);
                    output[i] = (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16); // round to nearest even
                }
                return values.Length * 2;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype));
        }
    }

    private static byte[] Header(IReadOnlyList<(string Name, int[] Shape)> tensors, DType dtype)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject("__metadata__");
            json.WriteString("format", "pt");
            json.WriteString("note", "random weights for benchmarks (cogvideox bench)");
            json.WriteEndObject();
            long offset = 0;
            foreach (var (name, shape) in tensors)
            {
                long bytes = Elements(shape) * dtype.SizeOf();
                json.WriteStartObject(name);
                json.WriteString("dtype", dtype.Name());
                json.WriteStartArray("shape");
                foreach (int d in shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        while (buffer.Length % 8 != 0) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    private static long Elements(int[] shape) => shape.Aggregate(1L, (a, d) => a * d);

    /// <summary>Uniform values of variance 1 (in [−√3, √3]) from a seeded generator.</summary>
    private static float[] Pool(int seed)
    {
        var random = new Random(seed);
        var pool = new float[PoolSize];
        for (int i = 0; i < pool.Length; i++) pool[i] = (float)((random.NextDouble() * 2 - 1) * Math.Sqrt(3));
        return pool;
    }

    private static (float Scale, float Shift) Distribution(string name, int[] shape)
    {
        if (shape.Length >= 2)
        {
            long fanIn = 1;
            for (int i = 1; i < shape.Length; i++) fanIn *= shape[i];
            return ((float)(1.0 / Math.Sqrt(Math.Max(fanIn, 1))), 0f);
        }
        return name.EndsWith("bias", StringComparison.Ordinal) ? (0.02f, 0f) : (0.05f, 1f);
    }

    /// <summary>FNV-1a: the same values for the same name in every run (string.GetHashCode is randomised per process).</summary>
    private static int StableHash(string s)
    {
        uint h = 2166136261;
        foreach (char c in s) h = (h ^ c) * 16777619;
        return (int)h;
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class RandomFolderJson : System.Text.Json.Serialization.JsonSerializerContext
{
}
