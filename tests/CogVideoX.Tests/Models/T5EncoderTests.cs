using CogVideoX.Engine;
using CogVideoX.Models.Text;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Models;

public class T5EncoderTests
{
    /// <summary>The README's CPU float32 bound for model outputs (relative to max(1, max |reference|)).</summary>
    private const double Float32Tolerance = 1e-4;

    /// <summary>The README's bound for half-precision model outputs.</summary>
    private const double HalfTolerance = 2e-2;

    private static readonly string ShardedBf16Folder = Fixtures.GoldenFile("weights_fp16_sharded", "text_encoder");

    private readonly ITestOutputHelper _output;

    public T5EncoderTests(ITestOutputHelper output) => _output = output;

    private static string TextEncoderFolder(string pipeline) => Path.Combine(pipeline, "text_encoder");

    [Theory]
    [MemberData(nameof(TextFixtures.RunTags), MemberType = typeof(TextFixtures))]
    public void GoldenRunEmbeddingsMatch(string tag)
    {
        var run = TextFixtures.RunByTag(tag);
        using var golden = Fixtures.Load(run.TensorsPath);
        using var encoder = T5Encoder.Load(TextEncoderFolder(run.Pipeline), CpuBackend.Instance, DType.F32);
        using var prompt = encoder.Forward(golden["prompt_ids"]);
        using var negative = encoder.Forward(golden["negative_ids"]);
        double e1 = Compare.AssertClose(golden["prompt_embeds"], prompt, Float32Tolerance, $"{tag} prompt_embeds");
        double e2 = Compare.AssertClose(golden["negative_embeds"], negative, Float32Tolerance, $"{tag} negative_embeds");
        _output.WriteLine($"{tag}: prompt_embeds max abs error {e1:E3} (max |ref| {MaxAbs(golden["prompt_embeds"]):G4}), negative_embeds {e2:E3} (max |ref| {MaxAbs(golden["negative_embeds"]):G4})");

        // The same through the tokenizer, as the pipeline runs it.
        var tokenizer = T5Tokenizer.Load(Path.Combine(run.Pipeline, "tokenizer"));
        using var fromText = encoder.Encode(tokenizer.Tokenize(run.Prompt, 226));
        Assert.Equal(prompt.ToFloatArray(), fromText.ToFloatArray());
    }

    [Fact]
    public void BatchOfTwoEqualsTwoSingleCalls()
    {
        var run = TextFixtures.RunByTag("cat_neg_s999");
        using var golden = Fixtures.Load(run.TensorsPath);
        using var encoder = T5Encoder.Load(TextEncoderFolder(run.Pipeline), CpuBackend.Instance, DType.F32);
        using var ids = Ops.Concat(0, golden["negative_ids"], golden["prompt_ids"]);
        using var both = encoder.Forward(ids);
        Assert.Equal(new[] { 2, 226, 64 }, both.ShapeArray());
        using var first = both.Narrow(0, 0, 1);
        using var second = both.Narrow(0, 1, 1);
        Compare.AssertClose(golden["negative_embeds"], first, Float32Tolerance, "batch row 0");
        Compare.AssertClose(golden["prompt_embeds"], second, Float32Tolerance, "batch row 1");
    }

    /// <summary>The float32 checkpoint in <paramref name="source"/> with every weight rounded to bfloat16 (round to nearest even), written as float32.</summary>
    private static List<(string Name, int[] Shape, float[] Values)> WriteRoundedToBf16(string source, string folder)
    {
        var rounded = new List<(string, int[], float[])>();
        using (var f32 = Checkpoint.Open(source))
        {
            foreach (var name in f32.Names.OrderBy(n => n, StringComparer.Ordinal))
            {
                using var t = f32.Load(name);
                var values = t.ToFloatArray();
                for (int i = 0; i < values.Length; i++) values[i] = DTypes.BF16ToFloat(DTypes.FloatToBF16(values[i]));
                rounded.Add((name, t.ShapeArray(), values));
            }
        }
        SafetensorsWriter.WriteF32(Path.Combine(folder, "model.safetensors"), rounded);
        File.Copy(Path.Combine(source, "config.json"), Path.Combine(folder, "config.json"));
        return rounded;
    }

