using System.CommandLine;
using System.Runtime.InteropServices;
using CogVideoX.Engine;
using CogVideoX.Engine.Cuda;

namespace CogVideoX.Cli.Commands;

/// <summary>
/// `doctor`: what this machine offers the CUDA backend — each library found (path, version) or missing (and how to
/// fix it), each GPU, and whether the kernels compile for it. Exits non-zero when the CUDA backend cannot run.
/// </summary>
internal static class DoctorCommand
{
    public static Command Create()
    {
        var arch = new Option<string?>("--arch")
        {
            Description = "Without a GPU: compile every kernel module this architecture can use (e.g. sm_90; opt-in modules too) with NVRTC, to check it and fill the kernel cache.",
        };
        var resources = new Option<bool>("--resources")
        {
            Description = "With --arch: ptxas's report per kernel (registers, spills, shared memory) and any warning it gave.",
        };
        var cmd = new Command("doctor", "Report the GPU, driver and CUDA libraries found, what is missing and how to fix it.") { arch, resources };
        cmd.SetAction(parse => Run(parse.GetValue(arch), parse.GetValue(resources), parse.InvocationConfiguration.Output));
        return cmd;
    }

    private static int Run(string? arch, bool resources, TextWriter o)
    {
        if (resources && arch is null)
            throw new CogVideoXException("--resources reports what ptxas compiled for --arch: give an architecture too, e.g. doctor --arch sm_90 --resources");
        // Checked before anything is probed, so a typo costs no time.
        int? cc = arch is null ? null : ParseArchitecture(arch);
        var problems = new List<string>();
        o.WriteLine($"cogvideox {VersionCommand.ToolVersion} on {RuntimeInformation.OSDescription} {RuntimeInformation.OSArchitecture}, {RuntimeInformation.FrameworkDescription}");
        o.WriteLine();
        o.WriteLine("libraries:");
        foreach (var lib in Enum.GetValues<CudaLibrary>())
        {
            var probe = CudaLibraries.Probe(lib);
            bool optional = lib == CudaLibrary.Cudnn;
            if (probe.Found)
            {
                o.WriteLine($"  {probe.DisplayName,-34} {probe.Version ?? "version unknown",-18} {probe.Path}");
                if (probe.Error is not null) o.WriteLine($"  {"",-34} warning: {probe.Error}");
            }
            else
            {
                o.WriteLine($"  {probe.DisplayName,-34} {(optional ? "missing (optional)" : "MISSING"),-18} {probe.Error}");
                o.WriteLine($"  {"",-34} fix: {CudaLibraries.FixHint(lib)}");
                if (!optional) problems.Add($"{probe.DisplayName} is missing");
            }
        }
        o.WriteLine();

        var devices = new List<CudaDeviceInfo>();
        if (CudaLibraries.IsAvailable(CudaLibrary.Driver))
        {
            try
            {
                int count = CudaDevices.Count();
                o.WriteLine($"devices: {count}");
                for (int i = 0; i < count; i++)
                {
                    var d = CudaDevices.Info(i);
                    devices.Add(d);
                    o.WriteLine($"  cuda:{i}  {d.Name}  {d.Architecture} (compute capability {d.Major}.{d.Minor})  {d.Multiprocessors} SMs  " +
                        $"{d.TotalMemory / (double)(1L << 30):0.0} GiB  L2 {d.L2CacheBytes >> 20} MiB  shared/block {d.MaxSharedMemoryPerBlock >> 10} KiB");
                }
                if (count == 0) problems.Add("no CUDA device");
            }
            catch (CogVideoXException e)
            {
                o.WriteLine($"devices: none usable ({e.Message})");
                problems.Add("the CUDA driver could not be initialised");
            }
        }
        else
        {
            o.WriteLine("devices: not queried (no CUDA driver)");
        }
        o.WriteLine();

        bool deviceKernels = devices.Count > 0 && problems.Count == 0;
        if (deviceKernels)
        {
            var backend = (CudaBackend)Backends.Get(Device.Cuda(0));
            var (free, total) = backend.DeviceMemory();
            o.WriteLine($"cuda:0 opened: {free / (double)(1L << 30):0.0} GiB free of {total / (double)(1L << 30):0.0} GiB");
            try
            {
                backend.LoadAllKernels();
                o.WriteLine($"kernels ({KernelCacheRoot()}):");
                foreach (var m in backend.KernelModules)
                    o.WriteLine($"  {m.Module,-14} {m.Target,-8} {Describe(m)}");
            }
            catch (CogVideoXException e)
            {
                o.WriteLine($"kernels: FAILED: {e.Message}");
                problems.Add("the kernels do not compile or load");
            }
        }
        // Asked for explicitly, so done beside the device's own kernels too (a cache filled for another GPU, say).
        var compileProblems = new List<string>();
        if (cc is { } target)
        {
            if (deviceKernels) o.WriteLine();
            CompileOnly(target, resources, o, compileProblems);
        }

        o.WriteLine();
        if (cc is not null && devices.Count == 0)
        {
            // A compile check on a machine without a GPU (a CI runner, a container build): only NVRTC matters, so
            // the exit code says whether the kernels compile, and the missing driver is information, not failure.
            if (compileProblems.Count == 0)
                o.WriteLine($"ok: every kernel module compiles for sm_{cc}" +
                    (problems.Count > 0 ? $" (no GPU here: {string.Join("; ", problems)}; the CPU backend can run: --device cpu)" : ""));
            else
                o.WriteLine($"problems: {string.Join("; ", compileProblems)}");
            return compileProblems.Count == 0 ? 0 : 1;
        }
        problems.AddRange(compileProblems);
        if (problems.Count == 0)
        {
            o.WriteLine(devices.Count > 0 ? "ok: the CUDA backend can run (--device cuda)" : "ok");
            return 0;
        }
        o.WriteLine($"problems: {string.Join("; ", problems)} — the CUDA backend cannot run here (the CPU backend still can: --device cpu)");
        return 1;
    }

