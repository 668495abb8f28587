using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Models.Transformer;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Pipeline;

/// <summary>
/// CogVideoX 1.5 against diffusers (tests/fixtures/reference/cogvideox15, README there): the whole text-to-video
/// pipeline on the tiny 1.5 folder from the prompt text of each run — every intermediate (embeddings, initial latents
/// drawn padded to whole temporal patches, each transformer output, each step, the VAE's input after the padding is
/// trimmed, its output) and the frames, with the golden tolerances; the rotary tables ("slice" grid over the patched
/// frames); and one 1.5-I2V transformer call with the ofs embedding.
/// </summary>
public class CogVideoX15Tests(ITestOutputHelper output)
{
    private const double FramesTolerance = 2e-3; // golden README: pipeline frames ≤ 2e-3 absolute (CPU float32)
    private const double ModelTolerance = 1e-4;  // golden README: model outputs ≤ 1e-4 × max(1, max |reference|)

    public static string Root => Path.Combine(Fixtures.RepoRoot, "tests", "fixtures", "reference", "cogvideox15");

    public static string TextToVideo => Path.Combine(Root, "pipeline_15_style");

    public static string ImageToVideo => Path.Combine(Root, "pipeline_15_i2v_style");

    private static IEnumerable<(string Tag, GenerationRequest Request, int LatentFrames, int Padded)> Runs()
    {
        foreach (var r in FixtureRuns.Entries(Path.Combine(TextToVideo, "runs", "runs.json")))
        {
            yield return (r.GetProperty("tag").GetString()!, FixtureRuns.Request(r), r.GetProperty("latent_frames").GetInt32(),
                r.GetProperty("padded_latent_frames").GetInt32());
        }
    }

    public static TheoryData<string> Tags() => FixtureRuns.Theory(Runs().Select(r => r.Tag));

    [Fact]
    public void FixtureCoversPaddedAndUnpaddedLatentFrames()
    {
        var runs = Runs().ToList();
        Assert.Contains(runs, r => r.Padded > r.LatentFrames); // odd latent count: padded in front
        Assert.Contains(runs, r => r.Padded == r.LatentFrames); // even: as it is
        Assert.Contains(runs, r => r.Request.Guidance <= 1);
    }

    [Theory]
    [MemberData(nameof(Tags))]
    public void PipelineMatchesDiffusers(string tag)
    {
        var run = Runs().Single(r => r.Tag == tag);
        var reference = Fixtures.LoadAll(Path.Combine(TextToVideo, "runs", tag + ".safetensors"));
        try
        {
            using var pipeline = new CogVideoXPipeline(ModelFolder.Open(TextToVideo), new PipelineOptions { Backend = CpuBackend.Instance, DType = DType.F32 });
            Assert.Equal("CogVideoX 1.5", pipeline.Defaults.Name);
            var observer = new ReferenceObserver(reference, output, tag);
            var result = pipeline.Generate(run.Request, observer: observer);

            var stored = reference.Keys.Where(ReferenceObserver.Compared).ToHashSet();
            Assert.Equal(stored.Order(), observer.Seen.Order());

            var expected = reference["frames"];
            Assert.Equal(expected.ShapeArray(), result.FramesShape);
            double error = Compare.AssertAbs(expected.ToFloatArray(), result.Frames, FramesTolerance, $"{tag} frames");
            output.WriteLine($"{tag}: frames {string.Join("×", result.FramesShape)}, max abs error {error:E3} (tolerance {FramesTolerance:E0})");

            Assert.Equal(reference["initial_latents"].ShapeArray(), result.LatentShape);
            Assert.Equal(run.Padded, result.LatentShape[1]);
            Assert.Equal(reference["timesteps"].ToLongArray().Select(v => (int)v), result.Resolved.Timesteps);
            Assert.Equal(SchedulerKind.Dpm, result.Resolved.Scheduler);
            Assert.Equal(expected.Dim(0), result.Resolved.DecodedFrames);
            // The VAE saw the latents less the padding.
            Assert.Equal(run.LatentFrames, reference["vae_input"].Dim(2));
        }
        finally
        {
            foreach (var t in reference.Values) t.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(Tags))]
    public void RotaryTablesMatchDiffusers(string tag)
    {
        var run = Runs().Single(r => r.Tag == tag);
        var reference = Fixtures.LoadAll(Path.Combine(TextToVideo, "runs", tag + ".safetensors"));
        try
        {
            var config = TransformerConfig.Load(Path.Combine(TextToVideo, "transformer", "config.json"));
            using var tables = RotaryTables.Build(config, run.Padded, run.Request.Height / 8, run.Request.Width / 8, CpuBackend.Instance, DType.F32);
            Assert.Equal(run.Padded / 2, tables.Frames);
            double cos = Compare.AssertAbs(reference["rotary_cos"].ToFloatArray(), tables.Cos.ToFloatArray(), 1e-6, $"{tag} rotary cos");
            double sin = Compare.AssertAbs(reference["rotary_sin"].ToFloatArray(), tables.Sin.ToFloatArray(), 1e-6, $"{tag} rotary sin");
            output.WriteLine($"{tag} rotary: cos {cos:E2}, sin {sin:E2} ({tables.Tokens} tokens)");
        }
        finally
        {
            foreach (var t in reference.Values) t.Dispose();
        }
    }