    [Fact]
    public void HalfStoredWoIsKeptInItsTypeAndGivesTheFloat32Result()
    {
        // Under F16, wo runs in float32. A checkpoint storing it in a half type keeps it so (half the memory) and widens
        // it per call; the product must be bit for bit what the same values stored as float32 give.
        var run = TextFixtures.RunByTag("cat_neg_s999");
        using var golden = Fixtures.Load(run.TensorsPath);
        using var temp = new TempFolder();
        WriteRoundedToBf16(TextEncoderFolder(run.Pipeline), temp.Path);
        using var stored = T5Encoder.Load(ShardedBf16Folder, CpuBackend.Instance, DType.F16);
        using var widened = T5Encoder.Load(temp.Path, CpuBackend.Instance, DType.F16);
        Assert.Equal(DType.BF16, stored.Blocks[0].Layer1.DenseReluDense.Wo.DType);
        Assert.Equal(DType.F32, widened.Blocks[0].Layer1.DenseReluDense.Wo.DType);
        Assert.Equal(DType.F16, stored.Blocks[0].Layer1.DenseReluDense.Wi0!.DType);
        using var a = stored.Forward(golden["prompt_ids"]);
        using var b = widened.Forward(golden["prompt_ids"]);
        Assert.Equal(DType.F16, a.DType);
        Assert.Equal(b.ToFloatArray(), a.ToFloatArray());
        Compare.AssertClose(golden["prompt_embeds"], a, HalfTolerance, "F16 with bf16-stored wo");
    }

    [Fact]
    public void ShardedBf16CheckpointEqualsFloat32WeightsRoundedToBf16()
    {
        var run = TextFixtures.RunByTag("cat_neg_s999");
        using var golden = Fixtures.Load(run.TensorsPath);
        using var temp = new TempFolder();
        var rounded = WriteRoundedToBf16(TextEncoderFolder(run.Pipeline), temp.Path);

        // The published layout: shards + index, stored as bf16, loaded and widened to float32.
        using var sharded = T5Encoder.Load(ShardedBf16Folder, CpuBackend.Instance, DType.F32);
        using var reference = T5Encoder.Load(temp.Path, CpuBackend.Instance, DType.F32);
        using (var ckpt = Checkpoint.Open(ShardedBf16Folder))
        {
            Assert.True(ckpt.Files.Count > 1, "the fixture is sharded");
            foreach (var (name, _, values) in rounded)
            {
                Assert.Equal(DType.BF16, ckpt.Entry(name).DType);
                using var stored = ckpt.Load(name, CpuBackend.Instance, DType.F32);
                Assert.Equal(values, stored.ToFloatArray());
            }
        }

        foreach (var (idsKey, embedsKey) in new[] { ("prompt_ids", "prompt_embeds"), ("negative_ids", "negative_embeds") })
        {
            using var fromShards = sharded.Forward(golden[idsKey]);
            using var fromRounded = reference.Forward(golden[idsKey]);
            double same = Compare.AssertClose(fromRounded, fromShards, Float32Tolerance, $"sharded bf16 vs rounded f32 ({embedsKey})");
            // Against the unrounded model: bf16 keeps 8 significant bits, a relative error of at most 2⁻⁹ per
            // weight; through two layers and the norms this stays well inside the half-precision bound.
            double vsF32 = Compare.AssertClose(golden[embedsKey], fromShards, HalfTolerance, $"bf16 weights vs float32 golden ({embedsKey})");
            Assert.True(vsF32 > 1e-5, "rounding the weights to bf16 must change the embeddings; otherwise this test compares nothing");
            _output.WriteLine($"{embedsKey}: sharded bf16 vs self-rounded f32 {same:E3}; vs float32 golden {vsF32:E3}");
        }
    }

    [Theory]
    [InlineData(DType.F16)]
    [InlineData(DType.BF16)]
    public void HalfPrecisionStaysWithinTheHalfBound(DType dtype)
    {
        var run = TextFixtures.RunByTag("cat_neg_s999");
        using var golden = Fixtures.Load(run.TensorsPath);
        using var encoder = T5Encoder.Load(TextEncoderFolder(run.Pipeline), CpuBackend.Instance, dtype);
        // transformers keeps wo in float32 for float16 (T5's _keep_in_fp32_modules), not for bfloat16; this
        // checkpoint stores float32, so under F16 wo stays float32.
        var wo = encoder.Blocks[0].Layer1.DenseReluDense.Wo;
        Assert.Equal(dtype == DType.F16 ? DType.F32 : dtype, wo.DType);
        using var output = encoder.Forward(golden["prompt_ids"]);
        Assert.Equal(dtype, output.DType);
        double err = Compare.AssertClose(golden["prompt_embeds"], output, HalfTolerance, $"{dtype.Name()} prompt_embeds");
        _output.WriteLine($"{dtype.Name()}: max abs error {err:E3}");
    }

