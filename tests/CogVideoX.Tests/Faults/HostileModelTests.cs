using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Models.Text;
using CogVideoX.Models.Transformer;
using CogVideoX.Models.Vae;
using CogVideoX.Tests.Weights;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Faults;

/// <summary>
/// A downloaded or edited model folder can hold anything: configs with absurd values, weights that are NaN, a header
/// that is not UTF-8, a FIFO instead of a file, components of another model. Each is refused with a message naming
/// the file and what is allowed, before anything large is built, and a run whose numbers go non-finite stops.
/// </summary>
public class HostileModelTests
{
    private static readonly GenerationRequest Small = TinyRequest.Panda(steps: 2, seed: 3);

    /// <summary>A copy of the tiny 2b-style model (without its golden runs) to corrupt.</summary>
    private static string CopyModel(TempFolder dir)
    {
        var model = dir.CopyTree(Fixtures.Path2b, "m");
        Directory.Delete(Path.Combine(model, "runs"), recursive: true);
        return model;
    }

    /// <summary>Sets one key of a component's config.json.</summary>
    private static void SetConfig(string model, string component, string key, JsonNode? value)
    {
        var path = Path.Combine(model, component, component == "scheduler" ? "scheduler_config.json" : "config.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        json[key] = value;
        File.WriteAllText(path, json.ToJsonString());
    }

    /// <summary>Overwrites every value of one float32 tensor of a component's weights with <paramref name="value"/>.</summary>
    private static void Poison(string model, string component, string tensor, float value)
    {
        var path = Path.Combine(model, component, "diffusion_pytorch_model.safetensors");
        var header = SafetensorsHeader.Read(path);
        var entry = header.Entries[tensor];
        Assert.Equal(DType.F32, entry.DType);
        var bytes = File.ReadAllBytes(path);
        var floats = MemoryMarshal.Cast<byte, float>(bytes.AsSpan((int)(header.DataStart + entry.Begin), (int)entry.ByteCount));
        floats.Fill(value);
        File.WriteAllBytes(path, bytes);
    }

    private static CogVideoXPipeline Open(string model) => new(ModelFolder.Open(model), new PipelineOptions { MemoryPolicy = MemoryPolicies.Full });

    [Theory]
    [InlineData("transformer", "num_layers", 1_000_000_000, "num_layers is 1000000000; this tool accepts 1 to 1,024 (the published CogVideoX models use 30 (2b) and 42 (5b))")]
    [InlineData("transformer", "attention_head_dim", int.MaxValue, "attention_head_dim is 2147483647; this tool accepts 1 to 4,096 (the published CogVideoX models use 64)")]
    [InlineData("transformer", "num_attention_heads", 1024, "num_attention_heads × attention_head_dim is 65536; this tool accepts at most 32,768")]
    [InlineData("transformer", "patch_size", 0, "patch_size is 0; this tool accepts 1 to 64 (the published CogVideoX models use 2)")]
    [InlineData("text_encoder", "num_layers", 1_000_000_000, "num_layers is 1000000000; this tool accepts 1 to 1,024 (the published CogVideoX models use 24)")]
    [InlineData("vae", "layers_per_block", 100_000, "layers_per_block is 100000; this tool accepts 0 to 64")]
    [InlineData("scheduler", "num_train_timesteps", 1_000_000_000, "num_train_timesteps is 1000000000; this tool accepts 2 to 100,000")]
    public void AConfigValueOutOfRangeIsRefusedWhenTheFolderIsOpened(string component, string key, int value, string expected)
    {
        using var dir = new TempFolder();
        var model = CopyModel(dir);
        SetConfig(model, component, key, value);
        var e = Assert.Throws<WeightsException>(() =>
        {
            using var pipeline = Open(model);
            pipeline.Resolve(Small); // reads the scheduler's config too; loads no weights
        });
        Assert.StartsWith(Path.Combine(model, component), e.Message);
        Assert.Contains(expected, e.Message);
        Assert.EndsWith("use the config.json that came with the weights.", e.Message);
    }

    [Fact]
    public void AnEmptyVaeBlockListAndANonFiniteScaleAreRefused()
    {
        using var dir = new TempFolder();
        var model = CopyModel(dir);
        SetConfig(model, "vae", "block_out_channels", new JsonArray());
        var e = Assert.Throws<WeightsException>(() => Open(model));
        Assert.Contains("vae/config.json: block_out_channels has 0 entries; this tool accepts 1 to 8 (the published CogVideoX models use [128, 256, 256, 512])", e.Message);

        SetConfig(model, "vae", "block_out_channels", new JsonArray(16, 32, 32, 32));
        SetConfig(model, "vae", "scaling_factor", 0);
        e = Assert.Throws<WeightsException>(() => Open(model));
        Assert.Contains("vae/config.json: scaling_factor is 0; it must be a finite number greater than 0", e.Message);
    }

    [Fact]
    public void ThePublishedConfigsAreWellInsideTheLimits()
    {
        foreach (var model in new[] { "CogVideoX-2b", "CogVideoX-5b" })
        {
            var folder = Fixtures.GoldenFile("real_configs", model);
            var t = TransformerConfig.Load(Path.Combine(folder, "transformer", "config.json"));
            var v = VaeConfig.Load(Path.Combine(folder, "vae", "config.json"));
            var text = T5Config.Load(Path.Combine(folder, "text_encoder", "config.json"));
            var s = SchedulerConfig.Load(Path.Combine(folder, "scheduler", "scheduler_config.json"));
            Assert.True(t.NumLayers * 10 <= 1024 && t.InnerDim * 10 <= 32768 && text.NumLayers * 10 <= 1024 && s.NumTrainTimesteps * 10 <= 100_000);
            Assert.True(v.BlockOutChannels.Max() * 10 <= 8192 && v.LayersPerBlock * 10 <= 64);
        }
    }

    [Fact]
    public void MoreLayersThanTheCheckpointHoldsIsRefusedBeforeTheNameListIsBuilt()
    {
        using var dir = new TempFolder();
        var model = CopyModel(dir);
        SetConfig(model, "transformer", "num_layers", 1000);
        using var pipeline = Open(model);
        var e = Assert.Throws<WeightsException>(() => pipeline.Generate(Small));
        Assert.Contains("the transformer config's num_layers 1000 needs", e.Message);
        Assert.Contains("but the checkpoint holds 64 tensors in all. Use the config.json that came with these weights.", e.Message);
    }

    [Fact]
    public void AComponentOfAnotherClassIsRefused()
    {
        using var dir = new TempFolder();
        var model = CopyModel(dir);
        var index = Path.Combine(model, "model_index.json");
        var json = JsonNode.Parse(File.ReadAllText(index))!.AsObject();
        json["transformer"] = new JsonArray("diffusers", "FluxTransformer2DModel");
        File.WriteAllText(index, json.ToJsonString());
        var e = Assert.Throws<WeightsException>(() => Open(model));
        Assert.Equal($"{model}: model_index.json lists transformer as [\"diffusers\", \"FluxTransformer2DModel\"]; this tool runs transformer only as " +
            "CogVideoXTransformer3DModel (the classes of the published CogVideoX models), so the folder holds another kind of model. " +
            "Use a CogVideoX 1.0 text-to-video folder such as THUDM/CogVideoX-2b or THUDM/CogVideoX-5b.", e.Message);
    }

    [Fact]
    public void NaNTransformerWeightsStopTheRunAtTheFirstStep()
    {
        using var dir = new TempFolder();
        var model = CopyModel(dir);
        Poison(model, "transformer", "proj_out.weight", float.NaN);
        using var pipeline = Open(model);
        var steps = new List<int>();
        var e = Assert.Throws<CogVideoXException>(() => pipeline.Generate(Small with { Steps = 3 }, new Inline(p =>
        {
            if (p.Stage == PipelineStages.Denoise && p.Step > 0) steps.Add(p.Step);
        })));
        Assert.StartsWith("denoising step 1 of 3 (timestep 999) made the latents non-finite (NaN or infinity); the run was stopped and no video was written. " +
            "Likely cause: corrupt transformer or text encoder weights", e.Message);
        Assert.Empty(steps); // stopped before reporting the step as done
        Assert.False(pipeline.IsLoaded(ModelComponent.Vae));
    }

    [Fact]
    public void AGuidanceScaleBeyondFloatRangeStopsTheRunAndSaysSo()
    {
        using var pipeline = Open(Fixtures.Path2b);
        var e = Assert.Throws<CogVideoXException>(() => pipeline.Generate(Small with { Guidance = 1e308 }));
        Assert.StartsWith("denoising step 1 of 2 (timestep 999) made the latents non-finite", e.Message);
        Assert.Contains("Likely causes: the guidance scale 1E+308 is too large for the arithmetic (the reference is 6 and more than 20 rarely helps; use --guidance 6)", e.Message);
    }

    [Fact]
    public void NaNVaeWeightsAreCaughtBeforeTheFramesAreClamped()
    {
        using var dir = new TempFolder();
        var model = CopyModel(dir);
        Poison(model, "vae", "decoder.conv_out.conv.bias", float.PositiveInfinity);
        using var pipeline = Open(model);
        var e = Assert.Throws<CogVideoXException>(() => pipeline.Generate(Small));
        Assert.Equal("the VAE decoded the (finite) latents into non-finite frames (NaN or infinity); no video was written. Likely cause: " +
            "corrupt VAE weights (NaN or infinite values: download the model again).", e.Message);
    }

    [Fact]
    public void NonFiniteCheckFindsOneBadValueAnywhere()
    {
        var values = new float[2 * 3 * 5];
        using (var fine = Tensor.FromArray(values, [2, 3, 5])) Assert.True(NonFiniteCheck.IsFinite(fine));
        foreach (var bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
            for (int at = 0; at < values.Length; at += 7)
            {
                var copy = (float[])values.Clone();
                copy[at] = bad;
                using var t = Tensor.FromArray(copy, [2, 3, 5]);
                Assert.False(NonFiniteCheck.IsFinite(t), $"{bad} at {at}");
            }
    }

    [Fact]
    public void AHeaderThatIsNotUtf8IsNamedWithItsOffset()
    {
        using var dir = new TempFolder();
        var bytes = SafetensorsBytes.Raw("{\"__metadata__\": {\"n\": \"caf\u00e9\"}}", []);
        int at = Array.IndexOf(bytes, (byte)0xC3);
        bytes[at] = 0xFF; // a lone byte that starts no UTF-8 sequence
        var path = dir.Write("w.safetensors", bytes);
        var e = Assert.Throws<WeightsException>(() => SafetensorsHeader.Read(path));
        Assert.Equal($"{path}: the header is not valid UTF-8 (byte 0xFF at offset {at - 8} of the header); a safetensors header is UTF-8 JSON, so the file is corrupt or not safetensors", e.Message);
        Assert.Equal(e.Message, Assert.Throws<WeightsException>(() => SafetensorsFile.Open(path)).Message);

        var index = dir.Write("i/model.safetensors.index.json", [.. "{\"weight_map\": {\"a\": \"x"u8, 0xC0, .. ".safetensors\"}}"u8]);
        Assert.Equal($"{index}: not valid UTF-8 text (byte 0xC0 at offset 23); a weight index is UTF-8 JSON, so the file is corrupt: download the model again",
            Assert.Throws<WeightsException>(() => SafetensorsIndex.Read(index)).Message);

        var config = dir.Write("c/config.json", [(byte)'{', (byte)'"', 0x80, (byte)'"', (byte)':', (byte)'1', (byte)'}']);
        Assert.Equal($"{config}: not valid UTF-8 text (byte 0x80 at offset 2); a config is UTF-8 JSON, so the file is corrupt: use the one that came with the weights or download the model again",
            Assert.Throws<WeightsException>(() => VaeConfig.Load(config)).Message);
    }

    [Fact]
    public void InspectReportsAHeaderThatIsNotUtf8()
    {
        using var dir = new TempFolder();
        var model = CopyModel(dir);
        var path = Path.Combine(model, "vae", "diffusion_pytorch_model.safetensors");
        var bytes = File.ReadAllBytes(path);
        int at = Array.IndexOf(bytes, (byte)'"', 8);
        bytes[at + 1] = 0xFE;
        File.WriteAllBytes(path, bytes);
        var stderr = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(["inspect", model], new StringWriter(), stderr);
        Assert.Equal(1, code);
        Assert.StartsWith($"error: {path}: the header is not valid UTF-8 (byte 0xFE at offset", stderr.ToString());
    }

    [Fact]
    public async Task AFifoInPlaceOfAWeightFileIsRefusedWithoutWaiting()
    {
        if (!OperatingSystem.IsLinux()) return; // mkfifo(3)
        using var dir = new TempFolder();
        var model = CopyModel(dir);
        var path = Path.Combine(model, "vae", "diffusion_pytorch_model.safetensors");
        File.Delete(path);
        Assert.Equal(0, MakeFifo(path, 0b110_100_100));
        // Opening a FIFO for reading blocks until a writer comes: a hang shows as a timeout here, not a stuck run.
        var e = await Task.Run(() =>
        {
            using var pipeline = Open(model);
            return Assert.Throws<WeightsException>(() => pipeline.Generate(Small));
        }).WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Equal($"{path}: the file is empty (0 bytes) or not a regular file (a FIFO, socket or device); a safetensors file holds a header and the tensor data: the download or save probably failed",
            e.Message);

        var config = Path.Combine(model, "transformer", "config.json");
        File.Delete(config);
        Assert.Equal(0, MakeFifo(config, 0b110_100_100));
        e = await Task.Run(() => Assert.Throws<WeightsException>(() => TransformerConfig.Load(config))).WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Contains("not a regular file (a FIFO, socket or device)", e.Message);
    }

    [DllImport("libc", EntryPoint = "mkfifo", SetLastError = true)]
    private static extern int MakeFifo([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint mode);

    [Fact]
    public void CancellationReachesTheVaeBetweenFrameBatches()
    {
        using var pipeline = Open(Fixtures.Path2b);
        using var cts = new CancellationTokenSource();
        var progress = new Inline(p =>
        {
            if (p.Stage == PipelineStages.VaeDecode && p.Step == 0) cts.Cancel();
        });
        // Without the token inside the decode the run would finish the decode and return a video.
        Assert.ThrowsAny<OperationCanceledException>(() => pipeline.Generate(Small, progress, cts.Token));
        Assert.Equal(9, pipeline.Generate(Small).FrameCount); // still usable
    }

    [Fact]
    public void CancellationReachesTheVaeDecoderBetweenBlocks()
    {
        using var vae = CogVideoXVae.Load(Path.Combine(Fixtures.Path2b, "vae"), CpuBackend.Instance, DType.F32);
        using var z = Tensor.FromArray(new float[1 * 4 * 1 * 4 * 6], [1, 4, 1, 4, 6]);
        using var scope = new TensorScope();
        using var cache = vae.Decoder.CreateCache();
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        cache.Cancellation = cancelled.Token;
        Assert.ThrowsAny<OperationCanceledException>(() => vae.Decoder.Forward(z, cache));
    }

    [Fact]
    public void CancellationReachesTheTextEncoderBetweenBlocks()
    {
        using var pipeline = Open(Fixtures.Path2b);
        using var encoder = T5Encoder.Load(Path.Combine(Fixtures.Path2b, "text_encoder"), CpuBackend.Instance, DType.F32);
        var prompt = pipeline.Tokenizer.Tokenize("A panda plays a guitar.", 226);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => encoder.Encode([prompt], cancelled.Token));
        using var embeddings = encoder.Encode(prompt);
        Assert.Equal([1, 226, 64], embeddings.ShapeArray());
    }

    [Fact]
    public void CancellationStopsALoadBetweenTensors()
    {
        using var pipeline = Open(Fixtures.Path2b);
        using var cts = new CancellationTokenSource();
        var progress = new Inline(p =>
        {
            if (p.Stage == PipelineStages.LoadTransformer && p.Step == 0) cts.Cancel();
        });
        Assert.ThrowsAny<OperationCanceledException>(() => pipeline.Generate(Small, progress, cts.Token));
        // Under the full policy a finished load would have stayed loaded: the load itself stopped.
        Assert.False(pipeline.IsLoaded(ModelComponent.Transformer));
        Assert.True(pipeline.IsLoaded(ModelComponent.TextEncoder));
        Assert.Equal(9, pipeline.Generate(Small).FrameCount);
    }

    [Fact]
    public void CancellationReachesTheTransformerBetweenLayers()
    {
        using var transformer = CogVideoXTransformer.Load(Path.Combine(Fixtures.Path2b, "transformer"), CpuBackend.Instance, DType.F32);
        using var latents = Tensor.FromArray(new float[1 * 3 * 4 * 4 * 6], [1, 3, 4, 4, 6]);
        using var text = Tensor.FromArray(new float[1 * 226 * 64], [1, 226, 64]);
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => transformer.Forward(latents, text, [999f], null, cancelled.Token));
        using var output = transformer.Forward(latents, text, [999f]);
        Assert.Equal([1, 3, 4, 4, 6], output.ShapeArray());
    }

    private sealed class Inline(Action<PipelineProgress> report) : IProgress<PipelineProgress>
    {
        public void Report(PipelineProgress value) => report(value);
    }
}
