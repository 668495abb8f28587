using System.Reflection;
using System.Runtime.InteropServices;

namespace CogVideoX.Engine.Cuda;

/// <summary>The native libraries the CUDA backend uses.</summary>
public enum CudaLibrary
{
    /// <summary>libcuda, installed with the NVIDIA driver.</summary>
    Driver,
    /// <summary>NVRTC, the run-time CUDA C compiler (CUDA toolkit).</summary>
    Nvrtc,
    /// <summary>cuBLASLt, the matrix-multiply library (CUDA toolkit).</summary>
    CublasLt,
    /// <summary>cuDNN 9 (fused attention, convolutions); optional: the backend's own kernels run without it.</summary>
    Cudnn,
}

/// <summary>Where a library was looked for and what was found.</summary>
public sealed record LibraryProbe(CudaLibrary Library, string DisplayName, string? Path, string? Version, string? Error, IReadOnlyList<string> Tried)
{
    public bool Found => Path is not null;
}

/// <summary>
/// Finds and loads the CUDA libraries by probing (CUDA 13 and 12 sonames; CUDA_PATH, LD_LIBRARY_PATH, the linker's
/// default search, /usr/local/cuda*, Python environments' site-packages/nvidia/*/lib) and resolves the logical
/// library names of this assembly's LibraryImports to them. A missing library becomes a <see cref="CogVideoXException"/>
/// that names it and says how to install it.
/// </summary>
public static class CudaLibraries
{
    // The names LibraryImport declarations use; the resolver maps them to the probed files.
    internal const string DriverName = "cogvideox-cuda";
    internal const string NvrtcName = "cogvideox-nvrtc";
    internal const string CublasLtName = "cogvideox-cublaslt";
    internal const string CudnnName = "cogvideox-cudnn";

    private static readonly object s_gate = new();
    private static readonly Dictionary<CudaLibrary, Loaded> s_loaded = new();
    private static bool s_resolverSet;

    private sealed record Loaded(IntPtr Handle, string? Path, string? Error, IReadOnlyList<string> Tried);

    private static string[] Sonames(CudaLibrary lib) => lib switch
    {
        CudaLibrary.Driver => ["libcuda.so.1", "libcuda.so"],
        // NVRTC 11.2+ (CUDA 11.8 ships soname .11.2) still compiles for sm_90, so it is the last resort.
        CudaLibrary.Nvrtc => ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", "libnvrtc.so.11.2"],
        CudaLibrary.CublasLt => ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"],
        CudaLibrary.Cudnn => ["libcudnn.so.9"],
        _ => throw new ArgumentOutOfRangeException(nameof(lib)),
    };

    public static string DisplayName(CudaLibrary lib) => lib switch
    {
        CudaLibrary.Driver => "CUDA driver (libcuda.so.1)",
        CudaLibrary.Nvrtc => "NVRTC (libnvrtc.so.13/.12)",
        CudaLibrary.CublasLt => "cuBLASLt (libcublasLt.so.13/.12)",
        CudaLibrary.Cudnn => "cuDNN (libcudnn.so.9)",
        _ => lib.ToString(),
    };

    /// <summary>What to do when a library is missing.</summary>
    public static string FixHint(CudaLibrary lib) => lib switch
    {
        CudaLibrary.Driver => "install the NVIDIA driver (nvidia-smi must work); in a container, run it with the GPU exposed (--gpus all)",
        CudaLibrary.Nvrtc => "install the CUDA toolkit's NVRTC (apt: cuda-nvrtc-13-0 or cuda-nvrtc-12-x; pip: nvidia-cuda-nvrtc) or point CUDA_PATH / LD_LIBRARY_PATH at the folder holding libnvrtc.so.*",
        CudaLibrary.CublasLt => "install cuBLAS (apt: libcublas-13-0 or libcublas-12-x; pip: nvidia-cublas) or point CUDA_PATH / LD_LIBRARY_PATH at the folder holding libcublasLt.so.*",
        CudaLibrary.Cudnn => "install cuDNN 9 (apt: cudnn9-cuda-13 or cudnn9-cuda-12; pip: nvidia-cudnn-cu13 or nvidia-cudnn-cu12) or point LD_LIBRARY_PATH at the folder holding libcudnn.so.9",
        _ => "",
    };

    /// <summary>Registers the import resolver for this assembly (idempotent); interop classes call it first.</summary>
    internal static void EnsureResolver()
    {
        lock (s_gate)
        {
            if (s_resolverSet) return;
            NativeLibrary.SetDllImportResolver(typeof(CudaLibraries).Assembly, Resolve);
            s_resolverSet = true;
        }
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        CudaLibrary? lib = name switch
        {
            DriverName => CudaLibrary.Driver,
            NvrtcName => CudaLibrary.Nvrtc,
            CublasLtName => CudaLibrary.CublasLt,
            CudnnName => CudaLibrary.Cudnn,
            _ => null,
        };
        return lib is null ? IntPtr.Zero : Load(lib.Value).Handle;
    }

