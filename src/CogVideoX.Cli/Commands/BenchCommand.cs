using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Engine.Cuda;
using CogVideoX.Lab;
using CogVideoX.Lab.Benchmarks;

namespace CogVideoX.Cli.Commands;

/// <summary>
/// `bench`: performance measurements that print figures (not tests: timings depend on the machine). `bench gemm`: the
/// CPU GEMM; `bench transformer|vae|encode|t5|all`: full-size CogVideoX stages with random weights (made on the device from
/// the published configs), timed after warm-up with the device synchronised around each repetition, with the peak
/// device memory and the device line; `bench pipeline`: the whole pipeline in each memory mode (see
/// <see cref="BenchPipelineCommand"/>).
/// </summary>
internal static class BenchCommand
{
    private sealed record Options(
        Option<string> Model, Option<string> Device, Option<string> DType, Option<int> Frames, Option<int> Height, Option<int> Width,
        Option<int> Repeats, Option<int> Warmup, Option<bool> Profile, GpuFlags Gpu, Option<string> Linear);

    public static Command Create(Func<GpuCheck> gpu)
    {
        var bench = new Command("bench", "Measure speed: the CPU GEMM, or full-size CogVideoX stages with random weights on a device (median of repeats, peak memory).");
        bench.Subcommands.Add(CreateGemm());
        bench.Subcommands.Add(Stage(gpu, "transformer", "One transformer step with classifier-free guidance (batch 2).", (b, s, o) => [ModelBench.Transformer(b, s, o)]));
        // Image to video: the 5b-I2V transformer (in_channels 32: video and image latents; learned positional table
        // added to the patch embeddings besides the rotary positions). diffusers_bench.py's stage step5b-i2v is its match.
        bench.Subcommands.Add(Stage(gpu, "transformer-i2v", "One CogVideoX-5b-I2V transformer step with classifier-free guidance (in_channels 32, learned positions).",
            (b, s, o) => [ModelBench.Transformer(b, s, o)], defaultModel: "5b-i2v"));
        bench.Subcommands.Add(Stage(gpu, "vae", "The VAE decode of one video.", (b, s, o) => [ModelBench.Vae(b, s, o)]));
        bench.Subcommands.Add(Stage(gpu, "encode", "The VAE encode of one video (image-to-video, video-to-video), whole frames and tiled.", (b, s, o) => ModelBench.VaeEncode(b, s, o)));
        bench.Subcommands.Add(Stage(gpu, "vae-tiled",
            "The VAE decode of one video untiled, in the fewest full-height column tiles that fit 16 GiB (issue 20's 1.5 decode target), and in the default tiles (as the low memory mode).",
            (b, s, o) => [ModelBench.Vae(b, s, o), ModelBench.VaeFit(b, s, o), ModelBench.VaeTiled(b, s, o)]));
        bench.Subcommands.Add(Stage(gpu, "t5", "The T5 encode of a prompt and a negative prompt.", (b, s, o) => [ModelBench.T5(b, s, o)]));
        // The whole run is the real pipeline (generate's code) in each memory mode: its own command.
        bench.Subcommands.Add(BenchPipelineCommand.Create(gpu));
        bench.Subcommands.Add(CreateLora(gpu));
        bench.Subcommands.Add(Stage(gpu, "all", "transformer, vae, encode and t5 one after the other.", (b, s, o) =>
            [ModelBench.Transformer(b, s, o), ModelBench.Vae(b, s, o), .. ModelBench.VaeEncode(b, s, o), ModelBench.T5(b, s, o)]));
        return bench;
    }

    private static readonly Option<string[]> s_loraFiles = new("--lora")
    {
        Description = "A LoRA file to measure with (FILE[:STRENGTH]; the first is 'one LoRA', the first two 'two'); random adapters fill in.",
        HelpName = "FILE[:STRENGTH]",
        AllowMultipleArgumentsPerToken = false,
    };

    private static readonly Option<int> s_loraRank = new("--lora-rank") { Description = "Rank of the random adapters.", DefaultValueFactory = _ => 64 };

    private static readonly Option<string> s_loraTargets = new("--lora-targets")
    {
        Description = "Layers of each block the random adapters adapt: attn (to_q, to_k, to_v, to_out.0) or all (every linear).",
        DefaultValueFactory = _ => "attn",
    };

