using System.Runtime.InteropServices;

namespace CogVideoX.Engine.Cuda;

/// <summary>NVRTC, the run-time CUDA C compiler.</summary>
internal static unsafe partial class Nvrtc
{
    private const string Lib = CudaLibraries.NvrtcName;

    static Nvrtc() => CudaLibraries.EnsureResolver();

    public const int Success = 0;
    public const int ErrorCompilation = 6;

    [LibraryImport(Lib)] public static partial int nvrtcVersion(out int major, out int minor);
    [LibraryImport(Lib)] public static partial int nvrtcGetNumSupportedArchs(out int count);
    [LibraryImport(Lib)] public static partial int nvrtcGetSupportedArchs(int* archs);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int nvrtcCreateProgram(out NvrtcProgramHandle program, string source, string name, int headerCount, IntPtr headers, IntPtr includeNames);
    [LibraryImport(Lib)] public static partial int nvrtcDestroyProgram(ref IntPtr program);
    [LibraryImport(Lib)] public static partial int nvrtcCompileProgram(NvrtcProgramHandle program, int optionCount, byte** options);
    [LibraryImport(Lib)] public static partial int nvrtcGetProgramLogSize(NvrtcProgramHandle program, out nuint size);
    [LibraryImport(Lib)] public static partial int nvrtcGetProgramLog(NvrtcProgramHandle program, byte* log);
    [LibraryImport(Lib)] public static partial int nvrtcGetCUBINSize(NvrtcProgramHandle program, out nuint size);
    [LibraryImport(Lib)] public static partial int nvrtcGetCUBIN(NvrtcProgramHandle program, byte* cubin);
    [LibraryImport(Lib)] public static partial int nvrtcGetPTXSize(NvrtcProgramHandle program, out nuint size);
    [LibraryImport(Lib)] public static partial int nvrtcGetPTX(NvrtcProgramHandle program, byte* ptx);
    [LibraryImport(Lib)] public static partial IntPtr nvrtcGetErrorString(int result);

    public static void Check(int result, string call, string? detail = null)
    {
        if (result == Success) return;
        var name = Marshal.PtrToStringUTF8(nvrtcGetErrorString(result)) ?? $"nvrtcResult {result}";
        throw new CudaException("NVRTC", call, result, name, detail);
    }

    /// <summary>The real architectures this NVRTC can compile for (e.g. 75, 80, 86, 89, 90, 100, 120).</summary>
    public static int[] SupportedArchitectures()
    {
        Check(nvrtcGetNumSupportedArchs(out int n), "nvrtcGetNumSupportedArchs");
        var archs = new int[n];
        fixed (int* p = archs) Check(nvrtcGetSupportedArchs(p), "nvrtcGetSupportedArchs");
        return archs;
    }
}

/// <summary>An nvrtcProgram, destroyed on release.</summary>
internal sealed class NvrtcProgramHandle : NativeHandle
{
    protected override bool ReleaseHandle()
    {
        var h = handle;
        return Nvrtc.nvrtcDestroyProgram(ref h) == Nvrtc.Success;
    }
}
