using System.Collections.Concurrent;
using CogVideoX.Engine;
using CogVideoX.Engine.Cuda;
using CogVideoX.Tests.Lab;

namespace CogVideoX.Tests.Cuda;

/// <summary>
/// NVRTC, the compiler the backend runs on the GPU machine, compiling every kernel module to machine code here without
/// a GPU (`doctor --arch sm_XY --resources`, NVRTC 12.4 from Debian's packages: scripts/kernels/fetch-nvrtc.sh). Its
/// ptxas is the first to read the inline PTX (wgmma, TMA, mbarrier, mma.sync, cvt), which clang passes through
/// unchecked (KernelSourceCompileTests), and it says what each kernel costs in registers and spills: a spill or a
/// serialized wgmma slows a kernel without failing anything, so they are caught here rather than in a timing.
/// </summary>
public class NvrtcCompileTests
{
    // One doctor run per architecture, shared by the facts about it (a run compiles every module: tens of seconds).
    private static readonly ConcurrentDictionary<string, Lazy<DoctorRun>> s_runs = new();

    /// <summary>
    /// Kernels allowed to spill, each with why it does not matter. ln_rows v16 serves rows of 3,073 to 4,096 columns
    /// (16 uint4 a lane): no CogVideoX layer norm is that wide (1,920 and 3,072 take v8 and v12), and the spill is
    /// one 4-byte value outside the row loop.
    /// </summary>
    // The 8-bit wgmma kernel's default (the overlapped schedule at 128 keys, 240 registers) keeps a dozen values in
    // local memory across its two-tile loop (ptxas 12.4: 48 bytes of stack; 56 with SAGE90_LIN_BOUND=0 or
    // SAGE90_EARLY_KS=0) and still measured the fastest (2026-12-06).
    private static readonly string[] s_spillAllowed = ["ln_rows_f16_v16", "ln_rows_bf16_v16", "sage8_attention_sm90_f16", "sage8_attention_sm90_bf16"];

    public static TheoryData<string> Architectures() => new() { "sm_80", "sm_89", "sm_90" };

