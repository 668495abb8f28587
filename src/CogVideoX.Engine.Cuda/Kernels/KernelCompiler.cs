using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;

namespace CogVideoX.Engine.Cuda;

/// <summary>A compiled kernel module: machine code (cubin) for a real architecture, or PTX for the driver to finish.</summary>
internal sealed record CompiledModule(string Module, string Target, byte[] Image, bool IsPtx, bool FromCache, TimeSpan CompileTime, string? CachePath)
{
    /// <summary>What ptxas reported per kernel, when the module was compiled with its report asked for.</summary>
    public PtxasReport? Report { get; init; }

    public KernelModuleInfo Info => new(Module, Target + (IsPtx ? " (PTX)" : ""), FromCache, CompileTime, Image.LongLength, CachePath) { Report = Report };
}

/// <summary>
/// Compiles the embedded CUDA C modules with NVRTC for one GPU architecture and caches the result on disk
/// (&lt;cache&gt;/&lt;sm_XY&gt;/&lt;module&gt;-&lt;hash&gt;.cubin; the hash covers source, options and NVRTC version),
/// so only the first run on a machine pays for compilation.
/// </summary>
internal static class KernelCompiler
{
    public static readonly string[] Modules = ["copy", "elementwise", "norm", "misc", "attention"];

    /// <summary>
    /// Modules written for one architecture's own instructions (sm_90a: wgmma), compiled only for that exact compute
    /// capability: "a" targets run on no other GPU.
    /// </summary>
    internal static readonly IReadOnlyDictionary<string, (int Major, int Minor)> ArchitectureModules = new Dictionary<string, (int, int)>
    {
        ["attention_sm90"] = (9, 0),
        ["attention_sage8_sm90"] = (9, 0),
    };

    /// <summary>
    /// The modules a device of compute capability major.minor uses from the start (and doctor compiles); lazy modules
    /// (<see cref="LazyModules"/>) are not among them, architecture-specific or not.
    /// </summary>
    public static IEnumerable<string> ModulesFor(int major, int minor) =>
        Modules.Concat(ArchitectureModules.Where(p => p.Value == (major, minor) && !LazyModules.ContainsKey(p.Key)).Select(p => p.Key));

    /// <summary>
    /// Architecture-specific modules are optional: without them the backend runs the portable kernels (a GPU whose
    /// NVRTC cannot target sm_90a still works, only slower without cuDNN).
    /// </summary>
    public static bool IsOptional(string module) => ArchitectureModules.ContainsKey(module) || LazyModules.ContainsKey(module);

    /// <summary>
    /// Modules of opt-in modes, compiled at their first use only (never by a default run or doctor's device check;
    /// `doctor --arch` compiles them to check them), for a device of
    /// at least the given compute capability: a compile error there breaks nothing else. attention_sage8: 8-bit
    /// attention (mma.sync m16n8k32 with e4m3 needs sm_89); attention_sage8_sm90: its wgmma/TMA form, sm_90a only (it
    /// is an architecture module too, so it runs on exactly sm_90); fp8: the FP8 linears' quantize and epilogue
    /// (plain CUDA C, but cuBLASLt's FP8 GEMM around them needs sm_89).
    /// </summary>
    public static readonly IReadOnlyDictionary<string, (int Major, int Minor)> LazyModules = new Dictionary<string, (int, int)>
    {
        ["attention_sage8"] = (8, 9),
        ["attention_sage8_sm90"] = (9, 0),
        ["fp8"] = (8, 9),
    };

