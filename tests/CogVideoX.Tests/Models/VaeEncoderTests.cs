using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Models;

/// <summary>The encoder of the tiny 2b-style VAE of the fixtures and the encoder fixture cases, loaded once for the class.</summary>
public sealed class TinyVaeEncoder : IDisposable
{
    public CogVideoXVaeEncoder Encoder { get; } = CogVideoXVae.LoadEncoder(Path.Combine(Fixtures.Path2b, "vae"), CpuBackend.Instance, DType.F32);

    public Dictionary<string, Tensor> Cases { get; } =
        Fixtures.LoadAll(Path.Combine(Fixtures.RepoRoot, "tests", "fixtures", "reference", "vae_encoder", "vae_encoder_cases.safetensors"));

    public void Dispose()
    {
        Encoder.Dispose();
        foreach (var t in Cases.Values) t.Dispose();
    }
}

public class VaeEncoderTests(TinyVaeEncoder fixture, ITestOutputHelper output) : IClassFixture<TinyVaeEncoder>
{
    /// <summary>The golden README's tolerance for VAE outputs on the CPU: max abs error ≤ 1e-4 × max(1, max |reference|).</summary>
    private const double Tolerance = 1e-4;

    /// <summary>The fixtures' tiles: 32×48 pixels, overlaps 1/4 (height) and 1/3 (width).</summary>
    private static readonly VaeTiling FixtureTiles = new(32, 48, 1.0 / 4, 1.0 / 3);

    private CogVideoXVaeEncoder Encoder => fixture.Encoder;

    private Tensor Case(string key) => fixture.Cases[key];

    /// <summary>Compares with the README's rule and logs the error next to the bound it had to meet.</summary>
    private void AssertMatches(Tensor expected, Tensor actual, string what) => Compare.AssertCloseLogged(expected, actual, Tolerance, what, output);

    [Fact]
    public void FrameBatchesFollowDiffusers()
    {
        Assert.Equal(new[] { (0, 9), (9, 8), (17, 8), (25, 8), (33, 8), (41, 8) }, CogVideoXVaeEncoder.FrameBatches(49));
        Assert.Equal(new[] { (0, 9), (9, 8) }, CogVideoXVaeEncoder.FrameBatches(17));
        Assert.Equal(new[] { (0, 13) }, CogVideoXVaeEncoder.FrameBatches(13));
        Assert.Equal(new[] { (0, 1) }, CogVideoXVaeEncoder.FrameBatches(1));
        Assert.Equal(new[] { (0, 8), (8, 8) }, CogVideoXVaeEncoder.FrameBatches(16));
        Assert.Equal(13, Encoder.LatentFrames(49));
        Assert.Equal(5, Encoder.LatentFrames(17));
        Assert.Equal(4, Encoder.LatentFrames(13));
        Assert.Equal(3, Encoder.LatentFrames(9));
        Assert.Equal(1, Encoder.LatentFrames(1));
        Assert.Equal(4, Encoder.LatentFrames(16));
    }

    [Theory]
    [InlineData("f1")]
    [InlineData("f9")]
    [InlineData("f13")]
    [InlineData("f17")]
    [InlineData("f49")]
    [InlineData("b2")]
    [InlineData("odd")]
    public void Encoded(string name)
    {
        using var dist = Encoder.Encode(Case($"{name}_video"));
        AssertMatches(Case($"{name}_mean"), dist.Mean, $"{name} mean");
        AssertMatches(Case($"{name}_logvar"), dist.LogVar, $"{name} logvar");
    }

    [Theory]
    [InlineData("tiled")]
    [InlineData("tiled_edges")]
    [InlineData("tiled_f17")]
    public void EncodedTiled(string name)
    {
        using (var tiled = Encoder.Encode(Case($"{name}_video"), new VaeEncodeOptions { Tiling = FixtureTiles }))
        {
            AssertMatches(Case($"{name}_mean"), tiled.Mean, $"{name} mean");
            AssertMatches(Case($"{name}_logvar"), tiled.LogVar, $"{name} logvar");
        }
        using var untiled = Encoder.Encode(Case($"{name}_video"));
        AssertMatches(Case($"{name}_untiled_mean"), untiled.Mean, $"{name} untiled mean");
        AssertMatches(Case($"{name}_untiled_logvar"), untiled.LogVar, $"{name} untiled logvar");
    }