    [Fact]
    public void ImageToVideoTransformerWithOfsMatchesDiffusers()
    {
        var reference = Fixtures.LoadAll(Path.Combine(ImageToVideo, "runs", "transformer_call.safetensors"));
        try
        {
            using var transformer = CogVideoXTransformer.Load(Path.Combine(ImageToVideo, "transformer"), CpuBackend.Instance, DType.F32);
            Assert.Equal(8, transformer.Config.InChannels);
            var hidden = reference["hidden_states"];
            using var rotary = transformer.BuildRotaryTables(hidden.Dim(1), hidden.Dim(3), hidden.Dim(4));
            Compare.AssertAbs(reference["rotary_cos"].ToFloatArray(), rotary.Cos.ToFloatArray(), 1e-6, "i2v rotary cos");
            float[] timesteps = reference["timestep"].ToLongArray().Select(v => (float)v).ToArray();
            float ofs = reference["ofs"].ToFloatArray()[0];
            using var outTensor = transformer.Forward(hidden, reference["encoder_hidden_states"], timesteps, rotary, ofs);
            double err = Compare.AssertClose(reference["output"], outTensor, ModelTolerance, "i2v transformer output");
            output.WriteLine($"1.5-I2V transformer call (ofs {ofs}): output {outTensor.ShapeString}, max abs error {err:E2}");

            // Without its ofs value the model refuses the call, saying what to pass.
            var e = Assert.Throws<CogVideoXException>(() => transformer.Forward(hidden, reference["encoder_hidden_states"], timesteps, rotary));
            Assert.Contains("ofs", e.Message);
            Assert.Contains("2.0", e.Message);
        }
        finally
        {
            foreach (var t in reference.Values) t.Dispose();
        }
    }

