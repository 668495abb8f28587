using CogVideoX.Engine;
using CogVideoX.Lab.Benchmarks;
using static CogVideoX.Tests.CliRun;

namespace CogVideoX.Tests.Cli;

/// <summary>
/// `bench pipeline` end to end on the CPU with the tiny model: random weights written from a folder of configs, every
/// memory mode run through the real pipeline, the outputs compared, the summary printed. (The GPU figures and targets
/// are the device run's.)
/// </summary>
public class BenchPipelineCommandTests
{
    /// <summary>The tiny 2b-style model's configs without any weights.</summary>
    private static string Configs(TempDir dir)
    {
        var configs = dir.File("configs");
        foreach (var component in new[] { "transformer", "vae", "text_encoder", "scheduler" })
        {
            Directory.CreateDirectory(Path.Combine(configs, component));
            foreach (var file in Directory.GetFiles(Path.Combine(Fixtures.Path2b, component), "*.json"))
                File.Copy(file, Path.Combine(configs, component, Path.GetFileName(file)));
        }
        File.Copy(Path.Combine(Fixtures.Path2b, "model_index.json"), Path.Combine(configs, "model_index.json"));
        return configs;
    }

    [Fact]
    public void EveryModeRunsWithRandomWeightsAndGivesTheSameVideo()
    {
        using var dir = new TempDir();
        var weights = dir.File("weights");
        var (code, output, errors) = Run("bench", "pipeline", "--model", Configs(dir), "--weights", weights, "--device", "cpu",
            "--memory", "full,balanced,low", "--steps", "2", "--frames", "9", "--height", "32", "--width", "48", "--warmup-steps", "1", "--videos", "2");
        Assert.True(code == 0, errors + output);
        Assert.Contains("random weights: writing transformer", errors);
        Assert.Contains("with random weights", output);
        foreach (var mode in new[] { "full", "balanced", "low" }) Assert.Contains($"mode {mode}:", output);
        Assert.Contains("warm-up (1 steps): loads", output);
        Assert.Contains("video 2/2:", output);
        Assert.Contains("memory: low runs as balanced on cpu", output);
        // Same arithmetic on the CPU in every mode: the same latents and frames, bit for bit.
        Assert.Equal(2, output.Split('\n').Count(l => l.Contains("latents max |Δ| 0, frames max |Δ| 0", StringComparison.Ordinal)));
        Assert.Contains("targets: not checked (the targets are for a GPU)", output);
        foreach (var component in new[] { "transformer", "vae", "text_encoder" })
            Assert.Single(Directory.GetFiles(Path.Combine(weights, component), "*.safetensors"));

        // A second run reuses the weights it wrote.
        (code, _, errors) = Run("bench", "pipeline", "--model", Configs(new TempDir()), "--weights", weights, "--device", "cpu",
            "--memory", "low", "--steps", "1", "--frames", "9", "--height", "32", "--width", "48", "--warmup-steps", "0");
        Assert.Equal(0, code);
        Assert.Contains("random weights: reusing", errors);
    }

    [Fact]
    public void AStepCacheSaysHowManyStepsItReused()
    {
        // The tiny random model's timestep embeddings move far between steps, where TeaCache's polynomial is negative,
        // so every step between the first and the last is reused (docs/fast-modes.md): 2 of 4.
        using var dir = new TempDir();
        var (code, output, errors) = Run("bench", "pipeline", "--model", Configs(dir), "--weights", dir.File("weights"), "--device", "cpu",
            "--memory", "full", "--steps", "4", "--frames", "9", "--height", "32", "--width", "48", "--warmup-steps", "0", "--cache", "teacache");
        Assert.True(code == 0, errors + output);
        Assert.Contains("· 2 of 4 steps reused (step cache) ·", output);
    }

    [Fact]
    public void RandomWeightsLoadIntoEveryComponent()
    {
        using var dir = new TempDir();
        var folder = RandomModelFolder.Create(Configs(dir), Path.Combine(Fixtures.Path2b, "tokenizer"), dir.File("w"), DType.F16);
        var model = CogVideoX.Weights.ModelFolder.Open(folder);
        using var t5 = CogVideoX.Models.Text.T5Encoder.Load(model.ComponentPath("text_encoder"), CpuBackend.Instance, DType.F16);
        using var transformer = CogVideoX.Models.Transformer.CogVideoXTransformer.Load(model.ComponentPath("transformer"), CpuBackend.Instance, DType.F16);
        using var vae = CogVideoX.Models.Vae.CogVideoXVae.Load(model.ComponentPath("vae"), CpuBackend.Instance, DType.F16);
        // Values spread as 1/√fan_in: finite, not all zero.
        var values = t5.EmbedTokens.ToFloatArray();
        Assert.All(values, v => Assert.True(float.IsFinite(v)));
        Assert.Contains(values, v => v != 0);
    }

    [Theory]
    [InlineData(new[] { "--memory", "tiny" }, "unknown memory mode \"tiny\"")]
    [InlineData(new[] { "--memory", "," }, "--memory names no mode")]
    [InlineData(new[] { "--videos", "0" }, "--videos must be at least 1")]
    [InlineData(new[] { "--warmup-steps", "-1" }, "--warmup-steps must be 0")]
    [InlineData(new[] { "--frames", "10" }, "frames: 10 is not a valid frame count")]
    [InlineData(new[] { "--model", "7b" }, "--model 7b is neither a folder nor 2b / 5b")]
    [InlineData(new[] { "--cache", "turbo" }, "cache: unknown step cache \"turbo\"")]
    [InlineData(new[] { "--cache", "teacache", "--exact-steps", "-1" }, "exact steps: -1 is not valid")]
    public void BadSettingsAreRefusedWithAClearMessage(string[] flags, string message)
    {
        string[] model = flags.Contains("--model") ? [] : ["--model", Fixtures.Path2b];
        var (code, output, errors) = Run(["bench", "pipeline", "--device", "cpu", .. model, .. flags]);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.StartsWith("error: ", errors);
        Assert.Contains(message, errors);
    }
}