    /// <summary>`bench lora`: load time and CFG step time with no, one and two LoRAs fused, and what unfused adapters would add per step.</summary>
    private static Command CreateLora(Func<GpuCheck> gpu)
    {
        LoraBenchSettings? lora = null;
        var cmd = Stage(gpu, "lora", "LoRA: transformer load and CFG step with no, one and two adapters fused, and the per-step work of unfused adapters.",
            (b, s, o) => ModelBench.Lora(b, s, lora!, o));
        foreach (var option in new Option[] { s_loraFiles, s_loraRank, s_loraTargets }) cmd.Options.Add(option);
        var action = cmd.Action!;
        cmd.SetAction(parse =>
        {
            string targets = parse.GetValue(s_loraTargets)!.Trim().ToLowerInvariant();
            if (targets is not ("attn" or "all"))
                throw new CogVideoXException($"--lora-targets {targets}: use attn (to_q, to_k, to_v, to_out.0 of every block) or all (every linear layer of every block)", 2);
            int rank = parse.GetValue(s_loraRank);
            if (rank < 1) throw new CogVideoXException($"--lora-rank {rank}: the rank must be at least 1 (trained CogVideoX LoRAs use 64 or 128)", 2);
            lora = new LoraBenchSettings
            {
                Files = (parse.GetValue(s_loraFiles) ?? []).Select(Models.Lora.LoraSpec.Parse).ToList(),
                Rank = rank,
                Targets = targets,
            };
            return ((System.CommandLine.Invocation.SynchronousCommandLineAction)action).Invoke(parse);
        });
        return cmd;
    }

    private static Command Stage(Func<GpuCheck> gpu, string name, string description, Func<IBackend, BenchSettings, Action<string>, IReadOnlyList<StageResult>> run,
        string defaultModel = "2b")
    {
        var o = new Options(
            new Option<string>("--model-config") { Description = "2b, 5b, 5b-i2v, 1.5, 1.5-i2v (the published configs) or a folder with transformer/, vae/, text_encoder/, scheduler/ configs.", DefaultValueFactory = _ => defaultModel },
            new Option<string>("--device") { Description = "auto (the GPU when one works, else the CPU), cuda, cuda:N or cpu.", DefaultValueFactory = _ => DeviceSelection.Auto },
            new Option<string>("--dtype") { Description = "f16, bf16 or f32; auto: bf16 for rotary (5b-style and 1.5) models, f16 otherwise.", DefaultValueFactory = _ => "auto" },
            new Option<int>("--frames") { Description = "Video frames (4k + 1).", DefaultValueFactory = _ => 49 },
            new Option<int>("--height") { Description = "Video height in pixels (multiple of 16).", DefaultValueFactory = _ => 480 },
            new Option<int>("--width") { Description = "Video width in pixels (multiple of 16).", DefaultValueFactory = _ => 720 },
            new Option<int>("--repeats") { Description = "Timed repetitions; the median is reported.", DefaultValueFactory = _ => 3 },
            new Option<int>("--warmup") { Description = "Untimed repetitions first.", DefaultValueFactory = _ => 1 },
            new Option<bool>("--profile") { Description = "After the timed repetitions, run one more with each op timed on the device and print where the time goes." },
            new GpuFlags(),
            new Option<string>("--linear") { Description = "Transformer stages: the blocks' projections exact or fp8 (FP8 E4M3, quantized before the first repetition; sm_89+ GPUs).", DefaultValueFactory = _ => "exact", HelpName = "exact|fp8" });
        var cmd = new Command(name, description) { o.Model, o.Device, o.DType, o.Frames, o.Height, o.Width, o.Repeats, o.Warmup, o.Profile, o.Linear };
        o.Gpu.AddTo(cmd);
        cmd.SetAction(parse => Run(parse, o, run, parse.InvocationConfiguration.Output, gpu));
        return cmd;
    }