    /// <summary>
    /// The whole 1.5 image-to-video pipeline (runs/panda15_i2v_f17): 17 frames → 5 latent frames drawn padded to 6,
    /// the image latents [image, 5 zero frames] (divided by the scaling factor: invert_scale_latents), ofs 2.0 every
    /// step, the padding trimmed before the VAE. The run stored no initial or image latents of their own: both are
    /// the halves of the first transformer input (batch item 0), compared bit-exact and within 1e-4 × max.
    /// </summary>
    [Fact]
    public void ImageToVideoPipelineMatchesDiffusers()
    {
        const string tag = "panda15_i2v_f17";
        var runs = Path.Combine(ImageToVideo, "runs");
        var r = FixtureRuns.Entries(Path.Combine(runs, "runs.json")).Single(e => e.GetProperty("tag").GetString() == tag);
        var request = FixtureRuns.Request(r) with
        {
            Image = CogVideoX.Lab.InputFiles.LoadImage(Path.Combine(runs, r.GetProperty("image").GetString()!)),
        };
        var reference = Fixtures.LoadAll(Path.Combine(runs, tag + ".safetensors"));
        try
        {
            Assert.Equal(2.0f, reference["ofs"].ToFloatArray().Single());
            // The first transformer input [2, F, 2C, h, w]: item 0's first C channels are the initial latents, the
            // last C the image latents.
            var input0 = reference["transformer_in_step0"];
            int f = input0.Dim(1), c2 = input0.Dim(2), plane = input0.Dim(3) * input0.Dim(4), c = c2 / 2;
            var all = input0.ToFloatArray();
            float[] Half(int from)
            {
                var half = new float[f * c * plane];
                for (int fi = 0; fi < f; fi++)
                    Array.Copy(all, (fi * c2 + from) * plane, half, fi * c * plane, c * plane);
                return half;
            }
            int[] latentShape = [1, f, c, input0.Dim(3), input0.Dim(4)];
            reference["initial_latents"] = Tensor.FromArray(Half(0), latentShape, CpuBackend.Instance, DType.F32);
            reference["image_latents"] = Tensor.FromArray(Half(c), latentShape, CpuBackend.Instance, DType.F32);
            // The preprocessed image [1, 3, H, W] is the encoder's one-frame input [1, 3, 1, H, W].
            var image = reference["image"];
            reference["vae_encode_input"] = Tensor.FromArray(image.ToFloatArray(), [1, 3, 1, image.Dim(2), image.Dim(3)], CpuBackend.Instance, DType.F32);

            using var pipeline = new CogVideoXPipeline(ModelFolder.Open(ImageToVideo), new PipelineOptions { Backend = CpuBackend.Instance, DType = DType.F32 });
            Assert.Equal("CogVideoX 1.5", pipeline.Defaults.Name);
            var observer = new ReferenceObserver(reference, output, tag, also: ["image_latents", "vae_encode_input"], skip: ["encoder_mean", "encoder_logvar"]);
            var result = pipeline.Generate(request, observer: observer);

            var stored = reference.Keys.Where(observer.IsCompared).ToHashSet();
            Assert.Equal(stored.Order(), observer.Seen.Order());
            Assert.Contains("transformer_in_step2", observer.Seen);

            var expected = reference["frames"];
            Assert.Equal(expected.ShapeArray(), result.FramesShape);
            double error = Compare.AssertAbs(expected.ToFloatArray(), result.Frames, FramesTolerance, $"{tag} frames");
            output.WriteLine($"{tag}: frames {string.Join("×", result.FramesShape)}, max abs error {error:E3} (tolerance {FramesTolerance:E0}); " +
                $"largest intermediate error {observer.Largest.Error:E3} ({observer.Largest.Name})");
            Assert.Equal("image-to-video", result.Resolved.Task);
            Assert.Equal(latentShape, result.LatentShape);
            Assert.Equal(reference["timesteps"].ToLongArray().Select(v => (int)v), result.Resolved.Timesteps);
            Assert.Equal(5, reference["vae_input"].Dim(2)); // the padding frame trimmed before decoding
        }
        finally
        {
            foreach (var t in reference.Values) t.Dispose();
        }
    }

