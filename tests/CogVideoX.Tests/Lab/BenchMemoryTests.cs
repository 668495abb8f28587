using CogVideoX.Engine;
using CogVideoX.Lab.Benchmarks;

namespace CogVideoX.Tests.Lab;

/// <summary>
/// The stage benchmarks hand back every tensor they made: a GPU session runs one stage after another in the same
/// process, so what one leaves behind is in the next one's peak (on 2026-12-05 the LoRA bench's unfused inputs,
/// 31 GiB per 2b adapter, stayed allocated and the 5b two-adapter stage never finished).
/// </summary>
public class BenchMemoryTests
{
    private static BenchSettings Tiny(string folder) => new() { ConfigFolder = folder, DType = DType.F32, Frames = 9, Height = 32, Width = 48, Repeats = 1, Warmup = 0 };

    [Fact]
    public void TheLoraBenchReleasesWhatItMadeAndSharesTheUnfusedInputs()
    {
        using var backend = new MeteredBackend();
        var results = ModelBench.Lora(backend, Tiny(Fixtures.Path2b), new LoraBenchSettings { Rank = 2, Targets = "all" });
        Assert.Equal(0, backend.AllocatedBytes);
        var unfused = results.Where(r => r.Stage == "unfused").ToList();
        Assert.Equal(2, unfused.Count);
        // Two adapters add their A and B matrices to one adapter's working set, not another copy of every layer's input
        // and output: one input and one output per layer shape, shared.
        Assert.True(unfused[1].PeakBytes < 1.5 * unfused[0].PeakBytes, $"{unfused[1].PeakBytes} bytes with two adapters, {unfused[0].PeakBytes} with one");
    }

    [Fact]
    public void TheModelStagesReleaseWhatTheyMade()
    {
        using var backend = new MeteredBackend();
        var s = Tiny(Fixtures.Path2b);
        ModelBench.Transformer(backend, s);
        Assert.Equal(0, backend.AllocatedBytes);
        ModelBench.VaeEncode(backend, s);
        Assert.Equal(0, backend.AllocatedBytes);
        ModelBench.Vae(backend, s);
        Assert.Equal(0, backend.AllocatedBytes);
    }
}

/// <summary>A disposed model leaves nothing on its backend, what its forward cached included.</summary>
public class ModelDisposalTests
{
    [Fact]
    public void ATransformerReleasesItsCachedPositionalTableWithItsWeights()
    {
        using var backend = new MeteredBackend();
        var config = CogVideoX.Weights.TransformerConfig.Load(Path.Combine(Fixtures.Path2b, "transformer", "config.json"));
        var model = ModelBench.RandomTransformer(config, backend, DType.F32, seed: 1);
        using (var scope = new TensorScope())
        {
            var inputs = new CogVideoX.Engine.Testing.OpInputs(backend, DType.F32, 3);
            var latents = inputs.Uniform([2, 3, config.InChannels, 4, 6], -1f, 1f);
            var text = inputs.Uniform([2, 226, config.TextEmbedDim], -1f, 1f);
            model.Forward(latents, text, [999f, 999f], null).Dispose();
        }
        Assert.NotEqual(0, backend.AllocatedBytes);
        model.Dispose();
        // The sincos table of the call's grid (PatchEmbedding's cache) went with the weights: in a balanced-mode sweep a
        // full-size 2b model is reloaded per video and each left 67 MB of it behind.
        Assert.Equal(0, backend.AllocatedBytes);
    }
}