    [Theory]
    [InlineData("f49")]
    [InlineData("odd")]
    [InlineData("b2")]
    public void ChunkedConvolutionsGiveExactlyTheLatentsOfWholeOnes(string name)
    {
        // Each output element is the same sum whatever the chunk: the CPU's GEMM blocks the reduction the same way.
        using var whole = Encoder.Encode(Case($"{name}_video"), new VaeEncodeOptions { ConvolutionWindowFrames = 0 });
        foreach (int window in new[] { 1, 4, 7, 100 })
        {
            using var chunked = Encoder.Encode(Case($"{name}_video"), new VaeEncodeOptions { ConvolutionWindowFrames = window });
            Assert.Equal(whole.Mean.ToFloatArray(), chunked.Mean.ToFloatArray());
            Assert.Equal(whole.LogVar.ToFloatArray(), chunked.LogVar.ToFloatArray());
        }
        using var tiled = Encoder.Encode(Case("tiled_f17_video"), new VaeEncodeOptions { Tiling = FixtureTiles, ConvolutionWindowFrames = 0 });
        using var tiledChunked = Encoder.Encode(Case("tiled_f17_video"), new VaeEncodeOptions { Tiling = FixtureTiles });
        Assert.Equal(tiled.Mean.ToFloatArray(), tiledChunked.Mean.ToFloatArray());
    }

    [Fact]
    public void ANegativeConvolutionWindowIsRefused()
    {
        var e = Assert.Throws<CogVideoXException>(() => Encoder.Encode(Case("f9_video"), new VaeEncodeOptions { ConvolutionWindowFrames = -1 }));
        Assert.Contains("0 (whole convolutions) or a positive number", e.Message);
    }

    [Fact]
    public void ModeAndSampleFollowDiffusers()
    {
        using var dist = Encoder.Encode(Case("f17_video"));
        using var mode = dist.Mode();
        AssertMatches(Case("f17_mode"), mode, "f17 mode");
        Assert.False(ReferenceEquals(mode, dist.Mean));

        // The caller draws the noise from the run's generator in the mean's shape, as diffusers' randn_tensor does.
        var generator = new TorchGenerator(1234);
        var shape = dist.Mean.ShapeArray();
        using var noise = Tensor.FromArray(generator.Randn(shape), shape);
        Compare.AssertAbs(Case("f17_noise").ToFloatArray(), noise.ToFloatArray(), 1e-6, "f17 noise");
        using var sample = dist.Sample(noise);
        AssertMatches(Case("f17_sample"), sample, "f17 sample");
    }

    [Fact]
    public void SlicingEncodesEachItemAsAlone()
    {
        using var dist = Encoder.Encode(Case("b2_video"), new VaeEncodeOptions { Slicing = true });
        AssertMatches(Case("b2_mean"), dist.Mean, "b2 sliced mean");
        AssertMatches(Case("b2_logvar"), dist.LogVar, "b2 sliced logvar");
    }

    [Fact]
    public void TilingIsSkippedWhenTheVideoFitsOneTile()
    {
        using var plain = Encoder.Encode(Case("f9_video"));
        using var tiled = Encoder.Encode(Case("f9_video"), new VaeEncodeOptions { Tiling = FixtureTiles });
        Assert.Equal(plain.Mean.ToFloatArray(), tiled.Mean.ToFloatArray());
    }

    [Fact]
    public void TheCacheCarriesTwoFramesPerCausalConvAndIsReleased()
    {
        var video = Case("f17_video");
        var encoder = Encoder.Encoder;
        var parts = new List<Tensor>();
        using (var cache = encoder.CreateCache())
        {
            Assert.Equal(0, cache.Bytes);
            foreach (var (start, count) in CogVideoXVaeEncoder.FrameBatches(17))
            {
                using var batch = video.Narrow(2, start, count);
                parts.Add(encoder.Forward(batch, cache));
            }
            // Two frames of each causal conv's input: conv_in (3 channels) and down block 0's 4 convs (16) at 32×48; down
            // block 1's first conv sees 16 channels, its other 3 see 32, at 16×24; down blocks 2 and 3 (4 convs of 32
            // each) at 8×12 and 4×6; the mid block's 4 convs and conv_out (32) at 4×6.
            long floats = 2L * (3 * 1536 + 4 * 16 * 1536 + (16 + 3 * 32) * 384 + 4 * 32 * 96 + 4 * 32 * 24 + 5 * 32 * 24);
            Assert.Equal(1 + 4 * 4 + 2 * 2 + 1, cache.All.Count());
            Assert.Equal(floats * sizeof(float), cache.Bytes);
            Assert.All(cache.All, c => Assert.Equal(2, c.Frames!.Dim(2)));
            cache.Dispose();
            Assert.Equal(0, cache.Bytes);
        }
        using var joined = Ops.Concat(2, parts.ToArray());
        using var dist = Encoder.Encode(video);
        using var mean = joined.Narrow(1, 0, 4);
        Assert.Equal(dist.Mean.ToFloatArray(), mean.ToFloatArray());
        foreach (var p in parts) p.Dispose();
    }

