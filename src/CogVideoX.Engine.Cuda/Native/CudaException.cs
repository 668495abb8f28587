namespace CogVideoX.Engine.Cuda;

/// <summary>A CUDA library call failed: which library, which call, the status code and its name.</summary>
public class CudaException : CogVideoXException
{
    public CudaException(string library, string call, int status, string statusName, string? detail = null)
        : base($"{library}: {call} failed with {statusName} ({status}){(detail is null ? "" : ": " + detail)}")
    {
        Library = library;
        Call = call;
        Status = status;
        StatusName = statusName;
    }

    public string Library { get; }

    public string Call { get; }

    public int Status { get; }

    public string StatusName { get; }
}

/// <summary>The device ran out of memory (after the allocator released its cache and retried).</summary>
public sealed class CudaOutOfMemoryException : CudaException, IDeviceOutOfMemory
{
    public CudaOutOfMemoryException(long requestedBytes, long allocatedBytes, long reservedBytes, long freeBytes, long totalBytes)
        : base("CUDA driver", "cuMemAlloc", 2, "CUDA_ERROR_OUT_OF_MEMORY",
            $"could not allocate {Bytes.Format(requestedBytes)} ({Bytes.Format(allocatedBytes)} in use by tensors, " +
            $"{Bytes.Format(reservedBytes)} held by this process, {Bytes.Format(freeBytes)} free of {Bytes.Format(totalBytes)} on the device). " +
            "Use a smaller batch or resolution, enable VAE tiling or CPU offload, or free other GPU processes")
    {
        RequestedBytes = requestedBytes;
        HeldBytes = reservedBytes;
        FreeBytes = freeBytes;
        TotalBytes = totalBytes;
    }

    public long RequestedBytes { get; }

    public long HeldBytes { get; }

    public long FreeBytes { get; }

    public long TotalBytes { get; }
}

internal static class Bytes
{
    public static string Format(long bytes)
    {
        double b = bytes;
        if (b >= 1L << 30) return $"{b / (1L << 30):0.00} GiB";
        if (b >= 1L << 20) return $"{b / (1L << 20):0.0} MiB";
        if (b >= 1L << 10) return $"{b / (1L << 10):0.0} KiB";
        return $"{bytes} B";
    }
}