    [Theory]
    [MemberData(nameof(Architectures))]
    public void EveryModuleTheArchitectureCanUseCompilesToMachineCode(string arch)
    {
        var run = Run(arch);
        Assert.Contains($"kernels for {arch} (", run.Output);
        var (major, minor) = Capability(arch);
        var modules = KernelCompiler.AllModulesFor(major, minor).ToList();
        // The opt-in modules wherever they can run, and only there.
        bool ada = (major, minor).CompareTo((8, 9)) >= 0;
        Assert.Equal(ada, modules.Contains("fp8"));
        Assert.Equal(ada, modules.Contains("attention_sage8"));
        Assert.Equal((major, minor) == (9, 0), modules.Contains("attention_sage8_sm90"));
        foreach (var module in modules)
        {
            var line = run.Lines.SingleOrDefault(l => l.TrimStart().StartsWith(module + " ", StringComparison.Ordinal));
            Assert.True(line is not null, $"no line for {module} in:\n{run.Output}");
            Assert.Contains("compiled in", line);
        }
        Assert.DoesNotContain("unavailable", run.Output);
        Assert.DoesNotContain("FAILED", run.Output);
        // No GPU here: the exit code is the compile check's, and the last line says so.
        Assert.Equal(0, run.ExitCode);
        Assert.Contains(run.Lines, l => l.StartsWith($"ok: every kernel module compiles for {arch} (no GPU here: ", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void PtxasNeitherWarnsNorSpills(string arch)
    {
        var run = Run(arch);
        Assert.Contains("  ptxas warnings: none", run.Lines);
        var spills = run.Lines.Single(l => l.Contains(" kernels; spills: ", StringComparison.Ordinal));
        var spilling = spills[(spills.IndexOf("spills: ", StringComparison.Ordinal) + 8)..].Split(", ");
        if (spilling is ["none"]) return;
        Assert.True(spilling.All(s_spillAllowed.Contains), $"{arch}: kernels that spill: {string.Join(", ", spilling)}\n{run.Output}");
    }

    [Fact]
    public void TheHopperKernelsKeepTheirRegisterPlan()
    {
        var run = Run("sm_90");
        // The 8-bit wgmma kernel (128-key steps, the overlapped schedule: the default) launches 3 warpgroups of 128
        // threads and then moves registers with setmaxnreg (24 for the producer, 240 for each of 2 consumers: 64,512 of
        // the 65,536); that needs at most 168 at launch. Its 48 bytes of stack: see s_spillAllowed.
        foreach (var t in new[] { "f16", "bf16" })
        {
            var sage = run.Kernel($"sage8_attention_sm90_{t}");
            Assert.InRange(sage.Registers, 1, 168);
            Assert.InRange(sage.StackBytes, 0, 64);
            // The F16 wgmma kernel: 3 warpgroups at up to 168 registers (65,536 / 384), no local memory.
            var exact = run.Kernel($"flash_attention_sm90_{t}_d64");
            Assert.InRange(exact.Registers, 1, 168);
            Assert.Equal(0, exact.StackBytes);
        }
    }

    [Fact]
    public void TheCompiledModulesAreCachedForTheGpuToLoad()
    {
        var run = Run("sm_90");
        var cubin = Directory.GetFiles(Path.Combine(run.Cache, "sm_90a"), "attention_sage8_sm90-*.cubin").Single();
        var head = File.ReadAllBytes(cubin).AsSpan(0, 4).ToArray();
        Assert.Equal(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F' }, head);
        // The report bypasses the cache; a plain run takes every module from it.
        using var again = new CliProcess(Fixtures.RepoRoot, run.Environment, "doctor", "--arch", "sm_90");
        again.Wait(TimeSpan.FromMinutes(2));
        var modules = KernelCompiler.AllModulesFor(9, 0).ToList();
        Assert.Equal(modules.Count, again.StdOut.Split('\n').Count(l => l.Contains("from cache", StringComparison.Ordinal)));
    }

    /// <summary>
    /// The 8-bit wgmma kernel's A/B alternatives, which gpu-bench.sh's sage8ab stage times against the default (128-key
    /// steps, linear exponentials without their clamps where a per-row bound or the row minima show none is needed, the
    /// overlapped schedule reading the K scales early), must build as
    /// cleanly as it: a serialised wgmma (ptxas's C7511, only an "info" line) would make their timing meaningless: exp2
    /// on the special-function unit (SageAttention2's numerics; the eighth session's serial kernel with its ping-pong),
    /// the serial schedule with the linear exponentials, and 64-key steps (four consumer warpgroups).
    /// </summary>
    [Theory]
    [InlineData("SAGE90_EXP_LIN=0")]
    [InlineData("SAGE90_SERIAL=1")]
    [InlineData("SAGE90_KEYS=64")]
    public void TheEightBitKernelsAlternativesBuildWithoutSerialisedWgmmas(string defines)
    {
        var run = DoctorRun.Start("sm_90", defines);
        Assert.Equal(0, run.ExitCode);
        Assert.Contains("  ptxas warnings: none", run.Lines);
        foreach (var t in new[] { "f16", "bf16" })
        {
            Assert.Equal(0, run.Kernel($"sage8_attention_sm90_{t}").StackBytes);
            Assert.InRange(run.Kernel($"sage8_attention_sm90_{t}").Registers, 1, 168);
        }
    }

    private static (int Major, int Minor) Capability(string arch) => (arch[3] - '0', arch[4] - '0');

    private static DoctorRun Run(string arch) => s_runs.GetOrAdd(arch, a => new Lazy<DoctorRun>(() => DoctorRun.Start(a))).Value;

    private sealed record DoctorRun(int ExitCode, string Output, string[] Lines, string Cache, IReadOnlyDictionary<string, string> Environment)
    {
        public static DoctorRun Start(string arch, string? defines = null)
        {
            var cache = Directory.CreateTempSubdirectory($"nvrtc-{arch}-").FullName;
            var environment = new Dictionary<string, string>
            {
                ["LD_LIBRARY_PATH"] = Folder(),
                ["COGVIDEOX_KERNEL_CACHE"] = cache,
            };
            if (defines is not null) environment[KernelDefines.Variable] = defines;
            using var doctor = new CliProcess(Fixtures.RepoRoot, environment, "doctor", "--arch", arch, "--resources");
            int code = doctor.Wait(TimeSpan.FromMinutes(6));
            var output = doctor.StdOut + doctor.StdErr;
            Assert.DoesNotContain("   at ", output);
            return new DoctorRun(code, output, output.Split('\n').Select(l => l.TrimEnd('\r')).ToArray(), cache, environment);
        }

        /// <summary>A kernel's row of the resources table.</summary>
        public KernelResources Kernel(string name)
        {
            var row = Lines.SingleOrDefault(l => l.TrimStart().StartsWith(name + " ", StringComparison.Ordinal));
            Assert.True(row is not null, $"no row for {name} in:\n{Output}");
            var cells = row.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // kernel, registers, shared, "B", stack, "B", spills…
            return new KernelResources(name, int.Parse(cells[1]), 0, 0, int.Parse(cells[4]), int.Parse(cells[2]));
        }

        private static string Folder()
        {
            var folder = System.Environment.GetEnvironmentVariable("COGVIDEOX_TEST_NVRTC") is { Length: > 0 } f
                ? f
                : Path.Combine(Fixtures.RepoRoot, ".tools", "nvrtc");
            Assert.True(File.Exists(Path.Combine(folder, "libnvrtc.so.12")),
                $"NVRTC is not in {folder}: run scripts/kernels/fetch-nvrtc.sh (.ci/run does), or set COGVIDEOX_TEST_NVRTC to a folder holding libnvrtc.so.12");
            return folder;
        }
    }
}
