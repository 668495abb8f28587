using System.Text.Json.Nodes;
using CogVideoX.Engine;
using CogVideoX.Lab.Benchmarks;

namespace CogVideoX.Tests;

/// <summary>
/// The tiny 2b-style pipeline with three transformer layers and three T5 layers and random weights (written once per
/// test run): with more blocks than the two streaming slots, every block is copied once per pass.
/// </summary>
public static class ThreeLayerModel
{
    public const int Layers = 3;

    private static readonly Lazy<string> s_folder = new(Create);

    /// <summary>The pipeline folder (float32 weights).</summary>
    public static string Folder => s_folder.Value;

    private static string Create()
    {
        var root = Path.Combine(Path.GetTempPath(), $"cogvideox-three-layers-{Environment.ProcessId}");
        var configs = Path.Combine(root, "configs");
        foreach (var component in new[] { "transformer", "vae", "text_encoder", "scheduler" })
        {
            var from = Path.Combine(Fixtures.Path2b, component);
            var to = Path.Combine(configs, component);
            Directory.CreateDirectory(to);
            foreach (var file in Directory.GetFiles(from, "*.json"))
            {
                var json = JsonNode.Parse(File.ReadAllText(file))!;
                if (component is "transformer" or "text_encoder") json["num_layers"] = Layers;
                File.WriteAllText(Path.Combine(to, Path.GetFileName(file)), json.ToJsonString());
            }
        }
        File.Copy(Path.Combine(Fixtures.Path2b, "model_index.json"), Path.Combine(configs, "model_index.json"), overwrite: true);
        var folder = RandomModelFolder.Create(configs, Path.Combine(Fixtures.Path2b, "tokenizer"), Path.Combine(root, "model"), DType.F32, seed: 5);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        };
        return folder;
    }
}