    /// <summary>Loads the library (once) or throws a <see cref="CogVideoXException"/> saying how to install it.</summary>
    public static void Require(CudaLibrary lib)
    {
        var loaded = Load(lib);
        if (loaded.Handle != IntPtr.Zero) return;
        var detail = loaded.Error is null ? "" : $" ({loaded.Error})";
        throw new CogVideoXException(
            $"{DisplayName(lib)} was not found{detail}; the CUDA backend needs it. To fix: {FixHint(lib)}. " +
            $"Looked for {string.Join(", ", Sonames(lib))} in: {string.Join(", ", loaded.Tried.Distinct().Take(12))}" +
            (loaded.Tried.Count > 12 ? ", …" : "") + ".");
    }

    public static bool IsAvailable(CudaLibrary lib) => Load(lib).Handle != IntPtr.Zero;

    /// <summary>Probes one library for the doctor: path, version, or the places tried.</summary>
    public static LibraryProbe Probe(CudaLibrary lib)
    {
        var loaded = Load(lib);
        string? version = null, error = loaded.Error;
        if (loaded.Handle != IntPtr.Zero)
        {
            try { version = QueryVersion(lib); }
            catch (Exception e) when (e is CogVideoXException or EntryPointNotFoundException) { error = e.Message; }
        }
        return new LibraryProbe(lib, DisplayName(lib), loaded.Path, version, error, loaded.Tried);
    }

    private static string QueryVersion(CudaLibrary lib)
    {
        switch (lib)
        {
            case CudaLibrary.Driver:
                {
                    CudaDriver.Check(CudaDriver.cuDriverGetVersion(out int v), "cuDriverGetVersion");
                    return $"driver API {v / 1000}.{v % 1000 / 10}";
                }
            case CudaLibrary.Nvrtc:
                {
                    Nvrtc.Check(Nvrtc.nvrtcVersion(out int major, out int minor), "nvrtcVersion");
                    return $"{major}.{minor}";
                }
            case CudaLibrary.CublasLt:
                {
                    long v = (long)CublasLt.cublasLtGetVersion();
                    return $"{v / 10000}.{v / 100 % 100}.{v % 100}";
                }
            case CudaLibrary.Cudnn:
                {
                    long v = (long)Cudnn.cudnnGetVersion();
                    return v >= 90000 ? $"{v / 10000}.{v / 100 % 100}.{v % 100}" : $"{v / 1000}.{v / 100 % 10}.{v % 100}";
                }
            default:
                throw new ArgumentOutOfRangeException(nameof(lib));
        }
    }

    private static Loaded Load(CudaLibrary lib)
    {
        lock (s_gate)
        {
            if (s_loaded.TryGetValue(lib, out var cached)) return cached;
            var loaded = Probe(Sonames(lib));
            if (lib == CudaLibrary.Nvrtc && loaded.Handle != IntPtr.Zero) PreloadNvrtcBuiltins(loaded);
            s_loaded[lib] = loaded;
            return loaded;
        }
    }

    /// <summary>
    /// NVRTC opens libnvrtc-builtins.so.MAJOR.MINOR by name at its first compile, through the dynamic linker's search
    /// only, so an NVRTC found through CUDA_PATH, a Python environment or a folder named after start-up would fail there
    /// ("failed to open libnvrtc-builtins"). Loading the one beside it first, by path, lets that lookup find it
    /// already loaded. Best effort: if it is not there, NVRTC's own search runs as before.
    /// </summary>
    private static unsafe void PreloadNvrtcBuiltins(Loaded nvrtc)
    {
        var dir = System.IO.Path.GetDirectoryName(nvrtc.Path);
        if (string.IsNullOrEmpty(dir) || !NativeLibrary.TryGetExport(nvrtc.Handle, "nvrtcVersion", out var export)) return;
        int major, minor;
        if (((delegate* unmanaged<int*, int*, int>)export)(&major, &minor) != 0) return;
        var builtins = System.IO.Path.Combine(dir, $"libnvrtc-builtins.so.{major}.{minor}");
        if (File.Exists(builtins)) NativeLibrary.TryLoad(builtins, out _);
    }

