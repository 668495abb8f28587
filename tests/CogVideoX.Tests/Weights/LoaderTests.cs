using System.Runtime.InteropServices;
using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Weights;

public class LoaderTests
{
    private static string Sharded(string component) => Fixtures.GoldenFile("weights_fp16_sharded", component);

    /// <summary>
    /// The README's rule: the fp16 transformer and bf16 text encoder, sharded, are the float32 weights of the 2b-style
    /// pipeline rounded to that type. Checked three ways, bit for bit: the stored bits equal our reference
    /// round-to-nearest-even of the float32 weights; loading widened to F32 gives exactly those values; and the
    /// engine's own F32 → F16/BF16 conversion of the float32 weights reproduces the stored bits.
    /// </summary>
    [Theory]
    [InlineData("transformer", DType.F16)]
    [InlineData("text_encoder", DType.BF16)]
    public void ShardedHalfWeightsEqualRoundedFloat32Weights(string component, DType half)
    {
        using var full = Checkpoint.Open(Path.Combine(Fixtures.Path2b, component));
        using var sharded = Checkpoint.Open(Sharded(component));
        Assert.Equal(2, sharded.Files.Count);
        Assert.EndsWith(".safetensors.index.json", sharded.Source);
        Assert.Equal(full.Names, sharded.Names);
        Assert.Equal(full.ParameterCount, sharded.ParameterCount);
        Func<float, ushort> round = half == DType.F16 ? ReferenceRounding.ToF16 : ReferenceRounding.ToBF16;
        Func<ushort, float> widen = half == DType.F16 ? ReferenceRounding.FromF16 : ReferenceRounding.FromBF16;
        long checkedValues = 0;
        foreach (var name in full.Names)
        {
            var entry = sharded.Entry(name);
            Assert.Equal(half, entry.DType);
            Assert.Equal(full.Entry(name).Shape, entry.Shape);
            using var f32 = full.Load(name);
            var reference = f32.ToFloatArray();
            var stored = MemoryMarshal.Cast<byte, ushort>(sharded.FileOf(name).Bytes(entry)).ToArray();
            using var widened = sharded.Load(name, CpuBackend.Instance, DType.F32);
            Assert.Equal(DType.F32, widened.DType);
            var values = widened.ToFloatArray();
            using var narrowed = full.Load(name, CpuBackend.Instance, half);
            var engineBits = MemoryMarshal.Cast<byte, ushort>(CpuBackend.Bytes(narrowed)).ToArray();
            for (int i = 0; i < reference.Length; i++)
            {
                ushort expected = round(reference[i]);
                Assert.True(stored[i] == expected, $"{name}[{i}]: stored 0x{stored[i]:X4}, {reference[i]:R} rounds to 0x{expected:X4}");
                Assert.Equal(BitConverter.SingleToInt32Bits(widen(expected)), BitConverter.SingleToInt32Bits(values[i]));
                Assert.True(engineBits[i] == expected, $"{name}[{i}]: engine rounds {reference[i]:R} to 0x{engineBits[i]:X4}, expected 0x{expected:X4}");
            }
            checkedValues += reference.Length;
        }
        Assert.Equal(full.ParameterCount, checkedValues);
    }

    [Fact]
    public void IndexFileAndFolderOpenTheSameCheckpoint()
    {
        var folder = Sharded("transformer");
        using var byFolder = Checkpoint.Open(folder);
        using var byIndex = Checkpoint.Open(Path.Combine(folder, "diffusion_pytorch_model.safetensors.index.json"));
        Assert.Equal(byFolder.Names, byIndex.Names);
        Assert.Equal(64, byIndex.Count);
        Assert.Equal(525_136, byIndex.ParameterCount);
        var shard = byIndex.FileOf("proj_out.weight").Path;
        Assert.EndsWith("-of-00002.safetensors", shard);
    }

    /// <summary>Every float16 and bfloat16 bit pattern, loaded from a file and widened, equals its exact value.</summary>
    [Fact]
    public void F16AndBF16WideningIsExactForEveryBitPattern()
    {
        var all = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        using var dir = new TempFolder();
        var path = dir.Write("all.safetensors", SafetensorsBytes.Of(
            ("f16", DType.F16, [256, 256], SafetensorsBytes.UShorts(all)),
            ("bf16", DType.BF16, [65536], SafetensorsBytes.UShorts(all))));
        using var file = SafetensorsFile.Open(path);
        using var f16 = file.Load("f16", dtype: DType.F32);
        using var bf16 = file.Load("bf16", dtype: DType.F32);
        Assert.Equal([256, 256], f16.ShapeArray());
        var a = f16.ToFloatArray();
        var b = bf16.ToFloatArray();
        for (int i = 0; i < 65536; i++)
        {
            var ea = ReferenceRounding.FromF16((ushort)i);
            if (float.IsNaN(ea)) Assert.True(float.IsNaN(a[i]), $"F16 0x{i:X4} should widen to NaN, got {a[i]}");
            else Assert.True(BitConverter.SingleToInt32Bits(ea) == BitConverter.SingleToInt32Bits(a[i]), $"F16 0x{i:X4}: {a[i]:R} != {ea:R}");
            // bfloat16 is the top half of a float32: widening is exact for every pattern, NaN payloads included.
            Assert.Equal((uint)i << 16, BitConverter.SingleToUInt32Bits(b[i]));
        }
    }