    [Fact]
    public void RelativePositionBucketsAreTransformers()
    {
        const int buckets = 32, maxDistance = 128;
        int B(int relative) => T5Encoder.RelativePositionBucket(relative, bidirectional: true, buckets, maxDistance);
        // Exact below max_exact = 8; keys after the query use the upper 16 buckets.
        for (int d = 0; d < 8; d++)
        {
            Assert.Equal(d, B(-d));
            Assert.Equal(d == 0 ? 0 : 16 + d, B(d));
        }
        // Powers of two land exactly on boundaries: 8 + 8·log(n/8)/log(16) = 8, 10, 12, 14 and then the cap 15.
        Assert.Equal(8, B(-8));
        Assert.Equal(10, B(-16));
        Assert.Equal(12, B(-32));
        Assert.Equal(14, B(-64));
        Assert.Equal(15, B(-128));
        Assert.Equal(15, B(-225));
        Assert.Equal(16 + 14, B(64));
        Assert.Equal(16 + 15, B(500));
        // Away from boundaries the formula in double precision agrees.
        for (int n = 8; n < 200; n++)
        {
            if ((n & (n - 1)) == 0) continue;
            int expected = Math.Min(15, 8 + (int)(Math.Log(n / 8.0) / Math.Log(16.0) * 8));
            Assert.Equal(expected, B(-n));
            Assert.Equal(16 + expected, B(n));
        }
        var table = T5Encoder.RelativePositionBuckets(3, 4, true, buckets, maxDistance);
        Assert.Equal(new[] { 0, 17, 18, 19, 1, 0, 17, 18, 2, 1, 0, 17 }, table);
    }

    [Fact]
    public void HalfStreamWithInfinityIsClampedAsTransformersDoes()
    {
        using var finite = Tensor.FromArray(new[] { 1f, -60000f, 3f }, new[] { 3 }, dtype: DType.F16);
        Assert.Same(finite, T5Encoder.ClampIfHalfOverflow(finite));
        using var overflow = Tensor.FromArray(new[] { float.PositiveInfinity, -60000f, float.NegativeInfinity, 65504f }, new[] { 4 }, dtype: DType.F16);
        using var clamped = T5Encoder.ClampIfHalfOverflow(overflow);
        // ±(65504 − 1000) stored as float16 is ±64512.
        Assert.Equal(new[] { 64512f, -60000f, -64512f, 64512f }, clamped.ToFloatArray());
        using var single = Tensor.FromArray(new[] { float.PositiveInfinity }, new[] { 1 });
        Assert.Same(single, T5Encoder.ClampIfHalfOverflow(single));
    }

    [Fact]
    public void DisposeReleasesTheWeights()
    {
        var encoder = T5Encoder.Load(TextEncoderFolder(Fixtures.Path2b), CpuBackend.Instance, DType.F32);
        var embedding = encoder.EmbedTokens;
        var wo = encoder.Blocks[1].Layer1.DenseReluDense.Wo;
        encoder.Dispose();
        Assert.True(embedding.IsDisposed);
        Assert.True(wo.IsDisposed);
        using var ids = Tensor.FromArray(new long[] { 1 }, new[] { 1, 1 });
        Assert.Throws<ObjectDisposedException>(() => encoder.Forward(ids));
    }

    [Fact]
    public void ForeignTokenIdsAreRefusedWithAMessage()
    {
        using var encoder = T5Encoder.Load(TextEncoderFolder(Fixtures.Path2b), CpuBackend.Instance, DType.F32);
        var prompt = new TokenizedPrompt("x", new long[] { 5000, 1 }, new long[] { 1, 1 }, 2, 2, null);
        var e = Assert.Throws<CogVideoXException>(() => encoder.Encode(prompt));
        Assert.Contains("5000", e.Message);
        Assert.Contains("2100", e.Message);
    }