    [Fact]
    public void TheLastBatchKeepsNoCache()
    {
        var video = Case("f9_video");
        using var cache = Encoder.Encoder.CreateCache();
        cache.MarkFinal();
        using var moments = Encoder.Encoder.Forward(video, cache);
        Assert.Equal(0, cache.Bytes);
        using var dist = Encoder.Encode(video);
        using var mean = moments.Narrow(1, 0, 4);
        Assert.Equal(dist.Mean.ToFloatArray(), mean.ToFloatArray());
    }

    [Fact]
    public void WrongVideosAreRefusedWithWhatIsAllowed()
    {
        using var fourChannels = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 4, 9, 32, 48);
        var e = Assert.Throws<CogVideoXException>(() => Encoder.Encode(fourChannels));
        Assert.Contains("[batch, 3 channels, frames, height, width]", e.Message);
        using var flat = Tensor.Zeros(CpuBackend.Instance, DType.F32, 3, 9, 32, 48);
        Assert.Throws<CogVideoXException>(() => Encoder.Encode(flat));
        using var empty = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 3, 0, 32, 48);
        Assert.Contains("empty", Assert.Throws<CogVideoXException>(() => Encoder.Encode(empty)).Message);
        using var tiny = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 3, 1, 4, 48);
        Assert.Contains("at least 8×8", Assert.Throws<CogVideoXException>(() => Encoder.Encode(tiny)).Message);
        using var ints = Tensor.FromArray(new long[3 * 32 * 48], [1, 3, 1, 32, 48]);
        Assert.Contains("float", Assert.Throws<CogVideoXException>(() => Encoder.Encode(ints)).Message);
    }

    [Fact]
    public void BadTilingIsRefused()
    {
        var video = Case("tiled_video");
        Assert.Contains("smaller than one latent pixel", Assert.Throws<CogVideoXException>(() =>
            Encoder.Encode(video, new VaeEncodeOptions { Tiling = new VaeTiling(4, 48, 0.25, 0.25) })).Message);
        Assert.Contains("[0, 1)", Assert.Throws<CogVideoXException>(() =>
            Encoder.Encode(video, new VaeEncodeOptions { Tiling = new VaeTiling(32, 48, 1.0, 0.25) })).Message);
        // Tiles of 40 rows every 30 leave a last tile of 4 rows on a 64-row video: less than one latent pixel.
        Assert.Contains("tile at pixel 60 of 64", Assert.Throws<CogVideoXException>(() =>
            Encoder.Encode(video, new VaeEncodeOptions { Tiling = new VaeTiling(40, 48, 0.25, 0.25) })).Message);
    }

    [Fact]
    public void CancellationStopsBetweenBlocks()
    {
        using var cts = new CancellationTokenSource();
        int reports = 0;
        var options = new VaeEncodeOptions
        {
            Cancellation = cts.Token,
            Progress = (done, total) =>
            {
                reports++;
                Assert.Equal(2, total);
                cts.Cancel();
            },
        };
        Assert.ThrowsAny<OperationCanceledException>(() => Encoder.Encode(Case("f17_video"), options));
        Assert.Equal(1, reports);
    }

    [Fact]
    public void EncoderWeightsAreTheEncoderHalfOfTheCheckpoint()
    {
        var config = VaeConfig.Load(Path.Combine(Fixtures.Path2b, "vae", "config.json"));
        var encoder = CogVideoXVaeEncoder.EncoderParameterShapes(config);
        var decoder = CogVideoXVae.DecoderParameterShapes(config);
        Assert.All(encoder, p => Assert.StartsWith("encoder.", p.Name));
        Assert.Contains(encoder, p => p.Name == "encoder.down_blocks.0.downsamplers.0.conv.weight" && p.Shape.SequenceEqual(new[] { 16, 16, 3, 3 }));
        Assert.Contains(encoder, p => p.Name == "encoder.conv_out.conv.weight" && p.Shape.SequenceEqual(new[] { 8, 32, 3, 3, 3 }));
        // Together the two halves read every tensor of the published VAE checkpoint.
        using var file = SafetensorsFile.Open(Path.Combine(Fixtures.Path2b, "vae", "diffusion_pytorch_model.safetensors"));
        Assert.Equal(file.Entries.Keys.Order(), encoder.Concat(decoder).Select(p => p.Name).Order());
        foreach (var (name, shape) in encoder) Assert.Equal(shape, file.Entries[name].Shape.ToArray());
    }
}

