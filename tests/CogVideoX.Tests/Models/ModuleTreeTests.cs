using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Models.Text;
using CogVideoX.Models.Transformer;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Models;

/// <summary>
/// Each model's module tree declares every parameter once; loading, parameter lists, random weights and memory
/// estimates derive from it. These hold the derived figures to what they were when each was written by hand.
/// </summary>
public class ModuleTreeTests
{
    /// <summary>
    /// The estimates of the hand-written formulas (MemoryEstimate.cs before the module tree, 2026-12-04), for the
    /// published configs and the tiny fixtures: sizes derived from the trees must give exactly the same bytes.
    /// </summary>
    [Theory]
    [InlineData("real_configs/CogVideoX-2b", "F16", 49, 480, 720, 385925120L, 24, 263221248L, 112163072L, 30, 22675584L, 246736902L, 217817600L, 1236082688L, 6812492800L, 1931737600L)]
    [InlineData("real_configs/CogVideoX-5b", "BF16", 49, 480, 720, 385892352L, 24, 263204864L, 264395264L, 42, 35965056L, 246736902L, 50045440L, 2191720448L, 6812492800L, 1931737600L)]
    [InlineData("real_configs/CogVideoX-2b", "F32", 13, 240, 368, 771784704L, 24, 526409728L, 224326144L, 30, 45351168L, 493473804L, 88982528L, 236824576L, 3446966044L, 3438755840L)]
    [InlineData("pipeline_2b_style", "F32", 9, 32, 48, 139776L, 2, 538368L, 996864L, 2, 106816L, 2801932L, 1829696L, 2480128L, 7622428L, 2278855L)]
    [InlineData("pipeline_5b_style", "F16", 9, 32, 48, 70400L, 2, 269440L, 498432L, 2, 53408L, 1400966L, 1026208L, 1364992L, 3811214L, 1139427L)]
    public void MemoryEstimatesAreThoseOfTheHandWrittenFormulas(string folder, string dtype, int frames, int height, int width,
        long textBlock, int textBlocks, long textRest, long transformerBlock, int transformerBlocks, long transformerRest, long vae,
        long textWorking, long denoiseWorking, long decodeWorking, long decodeWorkingTiled)
    {
        var model = ModelFolder.Open(Fixtures.GoldenFile([.. folder.Split('/')]));
        var m = MemoryEstimator.Measure(model, Enum.Parse<DType>(dtype), frames, height, width, classifierFreeGuidance: true, textLength: 226);
        var expected = new ModelMemory
        {
            TextEncoderBlock = textBlock,
            TextEncoderBlocks = textBlocks,
            TextEncoderRest = textRest,
            TransformerBlock = transformerBlock,
            TransformerBlocks = transformerBlocks,
            TransformerRest = transformerRest,
            VaeDecoder = vae,
            TextEncoderWorking = textWorking,
            DenoiseWorking = denoiseWorking,
            DecodeWorking = decodeWorking,
            DecodeWorkingTiled = decodeWorkingTiled,
        };
        Assert.Equal(expected, m);
    }

    [Fact]
    public void TheTreeSizesWhatLoadingHolds()
    {
        // Loaded from the fixture's float32 files as F16: every tensor is held in F16 except wo (float32 compute, and the
        // checkpoint has no half type to keep) and the norms' float32 copies, exactly as the tree's placements say.
        var folder = Path.Combine(Fixtures.Path2b, "text_encoder");
        var config = T5Config.Load(Path.Combine(folder, "config.json"));
        using var checkpoint = Checkpoint.Open(folder);
        var scope = checkpoint.Scope(CpuBackend.Instance, DType.F16).Scope("encoder").Scope("block").Scope(1);
        using var block = new T5Block(config, DType.F16, hasRelativeAttentionBias: false);
        var placements = block.Placements(scope);
        block.Load(scope);
        Assert.Equal(placements.Select(p => (Layout.Format(p.Shape), p.DType)), block.Tensors.Select(t => (t.ShapeString, t.DType)));
        Assert.Contains(placements, p => p.DType == DType.F32);
        // From configs alone (no files: a half checkpoint assumed), wo stays F16.
        Assert.Equal(block.Parameters.Sum(p => p.ElementCount * (p.IsCopy ? 4 : 2)), block.Bytes(DType.F16));
    }

    [Fact]
    public void AHostImageIsLaidOutFromTheDeclaredParameters()
    {
        // Streaming reads the layout from the block's declarations, whatever order anything was loaded in: a slot binds
        // a fresh block's parameters to views of the same layout.
        using var host = T5Encoder.LoadHostBlocks(Path.Combine(ThreeLayerModel.Folder, "text_encoder"), DType.F16, null);
        using var block = host.CreateBlock();
        Assert.Equal(block.Parameters.Select(p => Layout.Format(p.Shape)), host.Layout.Weights.Select(w => Layout.Format(w.Shape)));
        Assert.Equal([DType.F16, DType.F32], host.Layout.Arenas.Select(a => a.DType));
        Assert.All(block.Parameters, p => Assert.False(p.IsBound));
    }

    [Fact]
    public void ForwardsBorrowTheirArgumentsAndReturnOwnedResults()
    {
        using var encoder = T5Encoder.Load(Path.Combine(Fixtures.Path2b, "text_encoder"), CpuBackend.Instance, DType.F32);
        using var ids = Tensor.FromArray(new long[] { 81, 162, 322, 1, 0, 0 }, new[] { 1, 6 });
        using (var embeddings = encoder.Forward(ids)) Assert.False(embeddings.IsDisposed);
        Assert.False(ids.IsDisposed);

        using var vae = CogVideoXVae.Load(Path.Combine(Fixtures.Path2b, "vae"), CpuBackend.Instance, DType.F32);
        using var z = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, vae.Config.LatentChannels, 1, 2, 2);
        using (var frames = vae.Decode(z)) Assert.False(frames.IsDisposed);
        using (var cache = vae.Decoder.CreateCache())
        using (var frames = vae.Decoder.Forward(z, cache)) Assert.False(frames.IsDisposed);
        Assert.False(z.IsDisposed);
    }
}
