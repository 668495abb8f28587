using System.Runtime.InteropServices;

namespace CogVideoX.Engine.Cuda;

/// <summary>
/// The CUDA driver API (libcuda). Only ABI-stable entry points are bound (the _v2 names where the header maps to
/// them), so the same binary runs on CUDA 12 and 13 drivers. Every result goes through <see cref="Check"/>.
/// </summary>
internal static unsafe partial class CudaDriver
{
    private const string Lib = CudaLibraries.DriverName;

    static CudaDriver() => CudaLibraries.EnsureResolver();

    public const int Success = 0;
    public const int ErrorOutOfMemory = 2;
    public const int ErrorNoDevice = 100;

    public const int AttributeMultiprocessorCount = 16;
    public const int AttributeL2CacheSize = 38;
    public const int AttributeComputeCapabilityMajor = 75;
    public const int AttributeComputeCapabilityMinor = 76;
    public const int AttributeMaxSharedMemoryPerBlockOptin = 97;

    public const uint StreamNonBlocking = 1;
    public const uint EventDefault = 0;
    public const uint EventDisableTiming = 2;

    public const int FunctionAttributeMaxDynamicSharedSizeBytes = 8;

    [LibraryImport(Lib)] public static partial int cuInit(uint flags);
    [LibraryImport(Lib)] public static partial int cuDriverGetVersion(out int version);
    [LibraryImport(Lib)] public static partial int cuDeviceGetCount(out int count);
    [LibraryImport(Lib)] public static partial int cuDeviceGet(out int device, int ordinal);
    [LibraryImport(Lib)] public static partial int cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(Lib)] public static partial int cuDeviceGetAttribute(out int value, int attribute, int device);
    [LibraryImport(Lib)] public static partial int cuDeviceTotalMem_v2(out nuint bytes, int device);

    [LibraryImport(Lib)] public static partial int cuDevicePrimaryCtxRetain(out IntPtr context, int device);
    [LibraryImport(Lib)] public static partial int cuDevicePrimaryCtxRelease_v2(int device);
    [LibraryImport(Lib)] public static partial int cuCtxSetCurrent(IntPtr context);
    [LibraryImport(Lib)] public static partial int cuCtxSynchronize();
    [LibraryImport(Lib)] public static partial int cuMemGetInfo_v2(out nuint free, out nuint total);

    [LibraryImport(Lib)] public static partial int cuStreamCreate(out CudaStreamHandle stream, uint flags);
    [LibraryImport(Lib)] public static partial int cuStreamDestroy_v2(IntPtr stream);
    [LibraryImport(Lib)] public static partial int cuStreamSynchronize(CudaStreamHandle stream);

    [LibraryImport(Lib)] public static partial int cuEventCreate(out CudaEventHandle evt, uint flags);
    [LibraryImport(Lib)] public static partial int cuEventDestroy_v2(IntPtr evt);
    [LibraryImport(Lib)] public static partial int cuEventRecord(CudaEventHandle evt, CudaStreamHandle stream);
    [LibraryImport(Lib)] public static partial int cuEventSynchronize(CudaEventHandle evt);
    [LibraryImport(Lib)] public static partial int cuEventElapsedTime(out float milliseconds, CudaEventHandle start, CudaEventHandle end);

    [LibraryImport(Lib)] public static partial int cuMemAlloc_v2(out ulong pointer, nuint bytes);
    [LibraryImport(Lib)] public static partial int cuMemFree_v2(ulong pointer);
    [LibraryImport(Lib)] public static partial int cuMemAllocHost_v2(out IntPtr pointer, nuint bytes);
    [LibraryImport(Lib)] public static partial int cuMemFreeHost(IntPtr pointer);
    [LibraryImport(Lib)] public static partial int cuMemcpyHtoDAsync_v2(ulong destination, void* source, nuint bytes, CudaStreamHandle stream);
    [LibraryImport(Lib)] public static partial int cuMemcpyDtoHAsync_v2(void* destination, ulong source, nuint bytes, CudaStreamHandle stream);
    [LibraryImport(Lib)] public static partial int cuMemcpyDtoDAsync_v2(ulong destination, ulong source, nuint bytes, CudaStreamHandle stream);
    [LibraryImport(Lib)] public static partial int cuMemsetD16Async(ulong destination, ushort value, nuint count, CudaStreamHandle stream);
    [LibraryImport(Lib)] public static partial int cuMemsetD32Async(ulong destination, uint value, nuint count, CudaStreamHandle stream);

    [LibraryImport(Lib)] public static partial int cuModuleLoadData(out CudaModuleHandle module, void* image);
    [LibraryImport(Lib)] public static partial int cuModuleUnload(IntPtr module);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int cuModuleGetFunction(out IntPtr function, CudaModuleHandle module, string name);
    [LibraryImport(Lib)] public static partial int cuFuncSetAttribute(IntPtr function, int attribute, int value);
    [LibraryImport(Lib)]
    public static partial int cuLaunchKernel(IntPtr function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedMemoryBytes, CudaStreamHandle stream, void** parameters, void** extra);

    // Tensor maps for the tensor memory accelerator (sm_90+, drivers of CUDA 12 and later).
    public const int TensorMapUInt8 = 0;
    public const int TensorMapFloat16 = 6;
    public const int TensorMapBFloat16 = 9;
    public const int TensorMapSwizzle64 = 2;
    public const int TensorMapSwizzle128 = 3;
    public const int TensorMapL2Promotion256 = 3;
    [LibraryImport(Lib)]
    public static partial int cuTensorMapEncodeTiled(void* tensorMap, int dataType, uint rank, ulong globalAddress, ulong* globalDim,
        ulong* globalStrides, uint* boxDim, uint* elementStrides, int interleave, int swizzle, int l2Promotion, int oobFill);

    [LibraryImport(Lib)] public static partial int cuGetErrorName(int error, out IntPtr name);
    [LibraryImport(Lib)] public static partial int cuGetErrorString(int error, out IntPtr text);

    /// <summary>Throws a <see cref="CudaException"/> naming the call when result is not CUDA_SUCCESS.</summary>
    public static void Check(int result, string call)
    {
        if (result != Success) throw Error(result, call);
    }

    public static CudaException Error(int result, string call, string? detail = null)
    {
        string name = $"CUresult {result}";
        string? text = null;
        if (cuGetErrorName(result, out var n) == Success && n != IntPtr.Zero) name = Marshal.PtrToStringUTF8(n) ?? name;
        if (cuGetErrorString(result, out var s) == Success && s != IntPtr.Zero) text = Marshal.PtrToStringUTF8(s);
        var message = text is null ? detail : detail is null ? text : $"{text}; {detail}";
        return new CudaException("CUDA driver", call, result, name, message);
    }
}

