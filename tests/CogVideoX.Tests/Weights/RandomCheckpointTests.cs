using CogVideoX.Engine;
using CogVideoX.Models.Text;
using CogVideoX.Models.Transformer;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Weights;

/// <summary>Random checkpoints (the benchmarks' full-size models without files): deterministic, shaped, scaled.</summary>
public class RandomCheckpointTests
{
    private static TransformerConfig Config5b() => TransformerConfig.Load(Path.Combine(Fixtures.Path5b, "transformer", "config.json"));

    [Fact]
    public void DeclaredShapesBuildTheModelWithTheSameValuesEveryTime()
    {
        var config = Config5b();
        float[] Weights()
        {
            using var checkpoint = Checkpoint.Random("random", 7, CogVideoXTransformer.ParameterShapes(config));
            Assert.True(checkpoint.IsRandom);
            Assert.Equal(CogVideoXTransformer.ParameterShapes(config).Count, checkpoint.Count);
            using var model = new CogVideoXTransformer(config, checkpoint.Scope(CpuBackend.Instance, DType.F32));
            using var t = checkpoint.Scope(CpuBackend.Instance, DType.F32).Get("proj_out.weight");
            return t.ToFloatArray();
        }
        Assert.Equal(Weights(), Weights());
    }

    [Fact]
    public void RandomWeightFilesHoldTheRandomCheckpointsValues()
    {
        // One distribution: a file written for benchmarks (RandomModelFolder) reads back as the random checkpoint of
        // the same seed, whatever the dtype.
        var tensors = CogVideoXTransformer.ParameterShapes(Config5b()).Take(6).ToList();
        using var dir = new TempFolder();
        foreach (var dtype in new[] { DType.F32, DType.F16 })
        {
            var path = Path.Combine(dir.Path, $"random-{dtype}.safetensors");
            RandomWeights.WriteFile(path, tensors, dtype, seed: 3);
            using var file = Checkpoint.Open(path);
            using var random = Checkpoint.Random("random", 3, tensors);
            Assert.Equal(tensors.Select(t => t.Name).Order(StringComparer.Ordinal), file.Names);
            foreach (var (name, shape) in tensors)
            {
                using var written = file.Load(name);
                using var made = random.Scope(CpuBackend.Instance, dtype).Get(name, shape);
                Assert.Equal(dtype, written.DType);
                Assert.Equal(made.ToFloatArray(), written.ToFloatArray());
            }
        }
    }

    [Fact]
    public void ValuesAreScaledByKind()
    {
        using var checkpoint = Checkpoint.Random("random");
        var w = checkpoint.Scope(CpuBackend.Instance, DType.F32);
        using var matrix = w.Get("linear.weight", 256, 400);
        using var norm = w.Get("norm.weight", 4096);
        using var bias = w.Get("linear.bias", 4096);
        static double Std(float[] v, double mean) => Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / v.Length);
        var m = matrix.ToFloatArray();
        Assert.InRange(Std(m, 0), 0.045, 0.055);  // 1/√400
        var n = norm.ToFloatArray();
        Assert.InRange(n.Average(), 0.99, 1.01);
        Assert.InRange(Std(n, 1), 0.04, 0.06);
        Assert.InRange(Std(bias.ToFloatArray(), 0), 0.015, 0.025);
        Assert.Equal(["linear.bias", "linear.weight", "norm.weight"], checkpoint.Names);
    }

    [Fact]
    public void UndeclaredCheckpointGivesWhatTheModelAsksFor()
    {
        var config = T5Config.Load(Path.Combine(Fixtures.Path2b, "text_encoder", "config.json"));
        using var checkpoint = Checkpoint.Random("random T5");
        using var t5 = new T5Encoder(config, checkpoint.Scope(CpuBackend.Instance, DType.F32));
        using var ids = Tensor.FromArray(new long[] { 0, 5, 9, 1 }, [1, 4]);
        using var embeddings = t5.Forward(ids);
        Assert.Equal([1, 4, config.DModel], embeddings.ShapeArray());
        Assert.All(embeddings.ToFloatArray(), v => Assert.True(float.IsFinite(v)));
        Assert.Contains("encoder.final_layer_norm.weight", checkpoint.Names);
    }

    [Fact]
    public void WrongShapesAndNamesAreClearErrors()
    {
        using var checkpoint = Checkpoint.Random("random weights", 0, [("a.weight", [4, 8])]);
        var w = checkpoint.Scope(CpuBackend.Instance, DType.F32);
        var e = Assert.Throws<WeightsException>(() => w.Get("a.weight", 8, 4));
        Assert.Contains("'a.weight' has shape [4, 8], expected [8, 4]", e.Message);
        e = Assert.Throws<WeightsException>(() => w.Get("b.weight", 2));
        Assert.Contains("no tensor 'b.weight'", e.Message);
        using var undeclared = Checkpoint.Random("random weights");
        e = Assert.Throws<WeightsException>(() => undeclared.Load("c"));
        Assert.Contains("asked for without a shape", e.Message);
    }
}
