using CogVideoX.Engine;
using CogVideoX.Models.Transformer;

namespace CogVideoX.Tests;

/// <summary>A fixture transformer loaded with one edit to its config.json, to see what the loader says about it.</summary>
public static class EditedTransformer
{
    /// <summary>
    /// The error of loading the transformer folder <paramref name="source"/> with <paramref name="find"/> (which must
    /// be in its config.json) replaced by <paramref name="replace"/>; the weights are the folder's own.
    /// </summary>
    public static CogVideoXException LoadError(string source, string find, string replace)
    {
        using var dir = new TempDir();
        var json = File.ReadAllText(Path.Combine(source, "config.json"));
        Assert.Contains(find, json);
        File.WriteAllText(dir.File("config.json"), json.Replace(find, replace));
        File.Copy(Path.Combine(source, "diffusion_pytorch_model.safetensors"), dir.File("diffusion_pytorch_model.safetensors"));
        return Assert.ThrowsAny<CogVideoXException>(() => CogVideoXTransformer.Load(dir.Path, CpuBackend.Instance, DType.F32));
    }
}
