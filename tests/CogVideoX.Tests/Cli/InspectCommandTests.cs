using System.Text.Json;
using static CogVideoX.Tests.CliRun;

namespace CogVideoX.Tests.Cli;

public class InspectCommandTests
{
    [Fact]
    public void InspectsThe2bStylePipeline()
    {
        var (code, output, errors) = Run("inspect", Fixtures.Path2b);
        Assert.Equal("", errors);
        Assert.Equal(0, code);
        var lines = output.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        Assert.Equal("CogVideoXPipeline (diffusers 0.40.0.dev0)", lines[0]);
        Assert.Contains(Row("folder", Path.GetFullPath(Fixtures.Path2b)), lines);
        Assert.Contains(lines, l => l.StartsWith(Row("weights checksum", "sha256:"), StringComparison.Ordinal));
        // Parameter counts as python's safetensors reports them for these files.
        string[] expected =
        [
            "text_encoder: T5EncoderModel (transformers)", Row("parameters", "204,480 in 21 tensors"), Row("d_model", "64"), Row("heads", "4 × d_kv 16"),
            Row("d_ff", "96 (gated-gelu, activation gelu_new)"), Row("vocab", "2,100"),
            "tokenizer: T5Tokenizer (transformers)", Row("files", "added_tokens.json, special_tokens_map.json, spiece.model, tokenizer_config.json"),
            "transformer: CogVideoXTransformer3DModel (diffusers)", Row("parameters", "525,136 in 64 tensors"), Row("dtypes", "F32"),
            Row("file", "diffusion_pytorch_model.safetensors (2.0 MiB)"), Row("attention heads", "2 × head dim 64 (inner dim 128)"),
            Row("channels", "4 in, 4 out"), Row("positional embeddings", "sincos"),
            "vae: AutoencoderKLCogVideoX (diffusers)", Row("parameters", "1,188,027 in 336 tensors"), Row("latent channels", "4"),
            Row("scaling factor", "1.15258426"), Row("compression", "8× spatial, 4× temporal"),
            "scheduler: CogVideoXDDIMScheduler (diffusers)", Row("prediction", "v_prediction"), Row("timestep spacing", "trailing"), Row("snr shift scale", "3"),
        ];
        foreach (var line in expected) Assert.Contains(line, lines);
        // In pipeline order.
        Assert.True(lines.IndexOf(expected[0]) < lines.IndexOf(expected[8]) && lines.IndexOf(expected[8]) < lines.IndexOf(expected[15]));
    }

