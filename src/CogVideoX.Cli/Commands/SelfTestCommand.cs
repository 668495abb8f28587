using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using CogVideoX.Engine;
using CogVideoX.Engine.Testing;
using CogVideoX.Lab.Benchmarks;

namespace CogVideoX.Cli.Commands;

/// <summary>
/// `selftest`: runs every case of the op catalogue on a device and on the CPU reference and prints the comparison
/// table; exits non-zero when any case fails or device memory is left held afterwards. `--timing` adds op timings at
/// model-sized shapes.
/// </summary>
internal static class SelfTestCommand
{
    public static Command Create()
    {
        var device = new Option<string>("--device") { Description = "The device to check against the CPU: cuda or cuda:N.", DefaultValueFactory = _ => "cuda" };
        var filter = new Option<string?>("--filter") { Description = "Only cases whose op name contains this text." };
        var timing = new Option<bool>("--timing") { Description = "Also time ops at CogVideoX-2b sizes (needs a few GB of device memory)." };
        var timingOnly = new Option<bool>("--timing-only") { Description = "Only the timings, no comparison cases." };
        var golden = new Option<bool>("--golden") { Description = "Instead: run the golden fixture runs' T5, transformer and VAE stages on the device (float32 and half precision) against the fixtures." };
        var fixtures = new Option<string?>("--fixtures") { Description = "The golden fixture folder (default: tests/fixtures/golden above the working directory)." };
        var cmd = new Command("selftest", "Check every backend op on a device against the CPU reference (normalised error per case).")
        {
            device, filter, timing, timingOnly, golden, fixtures,
        };
        var gpu = new GpuFlags();
        gpu.AddTo(cmd);
        cmd.SetAction(parse => parse.GetValue(golden)
            ? RunGolden(parse.GetValue(device)!, gpu.Read(parse), parse.GetValue(fixtures), parse.InvocationConfiguration.Output)
            : Run(parse.GetValue(device)!, gpu.Read(parse), parse.GetValue(filter), parse.GetValue(timing) || parse.GetValue(timingOnly),
                !parse.GetValue(timingOnly), parse.InvocationConfiguration.Output));
        return cmd;
    }

    /// <summary>
    /// The golden runs' model stages on the device: float32 and the half type each style's published model uses
    /// (F16 for 2b, BF16 for 5b; both run for both styles), max error against the README's GPU tolerance.
    /// </summary>
    private static int RunGolden(string deviceText, GpuOptions gpu, string? fixtures, TextWriter o)
    {
        var folder = GoldenParity.FindFixtures(fixtures);
        var target = Backends.Get(Backends.Parse(deviceText), gpu);
        o.WriteLine($"golden parity: {BenchCommand.DeviceLine(target)}, fixtures {folder}");
        string header = $"{"style",-18} {"run",-20} {"stage",-26} {"dtype",-5} {"max abs err",11} {"bound",9} {"cpu bound",9}  result";
        o.WriteLine(header);
        o.WriteLine(new string('-', header.Length));
        var checks = GoldenParity.Run(target, folder, [DType.F32, DType.F16, DType.BF16], c =>
        {
            o.WriteLine($"{c.Style,-18} {c.Run,-20} {c.Stage,-26} {c.DType.Name(),-5} {Number(c.MaxAbsError),11} {Number(c.Bound),9} {Number(c.CpuBound),9}  " +
                $"{(c.Passed ? "pass" : "FAIL")}{(c.MaxAbsError <= c.CpuBound ? " (within the CPU bound)" : "")}");
            o.Flush();
        });
        o.WriteLine(new string('-', header.Length));
        foreach (var group in checks.GroupBy(c => c.DType))
        {
            var worst = group.MaxBy(c => c.MaxAbsError / c.Bound)!;
            o.WriteLine($"{group.Key.Name()}: {group.Count(c => c.Passed)}/{group.Count()} within the GPU tolerance; worst {worst.Style} {worst.Run} {worst.Stage}: " +
                $"{Number(worst.MaxAbsError)} ({worst.MaxAbsError / worst.Bound:0.00} of the bound)");
        }
        int failed = checks.Count(c => !c.Passed);
        o.WriteLine($"{checks.Count - failed} passed, {failed} failed");
        return failed == 0 ? 0 : 1;
    }

