using System.Diagnostics;
using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Engine.Testing;
using CogVideoX.Models.Text;
using CogVideoX.Models.Transformer;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;

namespace CogVideoX.Lab.Benchmarks;

/// <summary>What a benchmark runs: a model's configs (random weights), the video size, the repetitions.</summary>
public sealed record BenchSettings
{
    /// <summary>A folder with the model's <c>transformer/</c>, <c>vae/</c>, <c>text_encoder/</c> and <c>scheduler/</c> configs.</summary>
    public required string ConfigFolder { get; init; }

    public DType DType { get; init; } = DType.F16;

    public int Frames { get; init; } = 49;

    public int Height { get; init; } = 480;

    public int Width { get; init; } = 720;

    /// <summary>Timed repetitions (their median is reported) after <see cref="Warmup"/> untimed ones.</summary>
    public int Repeats { get; init; } = 3;

    public int Warmup { get; init; } = 1;

    public int TextLength { get; init; } = 226;

    public int Seed { get; init; }

    /// <summary>The transformer's self-attention (<c>--attention sage8</c>: 8-bit, with its error against exact reported).</summary>
    public AttentionMode Attention { get; init; }

    /// <summary>After the timed repetitions, run one more with every op timed on the device (when the backend can).</summary>
    public bool Profile { get; init; }

    /// <summary>The transformer blocks' projections: exact, or FP8 (quantized before the first repetition).</summary>
    public Models.Transformer.LinearMode Linears { get; init; }

    public string ModelName => Path.GetFileName(Path.TrimEndingDirectorySeparator(ConfigFolder));

    public int LatentFrames => (Frames - 1) / 4 + 1;

    /// <summary>
    /// Latent frames the transformer sees: <see cref="LatentFrames"/>, padded in front to whole temporal patches for
    /// CogVideoX 1.5 (81 frames: 21 → 22) as its pipeline does; the VAE decodes the unpadded count.
    /// </summary>
    public int TransformerLatentFrames(TransformerConfig config) => LatentFrames + ModelDefaults.For(config).LatentPadding(LatentFrames);

    public int LatentHeight => Height / 8;

    public int LatentWidth => Width / 8;
}

/// <summary>One stage's timed repetitions (seconds) and the device memory it held at its peak.</summary>
public sealed record StageResult(string Stage, string Description, IReadOnlyList<double> Seconds, long PeakBytes, long WeightBytes)
{
    /// <summary>Device time per op of one profiled repetition (largest first), when profiling was asked for.</summary>
    public IReadOnlyList<OpProfileEntry>? Profile { get; init; }

    public double Median
    {
        get
        {
            var sorted = Seconds.Order().ToArray();
            return sorted.Length == 0 ? double.NaN : sorted[sorted.Length / 2];
        }
    }
}