    [Fact]
    public void F32LoadsBitForBit()
    {
        var random = new Random(7);
        var bits = Enumerable.Range(0, 4099).Select(_ => (uint)random.NextInt64(0, 1L << 32)).ToArray();
        bits[0] = 0x7FC0_0001; // a NaN with a payload
        bits[1] = 0x8000_0000; // -0
        bits[2] = 0x0000_0001; // smallest subnormal
        using var dir = new TempFolder();
        var path = dir.Write("f32.safetensors", SafetensorsBytes.Of(("x", DType.F32, [4099], MemoryMarshal.AsBytes(bits.AsSpan()).ToArray())));
        using var file = SafetensorsFile.Open(path);
        using var t = file.Load("x");
        Assert.Equal(DType.F32, t.DType);
        Assert.Equal(bits, t.ToFloatArray().Select(BitConverter.SingleToUInt32Bits).ToArray());
    }

    /// <summary>The engine's F32 → F16/BF16 rounding (used when loading float32 weights as half) is nearest-even.</summary>
    [Fact]
    public void NarrowingRoundsToNearestEven()
    {
        var random = new Random(11);
        var values = new List<float>
        {
            0f, -0f, 1f, 65504f, 65519.996f, 65520f, -65520f, float.MaxValue, float.Epsilon, 5.9604645e-8f, 2.9802322e-8f,
            2.9802326e-8f, 6.1035156e-5f, 6.1035152e-5f, 1.0009766f, 1.0004883f, 1.0014648f, 3.3895314e38f, 3.3961776e38f,
            BitConverter.UInt32BitsToSingle(0x3F80_8000), BitConverter.UInt32BitsToSingle(0x3F81_8000), BitConverter.UInt32BitsToSingle(0x3F80_8001),
            float.PositiveInfinity, float.NegativeInfinity,
        };
        for (int i = 0; i < 200_000; i++)
        {
            var v = BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32));
            if (!float.IsNaN(v)) values.Add(v);
        }
        // Exact ties of the float16 grid in every binade, the cases an off-by-one rounding gets wrong.
        for (int e = -24; e <= 15; e++)
            for (int m = 0; m < 8; m++)
                values.Add((float)Math.ScaleB(1024 + m + 0.5, e - 10));
        var input = values.ToArray();
        using var t = Tensor.FromArray(input, [input.Length]);
        using var h = t.To(DType.F16);
        using var b = t.To(DType.BF16);
        var hb = MemoryMarshal.Cast<byte, ushort>(CpuBackend.Bytes(h)).ToArray();
        var bb = MemoryMarshal.Cast<byte, ushort>(CpuBackend.Bytes(b)).ToArray();
        for (int i = 0; i < input.Length; i++)
        {
            Assert.True(hb[i] == ReferenceRounding.ToF16(input[i]), $"F16({input[i]:R}) = 0x{hb[i]:X4}, expected 0x{ReferenceRounding.ToF16(input[i]):X4}");
            Assert.True(bb[i] == ReferenceRounding.ToBF16(input[i]), $"BF16({input[i]:R}) = 0x{bb[i]:X4}, expected 0x{ReferenceRounding.ToBF16(input[i]):X4}");
            Assert.Equal(ReferenceRounding.ToF16(input[i]), DTypes.FloatToF16(input[i]));
            Assert.Equal(ReferenceRounding.ToBF16(input[i]), DTypes.FloatToBF16(input[i]));
        }
    }

    [Fact]
    public void ScopedLoadingFindsTensorsByFullName()
    {
        using var ckpt = Checkpoint.Open(Sharded("transformer"));
        var block = ckpt.Scope(CpuBackend.Instance, DType.F32).Scope("transformer_blocks").Scope(1);
        Assert.Equal("transformer_blocks.1", block.Prefix);
        using var w = block.Scope("attn1").Get("to_q.weight", 128, 128);
        Assert.Equal(DType.F32, w.DType);
        using var direct = ckpt.Load("transformer_blocks.1.attn1.to_q.weight", CpuBackend.Instance, DType.F32);
        Assert.Equal(direct.ToFloatArray(), w.ToFloatArray());
        Assert.Null(block.GetOptional("no_such.weight"));
        Assert.Contains("transformer_blocks.1.attn1.to_q.weight", ckpt.Names);
        Assert.DoesNotContain("transformer_blocks.1.attn1.to_q.weight", ckpt.UnloadedNames());
        Assert.Contains("transformer_blocks.1.attn1.to_k.weight", ckpt.UnloadedNames());
    }

    [Fact]
    public void ShapeMismatchNamesShardFileFullNameAndBothShapes()
    {
        using var ckpt = Checkpoint.Open(Sharded("transformer"));
        var scope = ckpt.Scope(CpuBackend.Instance, DType.F32).Scope("transformer_blocks").Scope(0).Scope("attn1");
        var e = Assert.Throws<WeightsException>(() => scope.Get("to_q.weight", 128, 64));
        var shard = ckpt.FileOf("transformer_blocks.0.attn1.to_q.weight").Path;
        Assert.StartsWith(shard + ":", e.Message);
        Assert.Contains("'transformer_blocks.0.attn1.to_q.weight'", e.Message);
        Assert.Contains("has shape [128, 128], expected [128, 64]", e.Message);
    }

    [Fact]
    public void MissingTensorNamesSourceFullNameAndWhatIsThere()
    {
        using var ckpt = Checkpoint.Open(Sharded("transformer"));
        var scope = ckpt.Scope(CpuBackend.Instance, DType.F32).Scope("transformer_blocks").Scope(0).Scope("attn1");
        var e = Assert.Throws<WeightsException>(() => scope.Get("to_x.weight", 128, 128));
        Assert.StartsWith(Path.Combine(Sharded("transformer"), "diffusion_pytorch_model.safetensors.index.json") + ":", e.Message);
        Assert.Contains("no tensor 'transformer_blocks.0.attn1.to_x.weight' (expected shape [128, 128])", e.Message);
        Assert.Contains("to_q.weight", e.Message);
        var none = Assert.Throws<WeightsException>(() => ckpt.Scope(CpuBackend.Instance, DType.F32).Scope("decoder").Get("conv.weight"));
        Assert.Contains("nothing in the checkpoint starts with 'decoder.'", none.Message);
    }

    [Fact]
    public void DTypeMismatchNamesFileTensorAndBothTypes()
    {
        using var dir = new TempFolder();
        var path = dir.Write("m.safetensors", SafetensorsBytes.Of(
            ("ids", DType.I64, [2], new byte[16]),
            ("w", DType.F16, [2], new byte[4])));
        using var ckpt = Checkpoint.Open(path);
        var e = Assert.Throws<WeightsException>(() => ckpt.Scope(CpuBackend.Instance, DType.BF16).Get("ids", 2));
        Assert.StartsWith(path + ":", e.Message);
        Assert.Contains("'ids' is I64, expected a float tensor (F32, F16 or BF16) to load as BF16", e.Message);
        var e2 = Assert.Throws<WeightsException>(() => ckpt.Scope(CpuBackend.Instance, DType.I64).Get("w"));
        Assert.Contains("'w' is F16, expected an integer tensor (I64) to load as I64", e2.Message);
        using var ok = ckpt.Scope(CpuBackend.Instance, DType.BF16).Get("w", 2);
        Assert.Equal(DType.BF16, ok.DType);
    }

    [Theory]
    [InlineData("pytorch_model.bin")]
    [InlineData("model.pt")]
    [InlineData("model.ckpt")]
    [InlineData("model.pth")]
    public void PickleFilesAreRefused(string name)
    {
        using var dir = new TempFolder();
        var path = dir.Write(name, [0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e, 0, 0, 0, 0]);
        foreach (var open in new Action[] { () => SafetensorsFile.Open(path).Dispose(), () => Checkpoint.Open(path).Dispose(), () => Checkpoint.Open(dir.Path).Dispose() })
        {
            var e = Assert.Throws<WeightsException>(open);
            Assert.Contains("pickle", e.Message);
            Assert.Contains("use the model's .safetensors files", e.Message);
        }
    }

    [Fact]
    public void ShardedPickleIndexIsRefused()
    {
        using var dir = new TempFolder();
        dir.Write("pytorch_model.bin.index.json", "{\"weight_map\": {\"a\": \"pytorch_model-00001-of-00002.bin\"}}");
        dir.Write("pytorch_model-00001-of-00002.bin", [0x80, 0x02]);
        var e = Assert.Throws<WeightsException>(() => Checkpoint.Open(dir.Path));
        Assert.Contains("holds only pickle checkpoints", e.Message);
        Assert.Contains(".safetensors", e.Message);
        var e2 = Assert.Throws<WeightsException>(() => Checkpoint.Open(Path.Combine(dir.Path, "pytorch_model.bin.index.json")));
        Assert.Contains("pickle", e2.Message);
    }

    [Fact]
    public void SafetensorsBesidePickleIsChosen()
    {
        using var dir = new TempFolder();
        dir.Write("pytorch_model.bin", [0x80, 0x02]);
        dir.Write("model.safetensors", SafetensorsBytes.Of(("w", DType.F32, [1], SafetensorsBytes.Floats(2.5f))));
        using var ckpt = Checkpoint.Open(dir.Path);
        using var w = ckpt.Load("w");
        Assert.Equal(2.5f, w.Item());
    }

    [Fact]
    public void StandardNameIsPreferredOverVariants()
    {
        using var dir = new TempFolder();
        dir.Write("diffusion_pytorch_model.fp16.safetensors", SafetensorsBytes.Of(("w", DType.F16, [1], SafetensorsBytes.UShorts([0x3C00]))));
        dir.Write("diffusion_pytorch_model.safetensors", SafetensorsBytes.Of(("w", DType.F32, [1], SafetensorsBytes.Floats(1f))));
        var found = WeightFiles.Require(dir.Path);
        Assert.Equal(["diffusion_pytorch_model.safetensors"], found.Files.Select(Path.GetFileName));
        File.Delete(Path.Combine(dir.Path, "diffusion_pytorch_model.safetensors"));
        Assert.Equal(["diffusion_pytorch_model.fp16.safetensors"], WeightFiles.Require(dir.Path).Files.Select(Path.GetFileName));
    }

    [Fact]
    public void SeveralUnindexedFilesAreAmbiguous()
    {
        using var dir = new TempFolder();
        dir.Write("a.safetensors", SafetensorsBytes.Of(("w", DType.F32, [1], SafetensorsBytes.Floats(1f))));
        dir.Write("b.safetensors", SafetensorsBytes.Of(("v", DType.F32, [1], SafetensorsBytes.Floats(1f))));
        var e = Assert.Throws<WeightsException>(() => Checkpoint.Open(dir.Path));
        Assert.Contains("2 .safetensors files (a.safetensors, b.safetensors) and no *.safetensors.index.json", e.Message);
    }

    [Fact]
    public void EmptyFolderSaysNoWeights()
    {
        using var dir = new TempFolder();
        dir.Write("config.json", "{}");
        Assert.Null(WeightFiles.Find(dir.Path));
        var e = Assert.Throws<WeightsException>(() => Checkpoint.Open(dir.Path));
        Assert.Contains("no weights in this folder", e.Message);
    }

    [Fact]
    public void IndexErrorsNameTheIndex()
    {
        using var dir = new TempFolder();
        var shard = SafetensorsBytes.Of(("a", DType.F32, [1], SafetensorsBytes.Floats(1f)));
        dir.Write("model-00001-of-00001.safetensors", shard);
        var index = dir.Write("model.safetensors.index.json", "{\"weight_map\": {\"a\": \"model-00001-of-00001.safetensors\", \"b\": \"model-00002-of-00002.safetensors\"}}");
        var missing = Assert.Throws<WeightsException>(() => Checkpoint.Open(dir.Path));
        Assert.Equal($"{index}: shard 'model-00002-of-00002.safetensors' is missing from the folder (an incomplete download?)", missing.Message);

        dir.Write("model.safetensors.index.json", "{\"weight_map\": {\"a\": \"model-00001-of-00001.safetensors\", \"b\": \"model-00001-of-00001.safetensors\"}}");
        var notThere = Assert.Throws<WeightsException>(() => Checkpoint.Open(dir.Path));
        Assert.Contains("the index puts 'b' in 'model-00001-of-00001.safetensors', which does not hold it", notThere.Message);

        dir.Write("model.safetensors.index.json", "{\"weight_map\": {\"a\": \"../elsewhere.safetensors\"}}");
        Assert.Contains("must be a plain file name", Assert.Throws<WeightsException>(() => Checkpoint.Open(dir.Path)).Message);

        dir.Write("model.safetensors.index.json", "{\"metadata\": {}}");
        Assert.Contains("no \"weight_map\" object", Assert.Throws<WeightsException>(() => Checkpoint.Open(dir.Path)).Message);

        dir.Write("model.safetensors.index.json", "{\"weight_map\": {\"a\": ");
        Assert.Contains("not valid JSON", Assert.Throws<WeightsException>(() => Checkpoint.Open(dir.Path)).Message);
    }

    [Fact]
    public void MissingFileAndFolderAreClearErrors()
    {
        using var dir = new TempFolder();
        var missing = Path.Combine(dir.Path, "nope.safetensors");
        Assert.Equal($"{missing}: file not found", Assert.Throws<WeightsException>(() => SafetensorsFile.Open(missing)).Message);
        Assert.Contains("is a folder", Assert.Throws<WeightsException>(() => SafetensorsFile.Open(dir.Path)).Message);
    }
}