    [Fact]
    public void InspectsAConfigsOnlyFolder()
    {
        var (code, output, errors) = Run("inspect", Fixtures.GoldenFile("real_configs", "CogVideoX-5b"));
        Assert.Equal((0, ""), (code, errors));
        var lines = output.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        Assert.Equal(3, lines.Count(l => l == Row("weights", "no weights in this folder")));
        Assert.Contains(Row("weights checksum", "none (no weights in this folder)"), lines);
        Assert.Contains(Row("folder", "missing"), lines); // the published configs come without a tokenizer folder
        Assert.Contains(Row("layers", "42"), lines);
        Assert.Contains(Row("attention heads", "48 × head dim 64 (inner dim 3,072)"), lines);
        Assert.Contains(Row("positional embeddings", "rotary"), lines);
        Assert.Contains(Row("scaling factor", "0.7"), lines);
        Assert.Contains(Row("snr shift scale", "1"), lines);
        Assert.Contains(Row("d_model", "4,096"), lines);
        // The transformer on a GPU: 10.38 GiB in BF16, 5.95 GiB with its blocks' projections as FP8 codes and scales.
        Assert.Contains(Row("GPU weights", "10.4 GiB in F16/BF16, 6.0 GiB with --linear fp8 (projections as FP8 codes and scales)"), lines);
        var (_, json, _) = Run("inspect", Fixtures.GoldenFile("real_configs", "CogVideoX-5b"), "--json");
        using var doc = JsonDocument.Parse(json);
        var transformer = doc.RootElement.GetProperty("components").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "transformer");
        Assert.Equal(11_140_566_144, transformer.GetProperty("device_weights").GetProperty("half_bytes").GetInt64());
        Assert.Equal(6_388_870_272, transformer.GetProperty("device_weights").GetProperty("fp8_linear_bytes").GetInt64());
    }

    [Fact]
    public void JsonReportsTheSameFacts()
    {
        var (code, output, errors) = Run("inspect", Fixtures.Path2b, "--json");
        Assert.Equal((0, ""), (code, errors));
        using var doc = JsonDocument.Parse(output);
        var root = doc.RootElement;
        Assert.Equal("CogVideoXPipeline", root.GetProperty("pipeline_class").GetString());
        Assert.Equal(Path.GetFullPath(Fixtures.Path2b), root.GetProperty("identity").GetString());
        Assert.StartsWith("sha256:", root.GetProperty("weights_checksum").GetString());
        var components = root.GetProperty("components").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!);
        Assert.Equal(["text_encoder", "tokenizer", "transformer", "vae", "scheduler"], components.Keys);
        var transformer = components["transformer"];
        Assert.Equal("CogVideoXTransformer3DModel", transformer.GetProperty("class_name").GetString());
        Assert.Equal(525_136, transformer.GetProperty("weights").GetProperty("parameters").GetInt64());
        Assert.Equal(525_136, transformer.GetProperty("weights").GetProperty("parameters_by_dtype").GetProperty("F32").GetInt64());
        Assert.Equal(2_106_960, transformer.GetProperty("weights").GetProperty("bytes").GetInt64());
        Assert.Equal(2, transformer.GetProperty("transformer").GetProperty("num_layers").GetInt32());
        Assert.Equal("sincos", transformer.GetProperty("transformer").GetProperty("positional_embedding").GetString());
        Assert.Equal(1_188_027, components["vae"].GetProperty("weights").GetProperty("parameters").GetInt64());
        Assert.Equal(1.15258426, components["vae"].GetProperty("vae").GetProperty("scaling_factor").GetDouble());
        Assert.Equal(3.0, components["scheduler"].GetProperty("scheduler").GetProperty("snr_shift_scale").GetDouble());
        Assert.Equal(64, components["text_encoder"].GetProperty("text_encoder").GetProperty("d_model").GetInt32());
    }

    [Fact]
    public void JsonForAConfigsOnlyFolder()
    {
        var (code, output, _) = Run("inspect", "--json", Fixtures.GoldenFile("real_configs", "CogVideoX-5b"));
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.False(doc.RootElement.TryGetProperty("weights_checksum", out _));
        var components = doc.RootElement.GetProperty("components").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!);
        Assert.Equal("no weights in this folder", components["transformer"].GetProperty("note").GetString());
        Assert.False(components["transformer"].TryGetProperty("weights", out _));
        Assert.Equal(48, components["transformer"].GetProperty("transformer").GetProperty("num_attention_heads").GetInt32());
        Assert.Equal(0.7, components["vae"].GetProperty("vae").GetProperty("scaling_factor").GetDouble());
        Assert.Equal("folder missing", components["tokenizer"].GetProperty("note").GetString());
    }

    /// <summary>A pipeline whose transformer and text encoder are the fp16/bf16 shards: shards and dtypes are listed.</summary>
    [Fact]
    public void ListsShardsAndDTypes()
    {
        using var dir = new TempFolder();
        var copy = dir.CopyTree(Fixtures.Path2b, "m");
        foreach (var component in new[] { "transformer", "text_encoder" })
        {
            foreach (var f in Directory.GetFiles(Path.Combine(copy, component), "*.safetensors")) File.Delete(f);
            foreach (var f in Directory.GetFiles(Fixtures.GoldenFile("weights_fp16_sharded", component)))
                File.Copy(f, Path.Combine(copy, component, Path.GetFileName(f)), overwrite: true);
        }
        var (code, output, errors) = Run("inspect", copy);
        Assert.Equal((0, ""), (code, errors));
        var lines = output.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        Assert.Contains(Row("dtypes", "F16"), lines);
        Assert.Contains(Row("dtypes", "BF16"), lines);
        Assert.Contains(Row("files", "2 shards, 1.0 MiB (index diffusion_pytorch_model.safetensors.index.json)"), lines);
        Assert.Contains(Row("", "diffusion_pytorch_model-00001-of-00002.safetensors (752.0 KiB, 52 tensors)").TrimEnd(), lines);
        Assert.Contains(Row("parameters", "525,136 in 64 tensors"), lines);
        Assert.Contains(Row("parameters", "204,480 in 21 tensors"), lines);
    }

    [Theory]
    [InlineData("/definitely/not/a/model")]
    [InlineData("THUDM/CogVideoX-2b@no-such-revision-in-any-cache")]
    public void MissingModelIsOneLineWithoutStackTrace(string model)
    {
        var (code, output, errors) = Run("inspect", model);
        Assert.NotEqual(0, code);
        Assert.Equal("", output);
        var lines = errors.TrimEnd().Split('\n');
        Assert.Single(lines);
        Assert.StartsWith($"error: {(model.StartsWith('/') ? model : "THUDM/CogVideoX-2b")}", lines[0]);
        Assert.DoesNotContain(" at ", errors);
        Assert.DoesNotContain("Exception", errors);
    }

    [Fact]
    public void CorruptWeightsAreOneLineError()
    {
        using var dir = new TempFolder();
        var copy = dir.CopyTree(Fixtures.GoldenFile("real_configs", "CogVideoX-2b"), "m");
        dir.Write("m/vae/diffusion_pytorch_model.safetensors", [1, 2, 3]);
        var (code, output, errors) = Run("inspect", copy);
        Assert.Equal(1, code);
        Assert.Equal("", output);
        Assert.Equal($"error: {Path.Combine(copy, "vae", "diffusion_pytorch_model.safetensors")}: truncated safetensors file (3 bytes; the 8-byte header length is incomplete)", errors.TrimEnd());
    }

    [Fact]
    public void HelpDescribesTheCommand()
    {
        var (code, output, _) = Run("inspect", "--help");
        Assert.Equal(0, code);
        Assert.Contains("<model>", output);
        Assert.Contains("--json", output);
        Assert.Contains("alias (2b, 5b)", output);
        var (missingCode, _, missingErrors) = Run("inspect");
        Assert.NotEqual(0, missingCode);
        Assert.NotEqual("", missingErrors);
    }
}