/// <summary>The encoder's working memory, counted on a backend that meters its tensors.</summary>
public class VaeEncoderMemoryTests(ITestOutputHelper output)
{
    private static (long Peak, long Latents) Measure(MeteredBackend backend, CogVideoXVaeEncoder encoder, int frames, int height, int width, VaeEncodeOptions? options = null)
    {
        var random = new Random(frames * 1000 + height);
        var values = new float[3L * frames * height * width];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        // The video stays on the CPU: the encoder moves it to its backend a frame batch at a time.
        using var video = Tensor.FromArray(values, [1, 3, frames, height, width]);
        long before = backend.AllocatedBytes;
        backend.ResetPeak();
        using var dist = encoder.Encode(video, options);
        long latents = 2L * dist.Mean.ElementCount * sizeof(float);
        return (backend.PeakBytes - before, latents);
    }

    [Fact]
    public void WorkingMemoryIsBoundedByAFrameBatchAndMatchesTheEstimate()
    {
        using var backend = new MeteredBackend();
        var folder = Path.Combine(Fixtures.Path2b, "vae");
        using var encoder = CogVideoXVaeEncoder.Load(folder, backend, DType.F32);
        var config = encoder.Config;
        var (peak17, _) = Measure(backend, encoder, 17, 32, 48);
        var (peak25, latents25) = Measure(backend, encoder, 25, 32, 48);
        var (peak49, latents49) = Measure(backend, encoder, 49, 32, 48);
        output.WriteLine($"25 frames: peak {peak25} bytes; 49 frames: peak {peak49} bytes (latents {latents25}, {latents49})");
        // Twice the frames, the same working set (a middle batch with every cache held): only the latents grow.
        Assert.True(peak49 <= peak25 + 3 * (latents49 - latents25), $"49 frames held {peak49} bytes against {peak25} for 25");

        // One frame (an image) and 9 frames are one batch each: the last batch keeps no cache.
        var (peak1, _) = Measure(backend, encoder, 1, 32, 48);
        var (peak9, _) = Measure(backend, encoder, 9, 32, 48);
        foreach (var (frames, peak) in new[] { (1, peak1), (9, peak9), (17, peak17), (25, peak25), (49, peak49) })
        {
            long estimate = CogVideoXVaeEncoder.EstimateMemory(config, DType.F32, frames, 32, 48, tiled: false).WorkingBytes;
            output.WriteLine($"{frames} frames: estimate {estimate} bytes, measured {peak} ({peak / (double)estimate:P0})");
            Assert.InRange(peak, estimate / 2, estimate);
        }
    }

    [Fact]
    public void TiledWorkingMemoryIsBoundedByATile()
    {
        using var backend = new MeteredBackend();
        using var encoder = CogVideoXVaeEncoder.Load(Path.Combine(Fixtures.Path2b, "vae"), backend, DType.F32);
        var config = encoder.Config;
        var tiles = VaeTiling.ForConfig(config);
        // The default tiles of the tiny config: 16×24 pixels every 13×19 (the last ones 12×14 on 64×90).
        var (untiled, _) = Measure(backend, encoder, 9, 64, 90);
        var (tiled, _) = Measure(backend, encoder, 9, 64, 90, new VaeEncodeOptions { Tiling = tiles });
        long estimateWhole = CogVideoXVaeEncoder.EstimateMemory(config, DType.F32, 9, 64, 90, tiled: false).WorkingBytes;
        long estimateTiled = CogVideoXVaeEncoder.EstimateMemory(config, DType.F32, 9, 64, 90, tiled: true).WorkingBytes;
        output.WriteLine($"64×90: untiled peak {untiled} bytes (estimate {estimateWhole}), tiles of {tiles.TileSampleMinHeight}×{tiles.TileSampleMinWidth}: peak {tiled} (estimate {estimateTiled})");
        Assert.True(tiled * 4 < untiled, $"tiles held {tiled} bytes against {untiled} untiled");
        Assert.InRange(untiled, estimateWhole / 2, estimateWhole);
        Assert.InRange(tiled, estimateTiled / 2, estimateTiled);
    }
}

