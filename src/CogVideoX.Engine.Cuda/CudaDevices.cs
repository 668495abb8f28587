using System.Text;

namespace CogVideoX.Engine.Cuda;

/// <summary>What the driver says about one GPU.</summary>
public sealed record CudaDeviceInfo(
    int Index,
    string Name,
    int Major,
    int Minor,
    int Multiprocessors,
    long TotalMemory,
    long L2CacheBytes,
    int MaxSharedMemoryPerBlock)
{
    /// <summary>The NVRTC/nvcc name of the architecture, e.g. sm_90.</summary>
    public string Architecture => $"sm_{Major}{Minor}";
}

/// <summary>Driver initialisation and device enumeration.</summary>
public static class CudaDevices
{
    private static readonly object s_gate = new();
    private static bool s_initialised;

    /// <summary>Loads libcuda and calls cuInit once; errors say what is wrong and how to fix it.</summary>
    internal static void Initialise()
    {
        lock (s_gate)
        {
            if (s_initialised) return;
            CudaLibraries.Require(CudaLibrary.Driver);
            int r = CudaDriver.cuInit(0);
            if (r == CudaDriver.ErrorNoDevice)
                throw new CogVideoXException("the CUDA driver found no GPU (CUDA_ERROR_NO_DEVICE): check that nvidia-smi lists one and that CUDA_VISIBLE_DEVICES does not hide it");
            if (r != CudaDriver.Success)
                throw CudaDriver.Error(r, "cuInit", "the NVIDIA driver could not be initialised; check nvidia-smi and that the driver supports CUDA 12 or newer");
            s_initialised = true;
        }
    }

    public static int Count()
    {
        Initialise();
        CudaDriver.Check(CudaDriver.cuDeviceGetCount(out int n), "cuDeviceGetCount");
        return n;
    }

    public static unsafe CudaDeviceInfo Info(int index)
    {
        int count = Count();
        if (index < 0 || index >= count)
            throw new CogVideoXException(count == 0
                ? $"cuda:{index} was requested but no CUDA device is present"
                : $"cuda:{index} was requested but only {count} CUDA device(s) exist (cuda:0{(count > 1 ? $" to cuda:{count - 1}" : "")})");
        CudaDriver.Check(CudaDriver.cuDeviceGet(out int device, index), "cuDeviceGet");
        var name = new byte[256];
        fixed (byte* p = name) CudaDriver.Check(CudaDriver.cuDeviceGetName(p, name.Length, device), "cuDeviceGetName");
        int length = Array.IndexOf(name, (byte)0);
        CudaDriver.Check(CudaDriver.cuDeviceTotalMem_v2(out var total, device), "cuDeviceTotalMem");
        return new CudaDeviceInfo(
            index,
            Encoding.UTF8.GetString(name, 0, length < 0 ? name.Length : length),
            Attribute(device, CudaDriver.AttributeComputeCapabilityMajor),
            Attribute(device, CudaDriver.AttributeComputeCapabilityMinor),
            Attribute(device, CudaDriver.AttributeMultiprocessorCount),
            (long)total,
            Attribute(device, CudaDriver.AttributeL2CacheSize),
            Attribute(device, CudaDriver.AttributeMaxSharedMemoryPerBlockOptin));
    }

    private static int Attribute(int device, int attribute)
    {
        CudaDriver.Check(CudaDriver.cuDeviceGetAttribute(out int value, attribute, device), $"cuDeviceGetAttribute({attribute})");
        return value;
    }
}