/// <summary>
/// Full-size CogVideoX stages with random weights (built from the published configs, made on the device): the
/// transformer step with classifier-free guidance, the VAE decode, the T5 encode, and the whole pipeline. Each timed
/// region starts and ends with a device synchronisation, so it is the wall time of the work, launches included.
/// </summary>
public static partial class ModelBench
{
    /// <summary>
    /// "2b" / "5b" (the published configs kept with the test fixtures, found from the working directory or the
    /// executable's folder upwards) or a folder holding the component configs.
    /// </summary>
    public static string ResolveConfigFolder(string model)
    {
        if (Directory.Exists(Path.Combine(model, "transformer"))) return Path.GetFullPath(model);
        string? name = model.ToLowerInvariant() switch
        {
            "2b" or "cogvideox-2b" => "CogVideoX-2b",
            "5b" or "cogvideox-5b" => "CogVideoX-5b",
            "5b-i2v" or "cogvideox-5b-i2v" => "CogVideoX-5b-I2V",
            "1.5" or "1.5-5b" or "cogvideox1.5-5b" => "CogVideoX1.5-5B",
            "1.5-i2v" or "1.5-5b-i2v" or "cogvideox1.5-5b-i2v" => "CogVideoX1.5-5B-I2V",
            _ => null,
        };
        if (name is null)
            throw new CogVideoXException($"--model-config '{model}': use 2b, 5b, 5b-i2v, 1.5, 1.5-i2v, or a folder holding transformer/, vae/, text_encoder/ and scheduler/ config.json files", 2);
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "tests", "fixtures", "golden", "real_configs", name);
                if (Directory.Exists(candidate)) return candidate;
            }
        }
        throw new CogVideoXException(
            $"the published {name} configs (tests/fixtures/golden/real_configs/{name}) were not found above {Directory.GetCurrentDirectory()}; run from the repository or pass --model-config <folder>");
    }

    public static TransformerConfig LoadTransformerConfig(BenchSettings s) => TransformerConfig.Load(Path.Combine(s.ConfigFolder, "transformer", "config.json"));

    /// <summary>
    /// The transformer with random weights on the backend (its declared parameter list, exactly), its blocks'
    /// projections held as <paramref name="projections"/> says (FP8 only: quantized as loaded, no exact copy).
    /// </summary>
    public static CogVideoXTransformer RandomTransformer(TransformerConfig config, IBackend backend, DType dtype, int seed,
        ProjectionWeights projections = ProjectionWeights.Exact)
    {
        using var checkpoint = Checkpoint.Random("random transformer weights", seed, CogVideoXTransformer.ParameterShapes(config));
        return new CogVideoXTransformer(config, checkpoint.Scope(backend, dtype), blocks: null, projections: projections);
    }

    /// <summary>The VAE decoder with random weights (its declared parameter list, exactly).</summary>
    public static CogVideoXVae RandomVae(BenchSettings s, IBackend backend)
    {
        var config = VaeConfig.Load(Path.Combine(s.ConfigFolder, "vae", "config.json"));
        using var checkpoint = Checkpoint.Random("random VAE weights", s.Seed + 1, CogVideoXVae.DecoderParameterShapes(config));
        return new CogVideoXVae(config, checkpoint.Scope(backend, CogVideoXVae.DecodeDType(s.DType)));  // as the pipeline decodes
    }

    /// <summary>The VAE encoder with random weights (its declared parameter list, exactly), in the dtype a pipeline encodes in.</summary>
    public static CogVideoXVaeEncoder RandomVaeEncoder(BenchSettings s, IBackend backend)
    {
        var config = VaeConfig.Load(Path.Combine(s.ConfigFolder, "vae", "config.json"));
        using var checkpoint = Checkpoint.Random("random VAE encoder weights", s.Seed + 4, CogVideoXVaeEncoder.EncoderParameterShapes(config));
        return new CogVideoXVaeEncoder(config, checkpoint.Scope(backend, CogVideoXVaeEncoder.EncodeDType(s.DType)));
    }

    /// <summary>The text encoder with random weights (its declared parameter list, exactly).</summary>
    public static T5Encoder RandomT5(BenchSettings s, IBackend backend)
    {
        var config = T5Config.Load(Path.Combine(s.ConfigFolder, "text_encoder", "config.json"));
        using var checkpoint = Checkpoint.Random("random T5 weights", s.Seed + 2, T5Encoder.ParameterShapes(config));
        return new T5Encoder(config, checkpoint.Scope(backend, s.DType));
    }

    /// <summary>One transformer call with CFG (batch 2) at the settings' size, repeated.</summary>
    public static StageResult Transformer(IBackend backend, BenchSettings s, Action<string>? log = null)
    {
        var config = LoadTransformerConfig(s);
        // FP8 linears as a run without exact steps holds them: the projections' codes and scales only, quantized as loaded.
        bool fp8 = s.Linears == Models.Transformer.LinearMode.Fp8;
        var clock = Stopwatch.StartNew();
        using var model = RandomTransformer(config, backend, s.DType, s.Seed, fp8 ? ProjectionWeights.Fp8 : ProjectionWeights.Exact);
        backend.Synchronize();
        log?.Invoke($"  transformer built in {clock.Elapsed.TotalSeconds:0.000} s: {model.WeightBytes / (double)(1L << 30):0.00} GiB of weights" +
            (fp8 ? $" (projections as FP8 codes and scales; exact: {CogVideoXTransformer.EstimateWeightBytes(config, s.DType) / (double)(1L << 30):0.00} GiB)" : ""));
        string linears = "";
        if (fp8)
        {
            model.Linears = Models.Transformer.LinearMode.Fp8;
            linears = ", fp8 linears (FP8-only projections)";
        }
        using var scope = new TensorScope();
        var inputs = new OpInputs(backend, s.DType, s.Seed);
        int frames = s.TransformerLatentFrames(config);
        var latents = inputs.Uniform([2, frames, config.InChannels, s.LatentHeight, s.LatentWidth], -2f, 2f);
        var text = inputs.Uniform([2, s.TextLength, config.TextEmbedDim], -1f, 1f);
        var rotary = config.UseRotaryPositionalEmbeddings ? model.BuildRotaryTables(frames, s.LatentHeight, s.LatentWidth) : null;
        using var rotaryScope = rotary;
        int videoTokens = frames / (config.PatchSizeT ?? 1) * (s.LatentHeight / config.PatchSize) * (s.LatentWidth / config.PatchSize);
        // CogVideoX 1.5-I2V takes the ofs value its pipeline passes (2.0).
        float? ofs = config.OfsEmbedDim is > 0 ? 2f : null;
        model.AttentionMode = s.Attention;
        var times = Repeat(backend, s, () => model.Forward(latents, text, [999f, 999f], rotary, ofs).Dispose(), log, "step");
        string fidelity = "";
        if (s.Attention != AttentionMode.Exact || fp8)
        {
            // The fast step's output against the exact step's (the model's dtype in every linear, exact attention), same
            // inputs and the same random weights (random weights understate or overstate real ones: docs/fast-modes.md).
            // FP8-only projections cannot run exact linears, so the exact step is a second model made from the same seed.
            float[] fastOutput, exactOutput;
            using (var fast = model.Forward(latents, text, [999f, 999f], rotary, ofs)) fastOutput = fast.ToFloatArray();
            if (fp8)
            {
                using var exactModel = RandomTransformer(config, backend, s.DType, s.Seed, ProjectionWeights.Exact);
                using var exact = exactModel.Forward(latents, text, [999f, 999f], rotary, ofs);
                exactOutput = exact.ToFloatArray();
            }
            else
            {
                model.AttentionMode = AttentionMode.Exact;
                using var exact = model.Forward(latents, text, [999f, 999f], rotary, ofs);
                exactOutput = exact.ToFloatArray();
                model.AttentionMode = s.Attention;
            }
            double error = RelativeError(fastOutput, exactOutput);
            string modes = string.Join(" + ", new[] { fp8 ? "fp8 linears" : null, s.Attention != AttentionMode.Exact ? "8-bit attention" : null }.OfType<string>());
            log?.Invoke($"  {modes}: relative error of the step's output against the exact step {error:E3}");
            fidelity = $"{(s.Attention != AttentionMode.Exact ? ", 8-bit attention (sage8)" : "")}; output relative error " +
                $"{error.ToString("E3", System.Globalization.CultureInfo.InvariantCulture)} against the exact step";
        }
        return new StageResult("transformer",
            $"{s.ModelName} transformer {s.DType.Name()}{linears}, CFG batch 2, latents {frames}×{s.LatentHeight}×{s.LatentWidth}, {videoTokens} video + {s.TextLength} text tokens{fidelity}",
            times.Seconds, times.Peak, model.WeightBytes + model.Fp8Bytes)
        { Profile = times.Profile };
    }

    /// <summary>‖a − b‖ / ‖b‖ in double.</summary>
    public static double RelativeError(float[] a, float[] b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        double diff = 0, norm = 0;
        for (int i = 0; i < b.Length; i++)
        {
            double d = (double)a[i] - b[i];
            diff += d * d;
            norm += (double)b[i] * b[i];
        }
        return norm > 0 ? Math.Sqrt(diff / norm) : Math.Sqrt(diff);
    }

    /// <summary>The VAE decode of the settings' latents (one video), repeated.</summary>
    public static StageResult Vae(IBackend backend, BenchSettings s, Action<string>? log = null) => Vae(backend, s, "vae", _ => null, log);

    /// <summary>
    /// The VAE decode of the settings' latents in the model's default spatial tiles (what the low memory mode uses),
    /// repeated.
    /// </summary>
    public static StageResult VaeTiled(IBackend backend, BenchSettings s, Action<string>? log = null) =>
        Vae(backend, s, "vae-tiled", c => VaeTiling.ForConfig(c), log);

    /// <summary>Issue 20's decode budget: CogVideoX 1.5's VAE decode at 81 frames 768×1360 within 16 GiB.</summary>
    public const long DecodeBudget15 = 16L << 30;

    /// <summary>
    /// The VAE decode in the fewest full-height column tiles estimated to fit <see cref="DecodeBudget15"/>
    /// (<see cref="CogVideoXVae.FitTiling"/>; whole frames when they fit), repeated: for CogVideoX 1.5 at 81 frames
    /// 768×1360 the figure to hold against 16 GiB and 1.1× the untiled time.
    /// </summary>
    public static StageResult VaeFit(IBackend backend, BenchSettings s, Action<string>? log = null) =>
        // 1 GiB of the budget is left to what the estimate does not count (allocator rounding, cuDNN workspaces).
        Vae(backend, s, "vae-fit", c => CogVideoXVae.FitTiling(c, CogVideoXVae.DecodeDType(s.DType),
            GenerationRules.DecodedFrames(s.LatentFrames, c.TemporalCompressionRatio), s.Height, s.Width, DecodeBudget15 - (1L << 30)), log);

    private static StageResult Vae(IBackend backend, BenchSettings s, string stage, Func<VaeConfig, VaeTiling?> tiling, Action<string>? log)
    {
        using var vae = RandomVae(s, backend);
        using var scope = new TensorScope();
        var inputs = new OpInputs(backend, s.DType, s.Seed + 3);
        var z = inputs.Uniform([1, vae.Config.LatentChannels, s.LatentFrames, s.LatentHeight, s.LatentWidth], -2f, 2f);
        var options = new VaeDecodeOptions { Tiling = tiling(vae.Config) };
        var times = Repeat(backend, s, () => vae.Decode(z, options).Dispose(), log, "decode");
        string tiles = options.Tiling is { } t
            ? $", tiles of {t.TileSampleMinHeight}×{t.TileSampleMinWidth} (overlap {t.OverlapFactorHeight:0.###}, {t.OverlapFactorWidth:0.###})"
            : ", whole frames";
        return new StageResult(stage,
            $"{s.ModelName} VAE decode {vae.DType.Name()}, {s.LatentFrames} latent frames → {vae.OutputFrames(s.LatentFrames)} frames {s.Height}×{s.Width}{tiles}",
            times.Seconds, times.Peak, 0)
        { Profile = times.Profile };
    }

    /// <summary>
    /// The VAE encode of one video of the settings' size (values in [−1, 1]) into its latent distribution, repeated:
    /// whole frames ("encode", convolutions in chunks: the default), the same with whole convolutions ("encode-wholeconv",
    /// the schedule before the chunks, for the memory and time they trade), then with the config's default tiles
    /// ("encode-tiled") where they fit the size. Each description names the estimate (weights, video and working set,
    /// the convolution workspace included) that the peak should stay under.
    /// </summary>
    public static IReadOnlyList<StageResult> VaeEncode(IBackend backend, BenchSettings s, Action<string>? log = null)
    {
        using var encoder = RandomVaeEncoder(s, backend);
        log?.Invoke($"  VAE encoder built: {encoder.WeightBytes / (double)(1L << 30):0.00} GiB of weights");
        using var scope = new TensorScope();
        var inputs = new OpInputs(backend, encoder.DType, s.Seed + 5);
        var video = inputs.Uniform([1, encoder.Config.InChannels, s.Frames, s.Height, s.Width], -1f, 1f);
        string what = $"{s.ModelName} VAE encode {encoder.DType.Name()}, {s.Frames} frames {s.Height}×{s.Width} → {encoder.LatentFrames(s.Frames)} latent frames";
        var results = new List<StageResult>();
        long held = encoder.WeightBytes + video.ElementCount * video.DType.SizeOf();
        string Estimate(bool tiled, int window) =>
            $"estimate {(held + CogVideoXVaeEncoder.EstimateMemory(encoder.Config, encoder.DType, s.Frames, s.Height, s.Width, tiled, window).WorkingBytes) / (double)(1L << 30):0.00} GiB";
        var whole = Repeat(backend, s, () => encoder.Encode(video).Dispose(), log, "encode");
        results.Add(new StageResult("encode", $"{what}; convolution chunks of {VaeEncodeOptions.DefaultConvolutionWindowFrames} frames; {Estimate(false, VaeEncodeOptions.DefaultConvolutionWindowFrames)}",
            whole.Seconds, whole.Peak, encoder.WeightBytes)
        { Profile = whole.Profile });
        var wholeConv = new VaeEncodeOptions { ConvolutionWindowFrames = 0 };
        var unchunked = Repeat(backend, s, () => encoder.Encode(video, wholeConv).Dispose(), log, "encode, whole convolutions");
        results.Add(new StageResult("encode-wholeconv", $"same, whole convolutions (the schedule before the chunks); {Estimate(false, 0)}", unchunked.Seconds, unchunked.Peak, encoder.WeightBytes)
        { Profile = unchunked.Profile });
        var tiles = VaeTiling.ForConfig(encoder.Config);
        if (encoder.CanTile(tiles, s.Height, s.Width))
        {
            var options = new VaeEncodeOptions { Tiling = tiles };
            var tiled = Repeat(backend, s, () => encoder.Encode(video, options).Dispose(), log, "tiled encode");
            results.Add(new StageResult("encode-tiled", $"same, tiles of {tiles.TileSampleMinHeight}×{tiles.TileSampleMinWidth} pixels; {Estimate(true, VaeEncodeOptions.DefaultConvolutionWindowFrames)}", tiled.Seconds, tiled.Peak, encoder.WeightBytes)
            { Profile = tiled.Profile });
        }
        else
        {
            log?.Invoke($"  tiled encode skipped: the default tiles ({tiles.TileSampleMinHeight}×{tiles.TileSampleMinWidth}) leave a tile under one latent pixel at {s.Height}×{s.Width}");
        }
        return results;
    }

    /// <summary>The T5 encode of a prompt and a negative prompt (batch 2, as CFG needs), repeated.</summary>
    public static StageResult T5(IBackend backend, BenchSettings s, Action<string>? log = null)
    {
        using var t5 = RandomT5(s, backend);
        using var ids = RandomIds(backend, t5.VocabSize, 2, s.TextLength, s.Seed);
        var times = Repeat(backend, s, () => t5.Forward(ids).Dispose(), log, "encode");
        return new StageResult("t5", $"T5 encoder {s.DType.Name()} ({t5.Config.NumLayers} layers, d_model {t5.DModel}), batch 2 × {s.TextLength} tokens",
            times.Seconds, times.Peak, 0)
        { Profile = times.Profile };
    }

    private static Tensor RandomIds(IBackend backend, int vocab, int batch, int length, int seed)
    {
        var random = new Random(seed + 17);
        var ids = new long[batch * length];
        for (int i = 0; i < ids.Length; i++) ids[i] = random.Next(vocab);
        return Tensor.FromArray(ids, [batch, length], backend);
    }

    private static (IReadOnlyList<double> Seconds, long Peak, IReadOnlyList<OpProfileEntry>? Profile) Repeat(IBackend backend, BenchSettings s, Action body, Action<string>? log, string what)
    {
        var stats = backend as IMemoryStatistics;
        for (int i = 0; i < s.Warmup; i++)
        {
            var w = Stopwatch.StartNew();
            body();
            backend.Synchronize();
            log?.Invoke($"  warm-up {what}: {w.Elapsed.TotalSeconds:0.000} s");
        }
        backend.Synchronize();
        stats?.ResetPeak();
        var times = new List<double>();
        for (int i = 0; i < s.Repeats; i++)
        {
            var clock = Stopwatch.StartNew();
            body();
            backend.Synchronize();
            times.Add(clock.Elapsed.TotalSeconds);
            log?.Invoke($"  {what} {i + 1}: {times[^1]:0.000} s");
        }
        long peak = stats?.PeakBytes ?? 0;
        IReadOnlyList<OpProfileEntry>? profile = null;
        if (s.Profile && backend is IOpProfiling profiler)
        {
            profiler.StartProfile();
            var clock = Stopwatch.StartNew();
            body();
            profile = profiler.StopProfile();
            log?.Invoke($"  profiled {what}: {clock.Elapsed.TotalSeconds:0.000} s (with per-op events)");
        }
        return (times, peak, profile);
    }
}