    /// <summary>sm_XY (or sm_XYa: the architecture modules are compiled for their "a" target anyway) as XY.</summary>
    private static int ParseArchitecture(string arch)
    {
        var text = arch.Trim().ToLowerInvariant();
        if (text.EndsWith('a')) text = text[..^1];
        if (!text.StartsWith("sm_", StringComparison.Ordinal) || text.Length < 5 || !int.TryParse(text.AsSpan(3), out int cc) || cc < 10)
            throw new CogVideoXException($"--arch '{arch}' is not an architecture name: use sm_XY, e.g. sm_90 for an H100 or H200, sm_89 for an L4 or RTX 4090, sm_80 for an A100");
        return cc;
    }

    /// <summary>Compiles every kernel module an architecture can use with NVRTC, without a GPU.</summary>
    private static void CompileOnly(int cc, bool resources, TextWriter o, List<string> problems)
    {
        if (!CudaLibraries.IsAvailable(CudaLibrary.Nvrtc))
        {
            problems.Add("NVRTC is missing, so kernels cannot be compiled; without a CUDA toolkit, scripts/kernels/fetch-nvrtc.sh " +
                "puts NVRTC in .tools/nvrtc (no GPU or root needed): then LD_LIBRARY_PATH=.tools/nvrtc cogvideox doctor --arch sm_" + cc);
            return;
        }
        o.WriteLine($"kernels for sm_{cc} ({KernelCacheRoot()}):");
        IReadOnlyList<KernelModuleInfo> modules;
        try
        {
            modules = CudaKernels.CompileAll(cc / 10, cc % 10, everyModule: true, report: resources);
        }
        catch (CogVideoXException e)
        {
            o.WriteLine($"  FAILED: {e.Message}");
            problems.Add("the kernels do not compile");
            return;
        }
        foreach (var m in modules)
            o.WriteLine($"  {m.Module + (CudaKernels.IsOptIn(m.Module) ? " (opt-in)" : ""),-30} {m.Target,-8} {Describe(m)}");
        if (resources) WriteResources(modules, o);
    }

    /// <summary>ptxas's report: one row per kernel, then spills and warnings called out, since both cost speed silently.</summary>
    private static void WriteResources(IReadOnlyList<KernelModuleInfo> modules, TextWriter o)
    {
        o.WriteLine();
        o.WriteLine($"  {"kernel",-44} {"registers",9} {"shared",8} {"stack",6} {"spills (stores/loads)",22}");
        int kernels = 0;
        var spilling = new List<string>();
        foreach (var m in modules)
        {
            if (m.Report is not { } report) continue;
            foreach (var k in report.Kernels)
            {
                kernels++;
                var spills = k.Spills ? $"{k.SpillStoreBytes} B / {k.SpillLoadBytes} B" : "none";
                o.WriteLine($"  {k.Kernel,-44} {k.Registers,9} {k.SharedBytes,6} B {k.StackBytes,4} B {spills,22}");
                if (k.Spills) spilling.Add(k.Kernel);
            }
        }
        o.WriteLine();
        o.WriteLine($"  {kernels} kernels; spills: {(spilling.Count == 0 ? "none" : string.Join(", ", spilling))}");
        var warnings = modules.Where(m => m.Report is not null).SelectMany(m => m.Report!.Warnings.Select(w => $"{m.Module}: {w}")).ToList();
        o.WriteLine($"  ptxas warnings: {(warnings.Count == 0 ? "none" : warnings.Count.ToString(System.Globalization.CultureInfo.InvariantCulture))}");
        foreach (var w in warnings) o.WriteLine($"    {w}");
    }

    private static string KernelCacheRoot() => CudaKernels.CacheRoot;

    private static string Describe(KernelModuleInfo m) => m.Unavailable is { } reason
        ? $"unavailable (optional; {CudaKernels.WithoutIt(m.Module)}): {reason}"
        : $"{(m.FromCache ? "from cache" : $"compiled in {m.CompileTime.TotalSeconds:0.00} s"),-22} {m.Bytes / 1024,6} KiB  {m.CachePath ?? "(not cached)"}";
}
