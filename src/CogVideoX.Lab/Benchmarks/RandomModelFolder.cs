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
/// not depend on the values (<see cref="RandomWeights"/>: the same distribution as random checkpoints; the tensor
/// lists come from the models' module trees). A folder already written for the same configs, dtype and seed is reused.
/// </summary>
public static class RandomModelFolder
{
    private const string Marker = "random-weights.json";

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
        sha.AppendData(Encoding.UTF8.GetBytes($"{dtype.Name()}/{seed}/v2"));
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
        RandomWeights.WriteFile(temporary, tensors, dtype, seed,
            new Dictionary<string, string> { ["format"] = "pt", ["note"] = "random weights for benchmarks (cogvideox bench)" });
        File.Move(temporary, path, overwrite: true);
    }

    private static long Elements(int[] shape) => shape.Aggregate(1L, (a, d) => a * d);
}

[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class RandomFolderJson : System.Text.Json.Serialization.JsonSerializerContext
{
}