    private static Loaded Probe(string[] names)
    {
        var tried = new List<string>();
        string? lastError = null;
        foreach (var dir in Directories(beforeSystem: true))
        {
            foreach (var name in names)
            {
                var path = System.IO.Path.Combine(dir, name);
                if (!File.Exists(path)) continue;
                if (NativeLibrary.TryLoad(path, out var h)) return new Loaded(h, path, null, tried);
                lastError = $"{path} exists but could not be loaded";
            }
            tried.Add(dir);
        }
        // The dynamic linker's own search (ld.so.cache, /usr/lib/...), by plain soname.
        foreach (var name in names)
        {
            if (NativeLibrary.TryLoad(name, out var h)) return new Loaded(h, MappedPath(name) ?? name, null, tried);
        }
        tried.Add("the system library path");
        foreach (var dir in Directories(beforeSystem: false))
        {
            foreach (var name in names)
            {
                var path = System.IO.Path.Combine(dir, name);
                if (!File.Exists(path)) continue;
                if (NativeLibrary.TryLoad(path, out var h)) return new Loaded(h, path, null, tried);
                lastError = $"{path} exists but could not be loaded";
            }
            tried.Add(dir);
        }
        return new Loaded(IntPtr.Zero, null, lastError, tried);
    }

    /// <summary>Folders to probe: explicit ones (CUDA_PATH, LD_LIBRARY_PATH) before the system search, the rest after.</summary>
    private static IEnumerable<string> Directories(bool beforeSystem)
    {
        if (beforeSystem)
        {
            foreach (var variable in new[] { "CUDA_PATH", "CUDA_HOME" })
            {
                var root = Environment.GetEnvironmentVariable(variable);
                if (string.IsNullOrWhiteSpace(root)) continue;
                yield return System.IO.Path.Combine(root, "targets", "x86_64-linux", "lib");
                yield return System.IO.Path.Combine(root, "lib64");
                yield return System.IO.Path.Combine(root, "lib");
            }
            var ld = Environment.GetEnvironmentVariable("LD_LIBRARY_PATH");
            if (!string.IsNullOrEmpty(ld))
                foreach (var d in ld.Split(':', StringSplitOptions.RemoveEmptyEntries))
                    yield return d;
            yield break;
        }
        foreach (var root in CudaInstallRoots())
        {
            yield return System.IO.Path.Combine(root, "targets", "x86_64-linux", "lib");
            yield return System.IO.Path.Combine(root, "lib64");
        }
        foreach (var d in PythonNvidiaDirs()) yield return d;
    }

    private static IEnumerable<string> CudaInstallRoots()
    {
        var roots = new List<string>();
        if (Directory.Exists("/usr/local/cuda")) roots.Add("/usr/local/cuda");
        try
        {
            // Newest first: /usr/local/cuda-13.0 before /usr/local/cuda-12.8.
            roots.AddRange(Directory.GetDirectories("/usr/local", "cuda-*")
                .OrderByDescending(d => Version.TryParse(System.IO.Path.GetFileName(d)[5..], out var v) ? v : new Version(0, 0)));
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return roots;
    }

    /// <summary>site-packages/nvidia/*/lib of virtual environments, conda, user and system Pythons (pip's CUDA wheels).</summary>
    private static IEnumerable<string> PythonNvidiaDirs()
    {
        var prefixes = new List<string>();
        foreach (var variable in new[] { "VIRTUAL_ENV", "CONDA_PREFIX" })
        {
            var p = Environment.GetEnvironmentVariable(variable);
            if (!string.IsNullOrWhiteSpace(p)) prefixes.Add(p);
        }
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (!string.IsNullOrEmpty(home)) prefixes.Add(System.IO.Path.Combine(home, ".local"));
        prefixes.AddRange(SafeDirectories("/opt", "*").SelectMany(d => new[] { System.IO.Path.Combine(d, ".venv"), d }));
        prefixes.Add("/usr/local");
        prefixes.Add("/usr");
        foreach (var prefix in prefixes.Distinct())
        {
            foreach (var py in SafeDirectories(System.IO.Path.Combine(prefix, "lib"), "python3*"))
            {
                foreach (var packages in new[] { "site-packages", "dist-packages" })
                {
                    foreach (var lib in SafeDirectories(System.IO.Path.Combine(py, packages, "nvidia"), "*"))
                        yield return System.IO.Path.Combine(lib, "lib");
                }
            }
        }
    }

    private static string[] SafeDirectories(string dir, string pattern)
    {
        try
        {
            return Directory.Exists(dir) ? Directory.GetDirectories(dir, pattern).OrderBy(d => d, StringComparer.Ordinal).ToArray() : [];
        }
        catch (IOException) { return []; }
        catch (UnauthorizedAccessException) { return []; }
    }

    /// <summary>The file a library loaded by soname came from, read from /proc/self/maps.</summary>
    private static string? MappedPath(string soname)
    {
        int so = soname.IndexOf(".so", StringComparison.Ordinal);
        var stem = so < 0 ? soname : soname[..(so + 3)];
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/');
                if (slash < 0) continue;
                var path = line[slash..].Trim();
                // libcuda.so.1 maps as libcuda.so.580.xx: match on the name up to ".so".
                if (System.IO.Path.GetFileName(path).StartsWith(stem, StringComparison.Ordinal)) return path;
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }
}