/// <summary>A CUstream, destroyed on release.</summary>
internal sealed class CudaStreamHandle : NativeHandle
{
    protected override bool ReleaseHandle() => CudaDriver.cuStreamDestroy_v2(handle) == CudaDriver.Success;
}

/// <summary>A CUevent, destroyed on release.</summary>
internal sealed class CudaEventHandle : NativeHandle
{
    protected override bool ReleaseHandle() => CudaDriver.cuEventDestroy_v2(handle) == CudaDriver.Success;
}

/// <summary>A loaded CUmodule, unloaded on release (its functions become invalid with it).</summary>
internal sealed class CudaModuleHandle : NativeHandle
{
    protected override bool ReleaseHandle() => CudaDriver.cuModuleUnload(handle) == CudaDriver.Success;
}

/// <summary>Page-locked host memory from cuMemAllocHost, freed on release.</summary>
internal sealed class PinnedHostBuffer : NativeHandle
{
    private PinnedHostBuffer(IntPtr pointer, long bytes)
    {
        SetHandle(pointer);
        Length = bytes;
    }

    public long Length { get; }

    public unsafe byte* Pointer => (byte*)handle;

    public static PinnedHostBuffer Allocate(long bytes)
    {
        CudaDriver.Check(CudaDriver.cuMemAllocHost_v2(out var p, (nuint)bytes), "cuMemAllocHost");
        return new PinnedHostBuffer(p, bytes);
    }

    protected override bool ReleaseHandle() => CudaDriver.cuMemFreeHost(handle) == CudaDriver.Success;
}