    private static int Run(ParseResult parse, Options o, Func<IBackend, BenchSettings, Action<string>, IReadOnlyList<StageResult>> run, TextWriter output, Func<GpuCheck> gpu)
    {
        int frames = parse.GetValue(o.Frames), height = parse.GetValue(o.Height), width = parse.GetValue(o.Width);
        int repeats = parse.GetValue(o.Repeats), warmup = parse.GetValue(o.Warmup);
        // Usage errors exit 2, as the parser's own do.
        if (frames < 1 || (frames - 1) % 4 != 0)
            throw new CogVideoXException($"--frames {frames}: CogVideoX takes 4k + 1 frames (e.g. 49, 17, 9)", 2);
        if (height < 16 || width < 16 || height % 16 != 0 || width % 16 != 0)
            throw new CogVideoXException($"--height {height} --width {width}: both must be positive multiples of 16 (e.g. 480 × 720)", 2);
        if (repeats < 1 || warmup < 0)
            throw new CogVideoXException($"--repeats {repeats} --warmup {warmup}: at least 1 timed repetition and 0 or more warm-up ones", 2);
        var folder = ModelBench.ResolveConfigFolder(parse.GetValue(o.Model)!);
        var settings = new BenchSettings
        {
            ConfigFolder = folder,
            Frames = frames,
            Height = height,
            Width = width,
            Repeats = repeats,
            Warmup = warmup,
            Profile = parse.GetValue(o.Profile),
            Attention = GpuOptions.ParseAttentionMode(o.Gpu.Names(parse).Attention),
            Linears = LinearModes.Parse(parse.GetValue(o.Linear)!),
        };
        settings = settings with { DType = ParseDType(parse.GetValue(o.DType)!, settings) };
        var choice = DeviceSelection.Resolve(parse.GetValue(o.Device)!.Trim().ToLowerInvariant(), gpu);
        if (choice.Reason.Length > 0) parse.InvocationConfiguration.Error.WriteLine(choice.Reason);
        var device = Backends.Parse(choice.Device);
        var backend = Backends.Get(device, o.Gpu.Read(parse));
        output.WriteLine($"device: {DeviceLine(backend)}");
        output.WriteLine($"model: {settings.ModelName} ({folder}), {settings.DType.Name()}, {frames} frames {height}×{width}, random weights");
        output.Flush();
        var results = run(backend, settings, line =>
        {
            output.WriteLine(line);
            output.Flush();
        });
        output.WriteLine();
        foreach (var r in results)
        {
            var times = string.Join(" ", r.Seconds.Select(t => t.ToString("0.000", CultureInfo.InvariantCulture)));
            output.WriteLine($"{r.Stage,-12} {r.Median,9:0.000} s   peak {Gib(r.PeakBytes)}{(r.WeightBytes > 0 ? $" (weights {Gib(r.WeightBytes)})" : "")}   [{times}]   {r.Description}");
        }
        foreach (var r in results.Where(r => r.Profile is not null))
            PrintProfile(r, output);
        if (backend is CudaBackend cuda)
        {
            var (cudnnAttention, ownAttention, cudnnConv, ownConv) = cuda.PathCounts;
            output.WriteLine($"paths: attention {cudnnAttention} cuDNN / {ownAttention} own kernel; convolution {cudnnConv} cuDNN / {ownConv} im2col");
            foreach (var note in cuda.Notes) output.WriteLine($"note: {note}");
            if (settings.Profile)
                foreach (var plan in cuda.ConvolutionPlans) output.WriteLine($"convolution plan: {plan}");
        }
        return 0;
    }

    /// <summary>Where one repetition's device time went: by op, then the largest individual op kinds.</summary>
    private static void PrintProfile(StageResult r, TextWriter o)
    {
        var entries = r.Profile!;
        double total = entries.Sum(e => e.Milliseconds);
        o.WriteLine();
        o.WriteLine($"profile of one {r.Stage} repetition: {total:0.0} ms of device time in {entries.Sum(e => e.Calls)} op calls");
        foreach (var op in entries.GroupBy(e => OpName(e.Key)).Select(g => (Op: g.Key, Ms: g.Sum(e => e.Milliseconds), Calls: g.Sum(e => e.Calls))).OrderByDescending(g => g.Ms))
            o.WriteLine($"  {op.Op,-22} {op.Ms,10:0.00} ms {100 * op.Ms / total,6:0.0}%  {op.Calls,6} calls");
        o.WriteLine("  largest op kinds:");
        foreach (var e in entries.Take(40))
            o.WriteLine($"  {e.Milliseconds,10:0.00} ms {e.Calls,6} × {e.Milliseconds / e.Calls,8:0.000} ms  {e.Key}");
    }

    /// <summary>The op of a profile key (its first word, with the binary/unary op kept).</summary>
    private static string OpName(string key)
    {
        var words = key.Split(' ');
        return words[0] is "binary" or "unary" && words.Length > 1 ? words[0] + " " + words[1] : words[0];
    }

    private static DType ParseDType(string text, BenchSettings settings) => text.Trim().ToLowerInvariant() switch
    {
        "auto" => ModelBench.LoadTransformerConfig(settings).UseRotaryPositionalEmbeddings ? DType.BF16 : DType.F16,
        "f16" or "fp16" or "float16" => DType.F16,
        "bf16" or "bfloat16" => DType.BF16,
        "f32" or "fp32" or "float32" => DType.F32,
        _ => throw new CogVideoXException($"--dtype '{text}': use f16, bf16, f32 or auto", 2),
    };