    [Fact]
    public void EmbeddingMayBeStoredAsEncoderEmbedTokens()
    {
        var source = TextEncoderFolder(Fixtures.Path2b);
        var tensors = new List<(string Name, int[] Shape, float[] Data)>();
        using (var ckpt = Checkpoint.Open(source))
        {
            foreach (var name in ckpt.Names.OrderBy(n => n, StringComparer.Ordinal))
            {
                using var t = ckpt.Load(name);
                tensors.Add((name == "shared.weight" ? "encoder.embed_tokens.weight" : name, t.ShapeArray(), t.ToFloatArray()));
            }
        }
        using var renamed = new TempFolder();
        SafetensorsWriter.WriteF32(Path.Combine(renamed.Path, "model.safetensors"), tensors);
        File.Copy(Path.Combine(source, "config.json"), Path.Combine(renamed.Path, "config.json"));
        using var ids = Tensor.FromArray(new long[] { 81, 162, 322, 1, 0, 0 }, new[] { 1, 6 });
        using (var original = T5Encoder.Load(source, CpuBackend.Instance, DType.F32))
        using (var fromRenamed = T5Encoder.Load(renamed.Path, CpuBackend.Instance, DType.F32))
        using (var expected = original.Forward(ids))
        using (var actual = fromRenamed.Forward(ids))
            Assert.Equal(expected.ToFloatArray(), actual.ToFloatArray());

        using var missing = new TempFolder();
        SafetensorsWriter.WriteF32(Path.Combine(missing.Path, "model.safetensors"), tensors.Where(t => !t.Name.Contains("embed_tokens", StringComparison.Ordinal)).ToList());
        File.Copy(Path.Combine(source, "config.json"), Path.Combine(missing.Path, "config.json"));
        var e = Assert.Throws<WeightsException>(() => T5Encoder.Load(missing.Path, CpuBackend.Instance, DType.F32));
        Assert.Contains("shared.weight", e.Message);
        Assert.Contains("[2100, 64]", e.Message);
    }

    [Fact]
    public void MissingFolderIsNamed()
    {
        var e = Assert.Throws<WeightsException>(() => T5Encoder.Load("/nonexistent/text_encoder", CpuBackend.Instance, DType.F32));
        Assert.Contains("/nonexistent/text_encoder", e.Message);
    }

    [Fact]
    public void MissingLayerNamesTheTensor()
    {
        var e = Refused(config => config.Replace("\"num_layers\": 2", "\"num_layers\": 3", StringComparison.Ordinal));
        Assert.Contains("encoder.block.2.layer.0.SelfAttention.q.weight", e.Message);
    }

    [Fact]
    public void ConfigNotMatchingTheWeightsNamesShapes()
    {
        var e = Refused(config => config.Replace("\"d_ff\": 96", "\"d_ff\": 128", StringComparison.Ordinal));
        Assert.Contains("encoder.block.0.layer.1.DenseReluDense.wi_0.weight", e.Message);
        Assert.Contains("[96, 64]", e.Message);
        Assert.Contains("[128, 64]", e.Message);
    }

    [Fact]
    public void UnsupportedActivationIsNamed()
    {
        var e = Refused(config => config.Replace("\"dense_act_fn\": \"gelu_new\"", "\"dense_act_fn\": \"mish\"", StringComparison.Ordinal));
        Assert.Contains("'mish'", e.Message);
    }

    /// <summary>The error loading a copy of the tiny text encoder whose config.json <paramref name="editConfig"/> changed.</summary>
    private static WeightsException Refused(Func<string, string> editConfig)
    {
        using var dir = CopyTextEncoder(editConfig);
        return Assert.Throws<WeightsException>(() => T5Encoder.Load(dir.Path, CpuBackend.Instance, DType.F32));
    }

    private static TempFolder CopyTextEncoder(Func<string, string> editConfig)
    {
        var dir = new TempFolder();
        var source = TextEncoderFolder(Fixtures.Path2b);
        foreach (var f in Directory.GetFiles(source))
            File.Copy(f, Path.Combine(dir.Path, Path.GetFileName(f)));
        var config = Path.Combine(dir.Path, "config.json");
        var text = File.ReadAllText(config);
        var edited = editConfig(text);
        Assert.NotEqual(text, edited);
        File.WriteAllText(config, edited);
        return dir;
    }

    private static float MaxAbs(Tensor t) => t.ToFloatArray().Max(MathF.Abs);
}
