using CogVideoX.Engine;
using CogVideoX.Models.Transformer;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Models;

public class TransformerTests
{
    private const double Tolerance = 1e-4;

    private readonly ITestOutputHelper _output;

    public TransformerTests(ITestOutputHelper output) => _output = output;

    private static string TransformerFolder(string style) => Fixtures.GoldenFile(style, "transformer");

    /// <summary>Every transformer call of a golden run, given that call's inputs: the README's model-output rule.</summary>
    [Theory]
    [MemberData(nameof(FixtureRuns.GoldenStylesAndTags), MemberType = typeof(FixtureRuns))]
    public void MatchesEveryStepOfGoldenRun(string style, string run)
    {
        using var model = CogVideoXTransformer.Load(TransformerFolder(style), CpuBackend.Instance, DType.F32);
        var tensors = Fixtures.LoadAll(Fixtures.GoldenFile(style, "runs", run + ".safetensors"));
        try
        {
            int steps = tensors.Keys.Count(k => k.StartsWith("transformer_in_step", StringComparison.Ordinal));
            Assert.True(steps > 0);
            double worst = 0;
            for (int step = 0; step < steps; step++)
            {
                var input = tensors[$"transformer_in_step{step}"];
                var expected = tensors[$"transformer_out_step{step}"];
                float[] timesteps = Array.ConvertAll(tensors[$"timestep_step{step}"].ToLongArray(), t => (float)t);
                using var text = input.Dim(0) == 2
                    ? Ops.Concat(0, tensors["negative_embeds"], tensors["prompt_embeds"])
                    : tensors["prompt_embeds"].Alias();
                using var rotary = model.Config.UseRotaryPositionalEmbeddings
                    ? model.BuildRotaryTables(input.Dim(1), input.Dim(3), input.Dim(4))
                    : null;
                using var actual = model.Forward(input, text, timesteps, rotary);
                double err = Compare.AssertClose(expected, actual, Tolerance, $"{run} step {step}");
                _output.WriteLine($"{run} step {step}: batch {input.Dim(0)}, t = {string.Join(",", timesteps)}, max abs error {err:E3} (max |ref| {expected.ToFloatArray().Max(Math.Abs):G4})");
                worst = Math.Max(worst, err);
            }
            _output.WriteLine($"{run}: largest error {worst:E3} over {steps} calls");
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    [Fact]
    public void ParameterListIsTheCheckpointAndTheLoadersReads()
    {
        foreach (var style in new[] { "pipeline_2b_style", "pipeline_5b_style" })
        {
            var config = TransformerConfig.Load(Path.Combine(TransformerFolder(style), "config.json"));
            var declared = CogVideoXTransformer.ParameterShapes(config);
            using var file = SafetensorsFile.Open(Path.Combine(TransformerFolder(style), "diffusion_pytorch_model.safetensors"));
            Assert.Equal(
                file.Entries.Keys.OrderBy(k => k, StringComparer.Ordinal),
                declared.Select(p => p.Name).OrderBy(k => k, StringComparer.Ordinal));
            foreach (var (name, shape) in declared)
                Assert.True(file.Entry(name).Shape.SequenceEqual(shape), $"{style}: {name}");
            // The loader reads every tensor of the checkpoint (and no other: a missing one would have thrown).
            using var checkpoint = Checkpoint.Open(TransformerFolder(style));
            using var model = new CogVideoXTransformer(config, checkpoint.Scope(CpuBackend.Instance, DType.F32));
            Assert.Empty(checkpoint.UnloadedNames());
            Assert.Equal(file.Entries.Values.Sum(e => e.ElementCount) * 4, model.WeightBytes);
        }
    }

    [Fact]
    public void BuildsFromTheImageToVideoConfig()
    {
        // real_configs/CogVideoX-5b-I2V (derived from diffusers' conversion script, see its PROVENANCE.md).
        var config = TransformerConfig.Load(Fixtures.GoldenFile("real_configs", "CogVideoX-5b-I2V", "transformer", "config.json"));
        Assert.Equal(("rotary+learned", 32, 16), (config.PositionalEmbedding, config.InChannels, config.OutputChannels));
        var shapes = CogVideoXTransformer.ParameterShapes(config).ToDictionary(p => p.Name, p => p.Shape);
        Assert.Equal([3072, 32, 2, 2], shapes["patch_embed.proj.weight"]);
        Assert.Equal([1, 226 + 13 * 30 * 45, 3072], shapes["patch_embed.pos_embedding"]);
        Assert.Equal([64, 3072], shapes["proj_out.weight"]);
        Assert.Equal(24 * 42 + 17, shapes.Count);
    }

    [Theory]
    [InlineData("CogVideoX-2b", 30, 30, 1920, false)]
    [InlineData("CogVideoX-5b", 42, 48, 3072, true)]
    public void BuildsFromPublishedConfigs(string name, int layers, int heads, int hidden, bool rotary)
    {
        var config = TransformerConfig.Load(Fixtures.GoldenFile("real_configs", name, "transformer", "config.json"));
        var shapes = CogVideoXTransformer.ParameterShapes(config).ToDictionary(p => p.Name, p => p.Shape);
        Assert.Equal(rotary, config.UseRotaryPositionalEmbeddings);
        Assert.Equal([hidden, 16, 2, 2], shapes["patch_embed.proj.weight"]);
        Assert.Equal([hidden, 4096], shapes["patch_embed.text_proj.weight"]);
        Assert.Equal([512, hidden], shapes["time_embedding.linear_1.weight"]);
        Assert.Equal([6 * hidden, 512], shapes[$"transformer_blocks.{layers - 1}.norm1.linear.weight"]);
        Assert.Equal([64], shapes[$"transformer_blocks.{layers - 1}.attn1.norm_k.weight"]);
        Assert.Equal([4 * hidden, hidden], shapes[$"transformer_blocks.{layers - 1}.ff.net.0.proj.weight"]);
        Assert.False(shapes.ContainsKey($"transformer_blocks.{layers}.norm1.linear.weight"));
        Assert.Equal([2 * hidden, 512], shapes["norm_out.linear.weight"]);
        Assert.Equal([64, hidden], shapes["proj_out.weight"]);
        Assert.Equal(heads * 64, hidden);
        // 24 tensors per block and 16 outside them.
        Assert.Equal(24 * layers + 16, shapes.Count);
        // The published transformers are the "2B" and "5B" of the model names (about 1.7 and 5.6 billion parameters).
        long count = shapes.Values.Sum(s => s.Aggregate(1L, (a, d) => a * d));
        _output.WriteLine($"{name}: {count:N0} parameters");
        Assert.InRange(count, rotary ? 5.5e9 : 1.65e9, rotary ? 5.6e9 : 1.72e9);
        // The rotary and sincos tables for the published size build without weights.
        if (rotary)
        {
            using var tables = RotaryTables.Build(config, 13, 60, 90, CpuBackend.Instance, DType.F32);
            Assert.Equal([13 * 30 * 45, 64], tables.Cos.ShapeArray());
        }
        else
        {
            Assert.Equal(13L * 30 * 45 * hidden, SincosPositionalEmbedding.Compute(hidden, 13, 30, 45, 1.875, 1.0).Length);
        }
    }

    [Fact]
    public void HalfPrecisionShardedWeightsRunWithinTheGpuTolerance()
    {
        // The float16 shards of the 2b-style transformer, with float16 activations between kernels.
        using var model = CogVideoXTransformer.Load(Fixtures.GoldenFile("weights_fp16_sharded", "transformer"), CpuBackend.Instance, DType.F16);
        var tensors = Fixtures.LoadAll(Fixtures.GoldenFile("pipeline_2b_style", "runs", "panda_s42.safetensors"));
        try
        {
            using var text = Ops.Concat(0, tensors["negative_embeds"], tensors["prompt_embeds"]);
            float[] timesteps = Array.ConvertAll(tensors["timestep_step0"].ToLongArray(), t => (float)t);
            using var actual = model.Forward(tensors["transformer_in_step0"], text, timesteps);
            Assert.Equal(DType.F16, actual.DType);
            double err = Compare.AssertClose(tensors["transformer_out_step0"], actual, 2e-2, "fp16 step 0");
            _output.WriteLine($"fp16 weights and activations: max abs error {err:E3}");
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    [Theory]
    [InlineData("\"patch_size_t\": null", "\"patch_size_t\": 2", "has shape [128, 4, 2, 2], expected [128, 32]")]
    [InlineData("\"ofs_embed_dim\": null", "\"ofs_embed_dim\": 512", "ofs_embed_dim 512 must equal time_embed_dim 32")]
    [InlineData("\"use_learned_positional_embeddings\": false", "\"use_learned_positional_embeddings\": true", "1 missing ('patch_embed.pos_embedding')")]
    [InlineData("\"activation_fn\": \"gelu-approximate\"", "\"activation_fn\": \"geglu\"", "activation_fn \"geglu\"")]
    [InlineData("\"num_layers\": 2", "\"num_layers\": 3", "24 missing ('transformer_blocks.2.")]
    [InlineData("\"num_layers\": 2", "\"num_layers\": 1", "not used by this config ('transformer_blocks.1.")]
    [InlineData("\"attention_head_dim\": 64", "\"attention_head_dim\": 32", "has shape [128, 4, 2, 2], expected [64, 4, 2, 2]")]
    public void RefusesConfigsItCannotRun(string find, string replace, string message)
    {
        var e = EditedTransformer.LoadError(TransformerFolder("pipeline_5b_style"), find, replace);
        Assert.Contains(message, e.Message);
        _output.WriteLine(e.Message);
    }

    [Fact]
    public void RefusesInputsItCannotRun()
    {
        using var sincos = CogVideoXTransformer.Load(TransformerFolder("pipeline_2b_style"), CpuBackend.Instance, DType.F32);
        using var rotaryModel = CogVideoXTransformer.Load(TransformerFolder("pipeline_5b_style"), CpuBackend.Instance, DType.F32);
        using var latents = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 3, 4, 4, 6);
        using var text = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 226, 64);
        float[] t = [999f];

        void Refused(string expected, Action call)
        {
            var e = Assert.Throws<CogVideoXException>(call);
            Assert.Contains(expected, e.Message);
            _output.WriteLine(e.Message);
        }

        using (var wrongChannels = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 3, 16, 4, 6))
            Refused("latents must be [batch, frames, 4, height, width]", () => sincos.Forward(wrongChannels, text, t));
        using (var odd = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 3, 4, 5, 6))
            Refused("multiples of 2", () => sincos.Forward(odd, text, t));
        using (var shortText = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 100, 64))
            Refused("exactly 226 text tokens", () => sincos.Forward(latents, shortText, t));
        using (var wideText = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 226, 32))
            Refused("text embeddings must be [1, tokens, 64]", () => sincos.Forward(latents, wideText, t));
        Refused("2 timesteps for a batch of 1", () => sincos.Forward(latents, text, [999f, 999f]));
        Refused("uses 3D rotary positions", () => rotaryModel.Forward(latents, text, t));
        using (var tables = rotaryModel.BuildRotaryTables(5, 4, 6))
            Refused("rebuild them for this size", () => rotaryModel.Forward(latents, text, t, tables));
        using (var tables = rotaryModel.BuildRotaryTables(3, 4, 6))
            Refused("takes no rotary tables", () => sincos.Forward(latents, text, t, tables));
        Refused("takes no rotary tables", () => RotaryTables.Build(sincos.Config, 3, 4, 6, CpuBackend.Instance, DType.F32));
        Refused("must be multiples of 2", () => rotaryModel.BuildRotaryTables(3, 4, 7));
        sincos.Dispose();
        Assert.Throws<ObjectDisposedException>(() => sincos.Forward(latents, text, t));
    }
}