    /// <summary>The device, its driver and the libraries in use, for a benchmark's record.</summary>
    internal static string DeviceLine(IBackend backend)
    {
        if (backend is not CudaBackend cuda) return backend.Name;
        var driver = CudaLibraries.Probe(CudaLibrary.Driver).Version ?? "driver version unknown";
        var cublas = CudaLibraries.Probe(CudaLibrary.CublasLt).Version;
        var cudnn = CudaLibraries.Probe(CudaLibrary.Cudnn);
        var (free, total) = cuda.DeviceMemory();
        return $"{cuda.Name}, {total / (double)(1L << 30):0.0} GiB ({free / (double)(1L << 30):0.0} free), {driver}, cuBLASLt {cublas}, " +
            (cudnn.Found ? $"cuDNN {cudnn.Version}" : "no cuDNN");
    }

    private static string Gib(long bytes) => $"{bytes / (double)(1L << 30):0.00} GiB";

    private static Command CreateGemm()
    {
        var m = new Option<int>("--m") { Description = "Rows of the input (tokens).", DefaultValueFactory = _ => 1024 };
        var n = new Option<int>("--n") { Description = "Output features (rows of the weight).", DefaultValueFactory = _ => 1024 };
        var k = new Option<int>("--k") { Description = "Input features (the reduction).", DefaultValueFactory = _ => 1024 };
        var repeat = new Option<int>("--repeat") { Description = "Timed runs after two warm-up runs; the median is reported.", DefaultValueFactory = _ => 10 };
        var cmd = new Command("gemm",
            "CPU float32 GEMM as a linear layer, y[m, n] = x[m, k] · w[n, k]ᵀ: prints GFLOP/s (median of the timed runs) and the CPU's vector features.");
        cmd.Options.Add(m);
        cmd.Options.Add(n);
        cmd.Options.Add(k);
        cmd.Options.Add(repeat);
        cmd.SetAction(parse =>
        {
            var o = parse.InvocationConfiguration.Output;
            var result = RunGemm(parse.GetValue(m), parse.GetValue(n), parse.GetValue(k), parse.GetValue(repeat));
            o.WriteLine($"cpu: {CpuBackend.Capabilities}");
            o.WriteLine($"gemm f32 m={result.M} n={result.N} k={result.K}: median {result.MedianSeconds * 1e3:F2} ms, "
                + $"{result.MedianGflops:F1} GFLOP/s (best {result.BestGflops:F1}, {result.Repeats} runs after warm-up)");
            return 0;
        });
        return cmd;
    }

    internal readonly record struct GemmResult(int M, int N, int K, int Repeats, double MedianSeconds, double MedianGflops, double BestGflops);

    internal static GemmResult RunGemm(int m, int n, int k, int repeats)
    {
        Positive(m, "--m");
        Positive(n, "--n");
        Positive(k, "--k");
        Positive(repeats, "--repeat");
        if ((long)m * k > int.MaxValue || (long)n * k > int.MaxValue || (long)m * n > int.MaxValue)
            throw new CogVideoXException($"bench gemm: {m}×{k}, {n}×{k} or {m}×{n} has more than {int.MaxValue} elements; use smaller sizes.");
        var random = new Random(1);
        using var x = Tensor.FromArray(RandomValues(random, m * k), [m, k]);
        using var w = Tensor.FromArray(RandomValues(random, n * k), [n, k]);
        for (int i = 0; i < 2; i++)
        {
            using var warm = x.Linear(w);
        }
        var seconds = new double[repeats];
        for (int i = 0; i < repeats; i++)
        {
            long start = Stopwatch.GetTimestamp();
            using var y = x.Linear(w);
            seconds[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        Array.Sort(seconds);
        double median = repeats % 2 == 1 ? seconds[repeats / 2] : (seconds[repeats / 2 - 1] + seconds[repeats / 2]) / 2;
        double flops = 2.0 * m * n * k;
        return new GemmResult(m, n, k, repeats, median, flops / median / 1e9, flops / seconds[0] / 1e9);
    }

    private static void Positive(int value, string option)
    {
        if (value <= 0)
            throw new CogVideoXException($"bench gemm: {option} must be a positive integer, got {value}.");
    }

    private static float[] RandomValues(Random random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }
}