    /// <summary>Every module embedded in the assembly, by name (without ".cu").</summary>
    public static IEnumerable<string> Embedded() =>
        typeof(KernelCompiler).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal) && n.EndsWith(".cu", StringComparison.Ordinal))
            .Select(n => n[ResourcePrefix.Length..^3])
            .Order(StringComparer.Ordinal);

    /// <summary>
    /// Every module a device of compute capability major.minor can ever use: the default ones, the lazy ones it can run
    /// and any other compiled at its first use on any GPU. What a compile check for that device has to build.
    /// </summary>
    public static IEnumerable<string> AllModulesFor(int major, int minor)
    {
        var defaults = ModulesFor(major, minor).ToList();
        return defaults.Concat(Embedded().Where(m => !defaults.Contains(m) && IsAvailableFor(m, major, minor)
            && (!LazyModules.ContainsKey(m) || LazyModuleRunsOn(m, major, minor))));
    }

    /// <summary>What happens without an optional module: an architecture module has portable kernels behind it, an
    /// opt-in mode's module has nothing (the mode says so when asked for).</summary>
    public static string WithoutIt(string module) => LazyModules.ContainsKey(module)
        ? "the opt-in mode that uses it cannot run here"
        : "the portable kernels run instead";

    /// <summary>Whether a lazy module can run on a device of compute capability major.minor.</summary>
    public static bool LazyModuleRunsOn(string module, int major, int minor) =>
        LazyModules.TryGetValue(module, out var cc) && (major, minor).CompareTo(cc) >= 0 && IsAvailableFor(module, major, minor);

    /// <summary>One line of a compilation failure: the first compiler error when the log has one.</summary>
    public static string FailureSummary(string message)
    {
        var lines = message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.FirstOrDefault(l => l.Contains(" error", StringComparison.Ordinal) && !l.StartsWith("NVRTC", StringComparison.Ordinal))
            ?? lines.FirstOrDefault() ?? message;
    }

    /// <summary>Whether <paramref name="module"/> exists for a device of compute capability major.minor.</summary>
    public static bool IsAvailableFor(string module, int major, int minor) =>
        !ArchitectureModules.TryGetValue(module, out var cc) || cc == (major, minor);

    private const string ResourcePrefix = "CogVideoX.Kernels.";

    /// <summary>Where compiled kernels are kept: COGVIDEOX_KERNEL_CACHE, else $XDG_CACHE_HOME or ~/.cache, /cogvideox/kernels.</summary>
    public static string CacheRoot
    {
        get
        {
            var explicitDir = Environment.GetEnvironmentVariable("COGVIDEOX_KERNEL_CACHE");
            if (!string.IsNullOrWhiteSpace(explicitDir)) return explicitDir;
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var root = !string.IsNullOrWhiteSpace(xdg)
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(root, "cogvideox", "kernels");
        }
    }

    public static string Source(string module)
    {
        var common = Resource("common.cuh");
        var body = Resource(module + ".cu");
        // #line keeps NVRTC's error positions relative to the module file.
        return common + $"\n#line 1 \"{module}.cu\"\n" + body;
    }

    private static string Resource(string name)
    {
        using var stream = typeof(KernelCompiler).Assembly.GetManifestResourceStream(ResourcePrefix + name)
            ?? throw new InvalidOperationException($"kernel source {name} is not embedded in the assembly");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    /// <summary>The NVRTC target for a device: its own sm_XY when NVRTC knows it, else PTX of the newest older one.</summary>
    public static (string Option, bool IsPtx, string Name) Target(int major, int minor)
    {
        int want = major * 10 + minor;
        int[] supported;
        try { supported = Nvrtc.SupportedArchitectures(); }
        catch (EntryPointNotFoundException) { supported = [want]; }
        if (supported.Contains(want)) return ($"--gpu-architecture=sm_{want}", false, $"sm_{want}");
        var older = supported.Where(a => a <= want).DefaultIfEmpty(0).Max();
        if (older == 0)
            throw new CogVideoXException(
                $"this NVRTC cannot compile for the GPU's architecture sm_{want} (it supports {string.Join(", ", supported.Select(a => "sm_" + a))}); install a CUDA toolkit that supports this GPU");
        return ($"--gpu-architecture=compute_{older}", true, $"sm_{want}");
    }

    /// <summary>
    /// Compiles a module for compute capability major.minor, or takes it from the cache. With
    /// <paramref name="report"/> the cache is not read and ptxas's per-kernel report (registers, spills, shared memory,
    /// warnings) comes back with the image, which is the same as without it and is cached as usual.
    /// </summary>
    public static CompiledModule Compile(string module, int major, int minor, bool report = false)
    {
        CudaLibraries.Require(CudaLibrary.Nvrtc);
        var (archOption, isPtx, targetName) = Target(major, minor);
        if (ArchitectureModules.TryGetValue(module, out var cc))
        {
            if (cc != (major, minor))
                throw new InvalidOperationException($"kernel module {module} is for sm_{cc.Major}{cc.Minor} only, not sm_{major}{minor}");
            // The architecture-specific target: machine code with the instructions only this architecture has.
            (archOption, isPtx, targetName) = ($"--gpu-architecture=sm_{major}{minor}a", false, $"sm_{major}{minor}a");
        }
        string[] options = [archOption, "--std=c++17", "-DCOGVIDEOX_KERNELS=1", .. KernelDefines.Options(Environment.GetEnvironmentVariable(KernelDefines.Variable))];
        var source = Source(module);
        Nvrtc.Check(Nvrtc.nvrtcVersion(out int vMajor, out int vMinor), "nvrtcVersion");
        var key = Hash($"{source}\n{string.Join(" ", options)}\nnvrtc {vMajor}.{vMinor}");
        var dir = Path.Combine(CacheRoot, targetName);
        var file = Path.Combine(dir, $"{module}-{key}{(isPtx ? ".ptx" : ".cubin")}");
        // ptxas runs only for machine code; its -v output changes nothing in the image, so it stays out of the key.
        bool withReport = report && !isPtx;
        var cached = withReport ? null : TryRead(file);
        if (cached is not null) return new CompiledModule(module, targetName, cached, isPtx, true, TimeSpan.Zero, file);

        var clock = Stopwatch.StartNew();
        var (image, log) = Build(module, source, withReport ? [.. options, "--ptxas-options=-v"] : options, isPtx);
        clock.Stop();
        var written = TryWrite(dir, file, image) ? file : null;
        return new CompiledModule(module, targetName, image, isPtx, false, clock.Elapsed, written)
        {
            Report = withReport ? PtxasReport.Parse(log) : null,
        };
    }

    private static unsafe (byte[] Image, string Log) Build(string module, string source, string[] options, bool ptx)
    {
        Nvrtc.Check(Nvrtc.nvrtcCreateProgram(out var program, source, module + ".cu", 0, IntPtr.Zero, IntPtr.Zero), "nvrtcCreateProgram", module);
        using (program)
        {
            var pointers = new IntPtr[options.Length];
            int result;
            try
            {
                for (int i = 0; i < options.Length; i++) pointers[i] = System.Runtime.InteropServices.Marshal.StringToCoTaskMemUTF8(options[i]);
                fixed (IntPtr* p = pointers) result = Nvrtc.nvrtcCompileProgram(program, options.Length, (byte**)p);
            }
            finally
            {
                foreach (var p in pointers) System.Runtime.InteropServices.Marshal.FreeCoTaskMem(p);
            }
            if (result != Nvrtc.Success)
            {
                var log = Log(program);
                Nvrtc.Check(result, "nvrtcCompileProgram", $"{module}.cu with {string.Join(" ", options)}:\n{Trim(log)}");
            }
            nuint size;
            if (ptx) Nvrtc.Check(Nvrtc.nvrtcGetPTXSize(program, out size), "nvrtcGetPTXSize");
            else Nvrtc.Check(Nvrtc.nvrtcGetCUBINSize(program, out size), "nvrtcGetCUBINSize");
            var image = new byte[(int)size];
            fixed (byte* p = image)
            {
                if (ptx) Nvrtc.Check(Nvrtc.nvrtcGetPTX(program, p), "nvrtcGetPTX");
                else Nvrtc.Check(Nvrtc.nvrtcGetCUBIN(program, p), "nvrtcGetCUBIN");
            }
            return (image, Log(program));
        }
    }

    private static unsafe string Log(NvrtcProgramHandle program)
    {
        if (Nvrtc.nvrtcGetProgramLogSize(program, out var size) != Nvrtc.Success || size <= 1) return "";
        var buffer = new byte[(int)size];
        fixed (byte* p = buffer)
        {
            if (Nvrtc.nvrtcGetProgramLog(program, p) != Nvrtc.Success) return "";
        }
        return Encoding.UTF8.GetString(buffer, 0, buffer.Length - 1);
    }

    private static string Trim(string log) => log.Length <= 4000 ? log : log[..4000] + "\n…";

    private static string Hash(string text) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..24].ToLowerInvariant();

    private static byte[]? TryRead(string file)
    {
        try { return File.Exists(file) ? File.ReadAllBytes(file) : null; }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>Writes atomically (temp file, then rename); a cache that cannot be written is not an error.</summary>
    private static bool TryWrite(string dir, string file, byte[] image)
    {
        try
        {
            Directory.CreateDirectory(dir);
            var temp = file + $".{Environment.ProcessId}.tmp";
            File.WriteAllBytes(temp, image);
            File.Move(temp, file, overwrite: true);
            return true;
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }
}

/// <summary>A kernel module as compiled or loaded from the cache.</summary>
public sealed record KernelModuleInfo(string Module, string Target, bool FromCache, TimeSpan CompileTime, long Bytes, string? CachePath)
{
    /// <summary>ptxas's per-kernel report, when it was asked for (<see cref="CudaKernels.CompileAll"/>).</summary>
    public PtxasReport? Report { get; init; }

    /// <summary>Why an optional module could not be built (null when it was).</summary>
    public string? Unavailable { get; init; }

    internal static KernelModuleInfo Failed(string module, string reason) =>
        new(module, "-", false, TimeSpan.Zero, 0, null) { Unavailable = reason };
}

/// <summary>The embedded CUDA C kernels: where their compiled forms are cached, and compiling them ahead of use.</summary>
public static class CudaKernels
{
    public static string CacheRoot => KernelCompiler.CacheRoot;

    /// <summary>
    /// Compiles the modules for compute capability major.minor with NVRTC (no GPU needed): those a device loads from
    /// the start, or with <paramref name="everyModule"/> also the opt-in ones it can run (8-bit attention, FP8
    /// linears). With <paramref name="report"/>, each comes with ptxas's per-kernel report and the cache is not read.
    /// A required module that fails throws; an optional one is listed with <see cref="KernelModuleInfo.Unavailable"/>.
    /// </summary>
    public static IReadOnlyList<KernelModuleInfo> CompileAll(int major, int minor, bool everyModule = false, bool report = false)
    {
        var modules = (everyModule ? KernelCompiler.AllModulesFor(major, minor) : KernelCompiler.ModulesFor(major, minor)).ToArray();
        var results = new KernelModuleInfo?[modules.Length];
        var failures = new Exception?[modules.Length];
        // NVRTC programs are independent: the modules compile side by side, as the backend's first load does.
        Parallel.For(0, modules.Length, i =>
        {
            try { results[i] = KernelCompiler.Compile(modules[i], major, minor, report).Info; }
            catch (Exception e) { failures[i] = e; }
        });
        for (int i = 0; i < modules.Length; i++)
        {
            if (failures[i] is CogVideoXException e && KernelCompiler.IsOptional(modules[i]))
                results[i] = KernelModuleInfo.Failed(modules[i], KernelCompiler.FailureSummary(e.Message));
            else if (failures[i] is { } other) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(other);
        }
        return results.Select(r => r!).ToList();
    }

    /// <summary>What runs instead of an optional module that could not be built.</summary>
    public static string WithoutIt(string module) => KernelCompiler.WithoutIt(module);

    /// <summary>Whether the module is opt-in: compiled at its first use, never by a default run.</summary>
    public static bool IsOptIn(string module) =>
        KernelCompiler.LazyModules.ContainsKey(module)
        || !(KernelCompiler.Modules.Contains(module) || KernelCompiler.ArchitectureModules.ContainsKey(module));
}
