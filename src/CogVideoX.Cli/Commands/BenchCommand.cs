using System.CommandLine;
using System.Diagnostics;
using CogVideoX.Engine;

namespace CogVideoX.Cli.Commands;

/// <summary>
/// `bench`: performance measurements that print figures (not tests: timings depend on the machine).
/// One subcommand per thing measured; each lives in a Create… method here.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var cmd = new Command("bench", "Measure the speed of the engine's kernels and print the figures.");
        cmd.Subcommands.Add(CreateGemm());
        cmd.Subcommands.Add(BenchPipelineCommand.Create());
        return cmd;
    }

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
