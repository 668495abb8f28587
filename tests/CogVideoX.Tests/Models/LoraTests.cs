using System.Text.Json;
using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Models.Lora;
using CogVideoX.Models.Transformer;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Models;

/// <summary>
/// LoRA adapters against diffusers' own load_lora_weights + set_adapters (tests/fixtures/reference/lora, made by
/// scripts/reference/fixtures_lora.py): the transformer's output for every adapter combination and strength, and a
/// whole pipeline run per style, within the golden README's tolerances.
/// </summary>
public class LoraTests(ITestOutputHelper output)
{
    private const double ModelTolerance = 1e-4;  // README: model outputs ≤ 1e-4 × max(1, max |reference|)
    private const double FramesTolerance = 2e-3; // README: pipeline frames ≤ 2e-3 absolute (CPU float32)

    public static string LoraFixtures => Path.Combine(Fixtures.RepoRoot, "tests", "fixtures", "reference", "lora");

    private static string StyleFolder(string style) => style == "2b" ? Fixtures.Path2b : Fixtures.Path5b;

    private sealed record FixtureRun(string Name, IReadOnlyList<LoraSpec> Lora);

    private static (Dictionary<string, string> Files, List<FixtureRun> Runs, string GoldenRun, List<LoraSpec> Pipeline) Manifest(string style)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(LoraFixtures, "lora.json")));
        var s = doc.RootElement.GetProperty("styles").GetProperty(style);
        var files = s.GetProperty("files").EnumerateObject().ToDictionary(p => p.Name, p => Path.Combine(LoraFixtures, p.Value.GetString()!));
        List<LoraSpec> Specs(JsonElement weights) =>
            weights.EnumerateObject().Select(w => new LoraSpec(files[w.Name], w.Value.GetDouble())).ToList();
        var runs = s.GetProperty("runs").EnumerateObject().Select(r => new FixtureRun(r.Name, Specs(r.Value))).ToList();
        return (files, runs, s.GetProperty("golden_run").GetString()!, Specs(s.GetProperty("pipeline_adapters")));
    }

    public static TheoryData<string, string> TransformerRuns()
    {
        var data = new TheoryData<string, string>();
        foreach (var style in new[] { "2b", "5b" })
            foreach (var run in Manifest(style).Runs)
                data.Add(style, run.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(TransformerRuns))]
    public void TransformerMatchesDiffusersWithTheAdaptersAtTheirStrengths(string style, string run)
    {
        var spec = Manifest(style).Runs.Single(r => r.Name == run);
        var tensors = Fixtures.LoadAll(Path.Combine(LoraFixtures, $"transformer_{style}.safetensors"));
        try
        {
            var lora = spec.Lora.Count == 0 ? null : LoraSet.Open(spec.Lora);
            using var model = CogVideoXTransformer.Load(Path.Combine(StyleFolder(style), "transformer"), CpuBackend.Instance, DType.F32, lora);
            var input = tensors["hidden_states"];
            float[] timesteps = Array.ConvertAll(tensors["timestep"].ToLongArray(), t => (float)t);
            using var rotary = model.Config.UseRotaryPositionalEmbeddings ? model.BuildRotaryTables(input.Dim(1), input.Dim(3), input.Dim(4)) : null;
            using var actual = model.Forward(input, tensors["encoder_hidden_states"], timesteps, rotary);
            var expected = tensors[$"out_{run}"];
            double err = Compare.AssertClose(expected, actual, ModelTolerance, $"{style} {run}");
            double change = Compare.MaxAbs(expected.ToFloatArray(), tensors["out_base"].ToFloatArray());
            output.WriteLine($"{style} {run}: max abs error {err:E3} (the LoRA changes the output by up to {change:G3}; max |ref| {expected.ToFloatArray().Max(Math.Abs):G4})");
            if (spec.Lora.Count > 0) Assert.True(change > 100 * ModelTolerance, "the fixture's adapters must change the output measurably");
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    [Theory]
    [InlineData("2b")]
    [InlineData("5b")]
    public void PipelineFramesMatchDiffusersWithLora(string style)
    {
        var (_, _, tag, adapters) = Manifest(style);
        var run = Pipeline.GoldenPipelineTests.Runs().Single(r => r.Tag == tag);
        float[] reference;
        using (var file = SafetensorsFile.Open(Path.Combine(LoraFixtures, $"transformer_{style}.safetensors")))
        using (var frames = file.Load("pipeline_frames"))
            reference = frames.ToFloatArray();
        using var pipeline = new CogVideoXPipeline(ModelFolder.Open(run.Folder), new PipelineOptions { Backend = CpuBackend.Instance, DType = DType.F32 });
        var result = pipeline.Generate(run.Request with { Lora = adapters });
        double err = Compare.AssertAbs(reference, result.Frames, FramesTolerance, $"{style} {tag} frames with LoRA");
        output.WriteLine($"{style} {tag} with {string.Join(", ", adapters.Select(a => $"{Path.GetFileName(a.File)}:{a.Strength}"))}: frames max abs error {err:E3}");
        Assert.Equal(adapters.Count, result.Resolved.Lora.Count);
        for (int i = 0; i < adapters.Count; i++)
        {
            Assert.Equal(Path.GetFullPath(adapters[i].File), result.Resolved.Lora[i].File);
            Assert.Equal(adapters[i].Strength, result.Resolved.Lora[i].Strength);
            Assert.Equal(VideoSha(adapters[i].File), result.Resolved.Lora[i].Sha256);
        }
    }

    private static string VideoSha(string path) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path)));

    [Fact]
    public void ScalesFollowDiffusersAlphaRankAndMetadata()
    {
        // lora.json records the scaling PEFT set up on each layer (adapter weight 1).
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(LoraFixtures, "lora.json")));
        foreach (var style in new[] { "2b", "5b" })
        {
            var s = doc.RootElement.GetProperty("styles").GetProperty(style);
            var files = s.GetProperty("files").EnumerateObject().ToDictionary(p => p.Name, p => LoraAdapter.Open(Path.Combine(LoraFixtures, p.Value.GetString()!)));
            int checkedLayers = 0;
            foreach (var layer in s.GetProperty("scaling_per_layer").EnumerateObject())
                foreach (var adapter in layer.Value.EnumerateObject())
                {
                    var mine = files[adapter.Name].Layers.Single(l => l.Module == layer.Name);
                    Assert.Equal(adapter.Value.GetDouble(), mine.Scale, 12);
                    checkedLayers++;
                }
            Assert.Equal(files.Values.Sum(f => f.Layers.Count), checkedLayers);
        }
        Assert.True(LoraAdapter.Open(Path.Combine(LoraFixtures, "2b_old_spelling.safetensors")).OldSpelling);
        Assert.True(LoraAdapter.Open(Path.Combine(LoraFixtures, "2b_b_alpha.safetensors")).HasMetadata);
    }

    [Fact]
    public void StreamedAndBalancedModesFuseTheSameWeightsAsFull()
    {
        var (_, _, tag, adapters) = Manifest("2b");
        var run = Pipeline.GoldenPipelineTests.Runs().Single(r => r.Tag == tag);
        var request = run.Request with { Lora = adapters, Steps = 2 };
        using var full = new CogVideoXPipeline(ModelFolder.Open(run.Folder), new PipelineOptions { MemoryPolicy = MemoryPolicies.Full });
        var reference = full.Generate(request);
        foreach (var policy in new[] { MemoryPolicies.Low, MemoryPolicies.Balanced })
        {
            var streaming = new RecordingWeightStreaming();
            using var pipeline = new CogVideoXPipeline(ModelFolder.Open(run.Folder), new PipelineOptions { MemoryPolicy = policy, WeightStreaming = streaming });
            var result = pipeline.Generate(request);
            Assert.True(streaming.Count("upload") > 0);
            Assert.Equal(reference.Latents, result.Latents);
            // (low decodes in tiles where weights stream, which changes pixels a little; the latents are the test)
            if (!result.Resolved.VaeTiling) Assert.Equal(reference.Frames, result.Frames);
            // A second video in the same mode streams the same fused host images again.
            var again = pipeline.Generate(request);
            Assert.Equal(reference.Latents, again.Latents);
        }
    }

    [Fact]
    public void AnotherStrengthReloadsTheTransformerAndNoneRestoresTheBaseWeights()
    {
        var (files, _, tag, _) = Manifest("2b");
        var run = Pipeline.GoldenPipelineTests.Runs().Single(r => r.Tag == tag);
        var request = run.Request with { Steps = 1 };
        using var pipeline = new CogVideoXPipeline(ModelFolder.Open(run.Folder), new PipelineOptions { MemoryPolicy = MemoryPolicies.Full });
        var plain = pipeline.Generate(request);
        var strong = pipeline.Generate(request with { Lora = [new LoraSpec(files["b"], 1.0)] });
        var weak = pipeline.Generate(request with { Lora = [new LoraSpec(files["b"], 0.3)] });
        var plainAgain = pipeline.Generate(request);
        Assert.NotEqual(plain.Latents, strong.Latents);
        Assert.NotEqual(strong.Latents, weak.Latents);
        Assert.Equal(plain.Latents, plainAgain.Latents);
        Assert.Empty(plainAgain.Resolved.Lora);
        // Strength 0 is the base model.
        var zero = pipeline.Generate(request with { Lora = [new LoraSpec(files["b"], 0.0)] });
        Assert.Equal(plain.Latents, zero.Latents);
    }

    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    public void HalfPrecisionWeightsAreFusedInFloat32AndRoundedOnce(DType dtype)
    {
        var file = Path.Combine(LoraFixtures, "2b_b_alpha.safetensors");
        var set = new LoraSet([new AppliedLora(LoraAdapter.Open(file), 0.7)]);
        var layer = set.Adapters[0].Adapter.Layers.First(l => l.Module == "transformer_blocks.0.ff.net.0.proj");
        string name = layer.Module + ".weight";
        using var checkpoint = Checkpoint.Open(Path.Combine(Fixtures.Path2b, "transformer"));
        using var fused = checkpoint.Scope(CpuBackend.Instance, dtype, set).Get(name);
        Assert.Equal(dtype, fused.DType);
        // The sum in double, rounded to the half type once.
        using var stored = checkpoint.Scope(CpuBackend.Instance, DType.F32).Get(name);
        var w = stored.ToFloatArray();
        var exact = new float[w.Length];
        for (int o = 0; o < layer.Out; o++)
            for (int i = 0; i < layer.In; i++)
            {
                double d = 0;
                for (int r = 0; r < layer.Rank; r++) d += (double)layer.B[o * layer.Rank + r] * layer.A[r * layer.In + i];
                exact[o * layer.In + i] = (float)(w[o * layer.In + i] + 0.7 * layer.Scale * d);
            }
        using var exactTensor = Tensor.FromArray(exact, stored.ShapeArray());
        using var rounded = exactTensor.To(dtype);
        var expected = rounded.ToFloatArray();
        var actual = fused.ToFloatArray();
        int differ = expected.Zip(actual).Count(p => p.First != p.Second);
        // float32 rounding of the delta can move a value across a half-precision rounding boundary, rarely.
        Assert.True(differ <= expected.Length / 1000, $"{differ} of {expected.Length} values differ from the once-rounded sum");
        using var unfused = checkpoint.Scope(CpuBackend.Instance, dtype).Get(name);
        Assert.NotEqual(unfused.ToFloatArray(), actual);
    }

    // ---- errors ----

    private static CogVideoXException Refused(Action action)
    {
        var e = Assert.ThrowsAny<CogVideoXException>(action);
        Assert.Equal(LoraSpec.UsageExitCode, e.ExitCode);
        return e;
    }

    private static LoraSet Open2b(string file) => new([new AppliedLora(LoraAdapter.Open(file), 1.0)]);

    private static void Validate2b(LoraSet set)
    {
        var config = TransformerConfig.Load(Path.Combine(Fixtures.Path2b, "transformer", "config.json"));
        CogVideoXTransformer.CheckLora(set, config);
    }

    private static string WriteLora(TempDir dir, string name, IEnumerable<(string Key, int[] Shape)> tensors, Dictionary<string, string>? metadata = null)
    {
        var path = Path.Combine(dir.Path, name);
        var list = tensors.Select(t => (t.Key, Tensor.FromArray(Enumerable.Repeat(0.01f, t.Shape.Aggregate(1, (a, b) => a * b)).ToArray(), t.Shape))).ToList();
        try
        {
            CogVideoX.Weights.SafetensorsWriter.Write(path, list, metadata);
        }
        finally
        {
            foreach (var (_, t) in list) t.Dispose();
        }
        return path;
    }

    private static (string, int[])[] Pair(string module, int rank = 4, int inF = 128, int outF = 128, string prefix = "transformer.") =>
        [($"{prefix}{module}.lora_A.weight", [rank, inF]), ($"{prefix}{module}.lora_B.weight", [outF, rank])];

    [Fact]
    public void MissingFileFolderPickleAndNonSafetensorsAreRefused()
    {
        using var dir = new TempDir();
        Assert.Contains("not found", Refused(() => LoraAdapter.Open(Path.Combine(dir.Path, "nope.safetensors"))).Message);
        Assert.Contains("is a folder", Refused(() => LoraAdapter.Open(dir.Path)).Message);
        var pickle = Path.Combine(dir.Path, "style.bin");
        File.WriteAllBytes(pickle, [1, 2, 3]);
        Assert.Contains("pickle", Refused(() => LoraAdapter.Open(pickle)).Message);
        var text = Path.Combine(dir.Path, "style.safetensors");
        File.WriteAllText(text, "this is not a safetensors file at all, just text long enough");
        Assert.Contains("not a readable safetensors file", Refused(() => LoraAdapter.Open(text)).Message);
    }

    [Fact]
    public void AKeyMatchingNoLayerNamesItAndTheNearestLayer()
    {
        using var dir = new TempDir();
        var file = WriteLora(dir, "typo.safetensors", Pair("transformer_blocks.0.attn1.to_qq"));
        var e = Refused(() => Validate2b(Open2b(file)));
        Assert.Contains("transformer.transformer_blocks.0.attn1.to_qq.lora_A.weight", e.Message);
        Assert.Contains("the nearest is 'transformer_blocks.0.attn1.to_q'", e.Message);
    }

    [Fact]
    public void ALoraForALargerModelSaysSo()
    {
        using var dir = new TempDir();
        var file = WriteLora(dir, "5b_only.safetensors", Pair("transformer_blocks.41.attn1.to_q"));
        var e = Refused(() => Validate2b(Open2b(file)));
        Assert.Contains("made for a larger model", e.Message);
        Assert.Contains("block 41", e.Message);
    }

    [Fact]
    public void AShapeMismatchNamesTheLayerAndBothShapes()
    {
        using var dir = new TempDir();
        var file = WriteLora(dir, "wide.safetensors", Pair("transformer_blocks.0.attn1.to_q", inF: 1920, outF: 1920));
        var e = Refused(() => Validate2b(Open2b(file)));
        Assert.Contains("transformer_blocks.0.attn1.to_q", e.Message);
        Assert.Contains("[128, 128]", e.Message);
        Assert.Contains("[4, 1920]", e.Message);
        Assert.Contains("made for another model", e.Message);
        // And the pipeline refuses it before any weights are loaded.
        using var pipeline = new CogVideoXPipeline(ModelFolder.Open(Fixtures.Path2b));
        Refused(() => pipeline.Resolve(new GenerationRequest { Prompt = "x", Frames = 9, Height = 32, Width = 48, Lora = [new LoraSpec(file)] }));
        Assert.False(pipeline.IsLoaded(ModelComponent.Transformer));
    }

    [Fact]
    public void ANonLinearLayerIsRefused()
    {
        using var dir = new TempDir();
        var conv = WriteLora(dir, "conv.safetensors", [("transformer.patch_embed.proj.lora_A.weight", [4, 4, 2, 2]), ("transformer.patch_embed.proj.lora_B.weight", [128, 4, 1, 1])]);
        var convError = Refused(() => Open2b(conv)).Message;
        Assert.True(convError.Contains("convolution LoRA", StringComparison.Ordinal), convError);
        var norm = WriteLora(dir, "norm.safetensors", Pair("norm_final", inF: 128, outF: 128));
        Assert.Contains("'norm_final' is not a linear layer", Refused(() => Validate2b(Open2b(norm))).Message);
    }

    [Fact]
    public void KeysDiffusersWouldNotReadAreRefusedByName()
    {
        using var dir = new TempDir();
        var alpha = WriteLora(dir, "alpha.safetensors", Pair("transformer_blocks.0.attn1.to_q").Append(("transformer.transformer_blocks.0.attn1.to_q.alpha", [])));
        var e = Refused(() => LoraAdapter.Open(alpha));
        Assert.Contains("transformer.transformer_blocks.0.attn1.to_q.alpha", e.Message);
        Assert.Contains("alpha tensor", e.Message);
        var unprefixed = WriteLora(dir, "bare.safetensors", Pair("transformer_blocks.0.attn1.to_q", prefix: ""));
        e = Refused(() => LoraAdapter.Open(unprefixed));
        Assert.Contains("'transformer_blocks.0.attn1.to_q.lora_A.weight' without the 'transformer.' prefix", e.Message);
        var textEncoder = WriteLora(dir, "te.safetensors", Pair("encoder.block.0.layer.0.SelfAttention.q", prefix: "text_encoder."));
        Assert.Contains("made for another model", Refused(() => LoraAdapter.Open(textEncoder)).Message);
        var model = WriteLora(dir, "model.safetensors", [("transformer.proj_out.weight", [16, 128])]);
        Assert.Contains("not a LoRA weight", Refused(() => LoraAdapter.Open(model)).Message);
        var dora = WriteLora(dir, "dora.safetensors", Pair("proj_out", outF: 16).Append(("transformer.proj_out.lora_magnitude_vector", [16])));
        Assert.Contains("DoRA", Refused(() => LoraAdapter.Open(dora)).Message);
        var halfPair = WriteLora(dir, "half.safetensors", [("transformer.proj_out.lora_A.weight", [4, 128])]);
        Assert.Contains("no lora_B", Refused(() => LoraAdapter.Open(halfPair)).Message);
        var ranks = WriteLora(dir, "ranks.safetensors", [("transformer.proj_out.lora_A.weight", [4, 128]), ("transformer.proj_out.lora_B.weight", [16, 2])]);
        Assert.Contains("ranks differ", Refused(() => LoraAdapter.Open(ranks)).Message);
        var empty = WriteLora(dir, "empty.safetensors", []);
        Assert.Contains("holds no tensors", Refused(() => LoraAdapter.Open(empty)).Message);
    }

    [Fact]
    public void MetadataThatDisagreesWithTheTensorsIsRefused()
    {
        using var dir = new TempDir();
        var wrongRank = WriteLora(dir, "r.safetensors", Pair("proj_out", outF: 16),
            new Dictionary<string, string> { ["lora_adapter_metadata"] = "{\"transformer.r\": 8, \"transformer.lora_alpha\": 8}" });
        var e = Refused(() => LoraAdapter.Open(wrongRank));
        Assert.Contains("rank 4", e.Message);
        Assert.Contains("r = 8", e.Message);
        var badJson = WriteLora(dir, "j.safetensors", Pair("proj_out", outF: 16), new Dictionary<string, string> { ["lora_adapter_metadata"] = "{not json" });
        Assert.Contains("not valid JSON", Refused(() => LoraAdapter.Open(badJson)).Message);
        var badAlpha = WriteLora(dir, "a.safetensors", Pair("proj_out", outF: 16),
            new Dictionary<string, string> { ["lora_adapter_metadata"] = "{\"transformer.r\": 4, \"transformer.lora_alpha\": \"big\"}" });
        Assert.Contains("lora_alpha", Refused(() => LoraAdapter.Open(badAlpha)).Message);
        // A rank_pattern that gives the layer its real rank is fine, and alpha_pattern sets its scale.
        var patterned = WriteLora(dir, "p.safetensors", Pair("proj_out", outF: 16),
            new Dictionary<string, string> { ["lora_adapter_metadata"] = "{\"transformer.r\": 8, \"transformer.lora_alpha\": 8, \"transformer.rank_pattern\": {\"proj_out\": 4}, \"transformer.alpha_pattern\": {\"^proj_out\": 2}}" });
        Assert.Equal(0.5, LoraAdapter.Open(patterned).Layers.Single().Scale);
    }

    [Theory]
    [InlineData("style.safetensors", "style.safetensors", 1.0)]
    [InlineData("style.safetensors:0.8", "style.safetensors", 0.8)]
    [InlineData("dir/style.safetensors:-0.5", "dir/style.safetensors", -0.5)]
    [InlineData("C:\\loras\\style.safetensors", "C:\\loras\\style.safetensors", 1.0)]
    [InlineData("C:\\loras\\style.safetensors:1.5", "C:\\loras\\style.safetensors", 1.5)]
    [InlineData(" style.safetensors:1e-1 ", "style.safetensors", 0.1)]
    public void SpecsParseFileAndStrength(string text, string file, double strength)
    {
        var spec = LoraSpec.Parse(text);
        Assert.Equal(file, spec.File);
        Assert.Equal(strength, spec.Strength, 12);
        Assert.Equal(spec, LoraSpec.Parse(spec.ToString()));
    }

    [Theory]
    [InlineData("style.safetensors:strong", "is not a number")]
    [InlineData("style.safetensors:", "is not a number")]
    [InlineData("style.safetensors:NaN", "finite number")]
    [InlineData("style.safetensors:Infinity", "finite number")]
    [InlineData(":0.5", "names no file")]
    [InlineData("  ", "empty value")]
    public void BadSpecsSayWhatIsAllowed(string text, string message)
    {
        Assert.Contains(message, Refused(() => LoraSpec.Parse(text)).Message);
    }
}