/// <summary>The 5b encoder at the published size on a dry metering backend (counts every tensor, computes nothing).</summary>
public class VaeEncoderFullSizeMemoryTests(ITestOutputHelper output)
{
    private const double Gib = 1L << 30;

    /// <summary>diffusers' peak for the same encode on the H200 (bf16, 2026-12-05), and issue 19's bound: half of it.</summary>
    private const double DiffusersPeakGib = 8.16;

    /// <summary>Bytes held by tensors at the peak of one encode beyond what was held before, and what was held before.</summary>
    private static (long Working, long Held) Measure(VaeConfig config, VaeEncodeOptions options)
    {
        using var backend = new MeteredBackend(dry: true);
        using var checkpoint = Checkpoint.Random("random VAE encoder weights", 4, CogVideoXVaeEncoder.EncoderParameterShapes(config));
        using var encoder = new CogVideoXVaeEncoder(config, checkpoint.Scope(backend, DType.F16));
        // As the bench holds it: the whole video on the device, in the encoder's dtype.
        using var video = Tensor.Empty(backend, DType.F16, 1, config.InChannels, 49, 480, 720);
        long held = backend.AllocatedBytes;
        backend.ResetPeak();
        encoder.Encode(video, options).Dispose();
        Assert.Equal(held, backend.AllocatedBytes);
        return (backend.PeakBytes - held, held);
    }

    [Fact]
    public void ChunkedConvolutionsBringTheWholeFramePeakUnderHalfOfDiffusers()
    {
        var config = VaeConfig.Load(Path.Combine(Fixtures.Golden, "real_configs", "CogVideoX-5b", "vae", "config.json"));
        var (chunked, held) = Measure(config, new VaeEncodeOptions());
        var (whole, _) = Measure(config, new VaeEncodeOptions { ConvolutionWindowFrames = 0 });
        var estimate = CogVideoXVaeEncoder.EstimateMemory(config, DType.F16, 49, 480, 720, tiled: false);
        var estimateWhole = CogVideoXVaeEncoder.EstimateMemory(config, DType.F16, 49, 480, 720, tiled: false, windowFrames: 0);
        // The workspace the estimate adds for a GPU: one more copy of the convolution's input (window or padded copy).
        long frame = 128L * 480 * 720 * 2;
        long workspace = 3 * frame, workspaceWhole = 11 * frame;
        output.WriteLine($"held before (weights + video) {held / Gib:0.000} GiB");
        output.WriteLine($"chunked (window 4): metered working {chunked / Gib:0.000} GiB, estimate {estimate.WorkingBytes / Gib:0.000} GiB " +
            $"(of it workspace {workspace / Gib:0.000}); with weights and video: metered + workspace {(held + chunked + workspace) / Gib:0.000} GiB, estimate {(held + estimate.WorkingBytes) / Gib:0.000} GiB");
        output.WriteLine($"whole convolutions: metered working {whole / Gib:0.000} GiB, estimate {estimateWhole.WorkingBytes / Gib:0.000} GiB " +
            $"(of it workspace {workspaceWhole / Gib:0.000}); with weights and video: metered + workspace {(held + whole + workspaceWhole) / Gib:0.000} GiB, estimate {(held + estimateWhole.WorkingBytes) / Gib:0.000} GiB");
        Assert.InRange(chunked + workspace, chunked, estimate.WorkingBytes);
        // One-frame chunks are convolved straight into the ring's frames (the carried cache is kept frame-major for
        // that): no output frame beside the window, three frames under the estimate. The H200 measured 4.07 GiB with
        // that frame, 0.6 % over half of diffusers' 8.13 GiB in the same session.
        Assert.True(chunked + workspace + 3 * frame <= estimate.WorkingBytes, $"chunks held {chunked / Gib:0.000} GiB");
        Assert.InRange(whole + workspaceWhole, whole, estimateWhole.WorkingBytes);
        // Metered alone the chunks save the padded copy and the separate output (6 frames); with the workspace, 14.
        Assert.True(chunked + workspace + 12 * frame < whole + workspaceWhole, $"chunks held {chunked} bytes against {whole} for whole convolutions");
        // What the bench will report (weights, video and working set, workspace included) against half of diffusers' peak.
        Assert.True((held + estimate.WorkingBytes) / Gib <= DiffusersPeakGib / 2,
            $"estimated peak {(held + estimate.WorkingBytes) / Gib:0.000} GiB is above half of diffusers' {DiffusersPeakGib} GiB");
    }
}

