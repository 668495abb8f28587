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
            Description = "Compile the kernels for this architecture (e.g. sm_90) even without a GPU, to check NVRTC.",
        };
        var cmd = new Command("doctor", "Report the GPU, driver and CUDA libraries found, what is missing and how to fix it.") { arch };
        cmd.SetAction(parse => Run(parse.GetValue(arch), parse.InvocationConfiguration.Output));
        return cmd;
    }

    private static int Run(string? arch, TextWriter o)
    {
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

        if (devices.Count > 0 && problems.Count == 0)
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
        else if (arch is not null)
        {
            CompileOnly(arch, o, problems);
        }

        o.WriteLine();
        if (problems.Count == 0)
        {
            o.WriteLine(devices.Count > 0 ? "ok: the CUDA backend can run (--device cuda)" : "ok");
            return 0;
        }
        o.WriteLine($"problems: {string.Join("; ", problems)} — the CUDA backend cannot run here (the CPU backend still can: --device cpu)");
        return 1;
    }

    /// <summary>Compiles every kernel module with NVRTC for an architecture, without a GPU.</summary>
    private static void CompileOnly(string arch, TextWriter o, List<string> problems)
    {
        var text = arch.Trim().ToLowerInvariant();
        if (!text.StartsWith("sm_", StringComparison.Ordinal) || text.Length < 5 || !int.TryParse(text.AsSpan(3), out int cc))
            throw new CogVideoXException($"--arch '{arch}' is not an architecture name: use sm_XY, e.g. sm_90 for an H100");
        if (!CudaLibraries.IsAvailable(CudaLibrary.Nvrtc))
        {
            problems.Add("NVRTC is missing, so kernels cannot be compiled");
            return;
        }
        o.WriteLine($"kernels for {text} ({KernelCacheRoot()}):");
        try
        {
            foreach (var m in CudaKernels.CompileAll(cc / 10, cc % 10))
                o.WriteLine($"  {m.Module,-14} {m.Target,-8} {Describe(m)}");
        }
        catch (CogVideoXException e)
        {
            o.WriteLine($"  FAILED: {e.Message}");
            problems.Add("the kernels do not compile");
        }
    }

    private static string KernelCacheRoot() => CudaKernels.CacheRoot;

    private static string Describe(KernelModuleInfo m) => m.Unavailable is { } reason
        ? $"unavailable (optional; the portable kernels run instead): {reason}"
        : $"{(m.FromCache ? "from cache" : $"compiled in {m.CompileTime.TotalSeconds:0.00} s"),-22} {m.Bytes / 1024,6} KiB  {m.CachePath ?? "(not cached)"}";
}