    [Fact]
    public void TextToVideoTransformerRefusesAnOfsValue()
    {
        using var transformer = CogVideoXTransformer.Load(Path.Combine(TextToVideo, "transformer"), CpuBackend.Instance, DType.F32);
        using var latents = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 2, 4, 4, 4);
        using var text = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 226, 64);
        using var rotary = transformer.BuildRotaryTables(2, 4, 4);
        var e = Assert.Throws<CogVideoXException>(() => transformer.Forward(latents, text, [500f], rotary, 2f));
        Assert.Contains("no ofs embedding", e.Message);
    }

    [Fact]
    public void OddLatentFramesAtTheTransformerAreRefusedWithThePadding()
    {
        using var transformer = CogVideoXTransformer.Load(Path.Combine(TextToVideo, "transformer"), CpuBackend.Instance, DType.F32);
        var e = Assert.Throws<CogVideoXException>(() => transformer.BuildRotaryTables(5, 4, 6));
        Assert.Contains("patch_size_t", e.Message);
        Assert.Contains("pads", e.Message);
    }

    [Theory]
    [InlineData("\"use_rotary_positional_embeddings\": true", "\"use_rotary_positional_embeddings\": false", "goes with rotary positions only")]
    [InlineData("\"patch_size_t\": 2", "\"patch_size_t\": 0", "patch_size_t is 0; this tool accepts 1 to 64")]
    [InlineData("\"ofs_embed_dim\": null", "\"ofs_embed_dim\": 64", "ofs_embed_dim 64 must equal time_embed_dim 32")]
    public void RefusesConfigsItCannotRun(string find, string replace, string message)
    {
        var e = EditedTransformer.LoadError(Path.Combine(TextToVideo, "transformer"), find, replace);
        Assert.Contains(message, e.Message);
        output.WriteLine(e.Message);
    }

    [Fact]
    public void FrameCountThatDoesNotFitListsTheOnesThatDo()
    {
        using var pipeline = new CogVideoXPipeline(ModelFolder.Open(TextToVideo));
        var e = Assert.Throws<CogVideoXException>(() => pipeline.Resolve(new GenerationRequest { Prompt = "a cat", Frames = 80, Height = 32, Width = 48 }));
        Assert.Equal(GenerationRules.UsageExitCode, e.ExitCode);
        Assert.Contains("CogVideoX 1.5", e.Message);
        Assert.Contains("77 and 81", e.Message);
        Assert.Contains("81 and 161", e.Message);
    }

    [Fact]
    public void EvenLatentFrameCountWarnsOfTheDecodedLength()
    {
        using var pipeline = new CogVideoXPipeline(ModelFolder.Open(TextToVideo));
        var (resolved, warnings) = pipeline.Resolve(new GenerationRequest { Prompt = "a cat", Frames = 13, Height = 32, Width = 48 });
        Assert.Equal(16, resolved.DecodedFrames);
        Assert.Equal(4, resolved.LatentShape[1]);
        Assert.Contains(warnings, w => w.Contains("16 frames", StringComparison.Ordinal));
        var (padded, quiet) = pipeline.Resolve(new GenerationRequest { Prompt = "a cat", Frames = 17, Height = 32, Width = 48 });
        Assert.Equal(6, padded.LatentShape[1]);
        Assert.Equal(17, padded.DecodedFrames);
        Assert.DoesNotContain(quiet, w => w.Contains("frames:", StringComparison.Ordinal));
    }

    [Fact]
    public void SizeBeyondTheRotaryGridIsRefused()
    {
        using var pipeline = new CogVideoXPipeline(ModelFolder.Open(TextToVideo));
        // The tiny model's sample_height/width 16 latent pixels: 8×8 patches, at most 128 pixels a side.
        var e = Assert.Throws<CogVideoXException>(() => pipeline.Resolve(new GenerationRequest { Prompt = "a cat", Frames = 9, Height = 32, Width = 144 }));
        Assert.Equal(GenerationRules.UsageExitCode, e.ExitCode);
        Assert.Contains("at most 128", e.Message);
    }

    [Fact]
    public void ModelDefaultsOfThePublishedConfigs()
    {
        var v15 = ModelDefaults.For(TransformerConfig.Load(Path.Combine(Fixtures.RepoRoot, "tests", "fixtures", "golden", "real_configs", "CogVideoX1.5-5B", "transformer", "config.json")));
        Assert.Equal((81, 768, 1360, 16), (v15.Frames, v15.Height, v15.Width, v15.Fps));
        Assert.Equal((2400, 2400), (v15.MaxHeight, v15.MaxWidth));
        Assert.Equal(1, v15.LatentPadding(21));
        Assert.Equal(0, v15.LatentPadding(22));
        var v10 = ModelDefaults.For(TransformerConfig.Load(Path.Combine(Fixtures.RepoRoot, "tests", "fixtures", "golden", "real_configs", "CogVideoX-5b", "transformer", "config.json")));
        Assert.Same(ModelDefaults.Version10, v10);
        Assert.Equal(0, v10.LatentPadding(13));
    }
}

/// <summary>The memory estimates of CogVideoX1.5-5B at THUDM's size (81 frames 768×1360, BF16, CFG), on the CPU.</summary>
public class CogVideoX15MemoryTests(ITestOutputHelper output)
{
    [Fact]
    public void EstimatesForTheFullSize15PutBalancedAndLowUnderTheirTargets()
    {
        var model = ModelFolder.Open(Fixtures.GoldenFile("real_configs", "CogVideoX1.5-5B"));
        var sizes = MemoryEstimator.Measure(model, DType.BF16, 81, 768, 1360, classifierFreeGuidance: true, textLength: 226);
        double Gib(long b) => b / (double)(1L << 30);
        output.WriteLine($"T5 {Gib(sizes.TextEncoder):F2} GiB, transformer {Gib(sizes.Transformer):F2} GiB ({sizes.TransformerBlocks} × " +
            $"{Gib(sizes.TransformerBlock) * 1024:F1} MiB), VAE decoder {Gib(sizes.VaeDecoder) * 1024:F0} MiB; working: T5 " +
            $"{Gib(sizes.TextEncoderWorking) * 1024:F0} MiB, denoise {Gib(sizes.DenoiseWorking):F2} GiB (22 padded latent frames, " +
            $"44,880 video tokens), decode {Gib(sizes.DecodeWorking):F2} GiB (tiled {Gib(sizes.DecodeWorkingTiled):F2} GiB)");
        var (_, estimates) = MemoryEstimator.Choose(sizes, 141L << 30, streams: true, tiling: false);
        foreach (var e in estimates) output.WriteLine($"{e.Mode}: {e}");
        var byMode = estimates.ToDictionary(e => e.Mode);
        // The 1.5 transformer: 5.57 B parameters in BF16 (≈ 10.4 GiB), as the 5b's plus the wider patch projection.
        Assert.InRange(Gib(sizes.Transformer), 10.0, 11.0);
        Assert.True(Gib(byMode["balanced"].Peak) <= 24, "balanced target: ≤ 24 GiB");
        Assert.True(Gib(byMode["low"].Peak) <= 8, "low target: ≤ 8 GiB");
    }