    private static int Run(string deviceText, GpuOptions gpu, string? filter, bool timing, bool cases, TextWriter o)
    {
        var device = Backends.Parse(deviceText);
        if (device.IsCpu)
            throw new CogVideoXException("selftest compares a device with the CPU reference, so it needs a device other than the CPU: use --device cuda or cuda:N");
        var target = Backends.Get(device, gpu);
        var stats = target as IMemoryStatistics;
        int failed = 0;
        bool leaked = false;
        if (cases) (failed, leaked) = RunCases(target, filter, o);
        if (timing)
        {
            if (cases) o.WriteLine();
            o.WriteLine($"timings on {target.Name} (median of repeated calls, synchronised)");
            string th = $"{"op",-12} {"dtype",-5} {"sizes",-52} {"ms",10}  throughput";
            o.WriteLine(th);
            o.WriteLine(new string('-', th.Length));
            OpTimings.Run(target, cases ? null : filter, t =>
                o.WriteLine($"{t.Op,-12} {t.DType.Name(),-5} {Cut(t.Sizes, 52),-52} {t.Milliseconds,10:0.000}  {t.Throughput}"));
            if (stats is not null) o.WriteLine($"peak device memory held by tensors: {Mib(stats.PeakBytes)}");
        }
        return failed == 0 && !leaked ? 0 : 1;
    }

    private static (int Failed, bool Leaked) RunCases(IBackend target, string? filter, TextWriter o)
    {
        var reference = Backends.Get(Device.Cpu);
        var cases = OpCatalogue.All()
            .Where(c => filter is null || c.Op.Contains(filter, StringComparison.OrdinalIgnoreCase))
            .ToList();
        if (cases.Count == 0) throw new CogVideoXException($"no op case matches --filter '{filter}'");

        o.WriteLine($"selftest: {target.Name} against {reference.Name}, {cases.Count} cases");
        var stats = target as IMemoryStatistics;
        long before = stats?.AllocatedBytes ?? 0;
        var clock = Stopwatch.StartNew();
        string header = $"{"op",-12} {"dtype",-5} {"sizes",-52} {"max abs",10} {"norm err",10} {"tol",8}  result";
        o.WriteLine(header);
        o.WriteLine(new string('-', header.Length));
        int passed = 0, failed = 0;
        for (int i = 0; i < cases.Count; i++)
        {
            var r = OpCatalogue.Compare(cases[i], target, reference, seed: i);
            if (r.Passed) passed++; else failed++;
            o.WriteLine($"{Cut(r.Case.Op, 12),-12} {r.Case.DType.Name(),-5} {Cut(r.Case.Sizes, 52),-52} {Number(r.MaxAbsError),10} {Number(r.NormalisedError),10} {r.Case.Bound,8:0e+0}  {(r.Passed ? "pass" : "FAIL")}{(r.Failure is null ? "" : "  " + r.Failure)}");
        }
        o.WriteLine(new string('-', header.Length));
        o.WriteLine($"{cases.Count} cases in {clock.Elapsed.TotalSeconds:0.0} s");
        o.WriteLine($"{passed} passed, {failed} failed");

        bool leaked = false;
        if (stats is not null)
        {
            long after = stats.AllocatedBytes;
            leaked = after != before;
            o.WriteLine($"device memory held by tensors: {Mib(before)} before, {Mib(after)} after{(leaked ? "  LEAK" : "")}; peak {Mib(stats.PeakBytes)}, reserved {Mib(stats.ReservedBytes)}");
        }

        return (failed, leaked);
    }

    private static string Number(double v) => double.IsNaN(v) ? "—" : v.ToString("0.00e+0", CultureInfo.InvariantCulture);

    private static string Mib(long bytes) => $"{bytes / 1048576.0:0.0} MiB";

    private static string Cut(string s, int width) => s.Length <= width ? s : s[..(width - 1)] + "…";
}