/// <summary>The encoder's estimate at the published size, for the record and for the figures the GPU run should meet.</summary>
public class VaeEncoderEstimateTests(ITestOutputHelper output)
{
    [Fact]
    public void FullSizeEstimateIsAFrameBatchNotTheVideo()
    {
        var config = VaeConfig.Load(Path.Combine(Fixtures.Golden, "real_configs", "CogVideoX-5b", "vae", "config.json"));
        var whole = CogVideoXVaeEncoder.EstimateMemory(config, DType.BF16, 49, 480, 720, tiled: false);
        var tiled = CogVideoXVaeEncoder.EstimateMemory(config, DType.BF16, 49, 480, 720, tiled: true);
        var image = CogVideoXVaeEncoder.EstimateMemory(config, DType.BF16, 1, 480, 720, tiled: false);
        double gib = 1L << 30;
        output.WriteLine($"CogVideoX-5b VAE encoder, BF16: weights {whole.WeightBytes / gib:0.000} GiB; 49×480×720 working {whole.WorkingBytes / gib:0.00} GiB " +
            $"(tiled {tiled.WorkingBytes / gib:0.00} GiB); one image {image.WorkingBytes / gib:0.00} GiB");
        // A 9-frame batch of 128 channels at 480×720 in BF16 is 0.74 GiB: three of them (2.4 GiB with the padding), and
        // 1.65 GiB of caches (1.06 GiB of them the six convolutions of down block 0 at full resolution).
        Assert.InRange(whole.WorkingBytes, 3L << 30, 5L << 30);
        Assert.True(tiled.WorkingBytes < whole.WorkingBytes / 2);
        Assert.True(image.WorkingBytes < whole.WorkingBytes / 3);
        // Where the default tiles do not fit (the tiny config's 16×24 tiles leave a 6-pixel row at 32×48), the estimate
        // is whole frames, as the encode would have to be.
        var tiny = VaeConfig.Load(Path.Combine(Fixtures.Path2b, "vae", "config.json"));
        Assert.Equal(CogVideoXVaeEncoder.EstimateMemory(tiny, DType.F32, 9, 32, 48, tiled: false),
            CogVideoXVaeEncoder.EstimateMemory(tiny, DType.F32, 9, 32, 48, tiled: true));
        // The encoder is about a third of the VAE's 215.6 M parameters.
        Assert.InRange(whole.WeightBytes / 2, 50_000_000, 120_000_000);
    }
}

/// <summary>The encoder's cases in `selftest --golden` (the GPU session's parity run), here on the CPU in each dtype.</summary>
public class VaeEncoderParityTests(ITestOutputHelper output)
{
    [Fact]
    public void GoldenParityRunsTheEncoderCasesInEachDType()
    {
        var checks = CogVideoX.Lab.Benchmarks.GoldenParity.CheckEncoder(CpuBackend.Instance, Fixtures.Golden, [DType.F32, DType.F16, DType.BF16]).ToList();
        foreach (var c in checks)
            output.WriteLine($"{c.Run,-6} {c.Stage,-14} {c.DType.Name(),-5} max abs error {c.MaxAbsError:E3} (GPU bound {c.Bound:E3}, {c.MaxAbsError / c.Bound:0.00} of it)");
        Assert.Equal(3 * 4 * 2, checks.Count);
        Assert.All(checks.Where(c => c.DType == DType.F32), c => Assert.True(c.MaxAbsError <= c.CpuBound, $"{c.Run} {c.Stage}"));
        // Half precision within the GPU tolerance; BF16 pipelines encode in F16 (bf16 itself reaches 1.39× the bound).
        Assert.All(checks, c => Assert.True(c.Passed, $"{c.Run} {c.Stage} {c.DType.Name()}"));
        Assert.All(checks.Where(c => c.DType == DType.BF16), c => Assert.EndsWith("(F16)", c.Stage));
        Assert.Equal(DType.F16, CogVideoXVaeEncoder.EncodeDType(DType.BF16));
        Assert.Equal(DType.F32, CogVideoXVaeEncoder.EncodeDType(DType.F32));
    }
}