    [Fact]
    public void TheDecodeFitsSixteenGibInTwoFullHeightColumns()
    {
        var vae = ModelFolder.Open(Fixtures.GoldenFile("real_configs", "CogVideoX1.5-5B")).Vae;
        double Gib(long b) => b / (double)(1L << 30);
        var whole = CogVideoXVae.EstimateMemory(vae, DType.F16, 81, 768, 1360, tiling: null);
        var tiling = CogVideoXVae.FitTiling(vae, DType.F16, 81, 768, 1360, 15L << 30);
        Assert.NotNull(tiling);
        var fitted = CogVideoXVae.EstimateMemory(vae, DType.F16, 81, 768, 1360, tiling);
        var plan = (tiling.TileSampleMinHeight, tiling.TileSampleMinWidth, tiling.OverlapFactorHeight);
        output.WriteLine($"1.5 VAE decode, 81 frames 768×1360 F16: whole frames ≈ {Gib(whole.RestBytes + whole.WorkingBytes):F2} GiB; " +
            $"column tiles {tiling.TileSampleMinHeight}×{tiling.TileSampleMinWidth} (overlap {tiling.OverlapFactorWidth:0.####}) ≈ " +
            $"{Gib(fitted.RestBytes + fitted.WorkingBytes):F2} GiB; decoded pixels per frame {2 * 768 * tiling.TileSampleMinWidth - 768 * (2 * tiling.TileSampleMinWidth - 1360 - 64)} " +
            $"vs {768 * 1360} untiled");
        // Two full-height columns (tiles 116 latent rows tall, cut at the video's 96): 93 and 85 latent columns of the 170
        // (1.047× the untiled work), one 64-pixel band blended.
        Assert.Equal((928, 744, 1.0 / 6), plan);
        Assert.True(Gib(fitted.RestBytes + fitted.WorkingBytes) <= 15);
        Assert.True(Gib(whole.RestBytes + whole.WorkingBytes) > 16);
    }
}

/// <summary>Full-height column tiles (<see cref="VaeTiling.Columns"/>) decode as diffusers' tiled_decode with the same values.</summary>
public class VaeColumnTilesTests(ITestOutputHelper output)
{
    [Fact]
    public void ColumnTilesMatchDiffusers()
    {
        var reference = Fixtures.LoadAll(Path.Combine(CogVideoX15Tests.Root, "vae_column_tiles.safetensors"));
        try
        {
            var tiling = VaeTiling.Columns(48, 96, columns: 2, spatialScale: 8, overlapLatent: 2);
            Assert.Equal(new VaeTiling(64, 64, 1.0 / 6, 0.25), tiling); // the fixture's enable_tiling values
            using var vae = CogVideoXVae.Load(Path.Combine(CogVideoX15Tests.TextToVideo, "vae"), CpuBackend.Instance, DType.F32);
            using var decoded = vae.Decode(reference["z"], new VaeDecodeOptions { Tiling = tiling });
            double err = Compare.AssertClose(reference["decoded_columns"], decoded, 1e-4, "column tiles");
            output.WriteLine($"column tiles {decoded.ShapeString}: max abs error {err:E2}");
        }
        finally
        {
            foreach (var t in reference.Values) t.Dispose();
        }
    }

    [Fact]
    public void OneColumnOrNoRoomForTheOverlapIsWholeFrames()
    {
        Assert.Equal(new VaeTiling(768, 1360, 0, 0), VaeTiling.Columns(768, 1360, 1));
        Assert.Equal(new VaeTiling(32, 48, 0, 0), VaeTiling.Columns(32, 48, 3, 8, overlapLatent: 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => VaeTiling.Columns(768, 1360, 0));
    }
}
