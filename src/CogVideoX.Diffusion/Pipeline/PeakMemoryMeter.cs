using System.Diagnostics;
using System.Globalization;
using CogVideoX.Engine;

namespace CogVideoX.Diffusion;

/// <summary>
/// Measures the most memory a run used. On a backend with an allocator that counts (<see cref="IMemoryStatistics"/>,
/// a GPU) that is the allocator's peak since <see cref="Start"/>; otherwise it is the process's peak resident set
/// (weights, activations and everything else the process holds), which on Linux is reset at the start by writing
/// "5" to /proc/self/clear_refs and read back as VmHWM from /proc/self/status. Where the reset is not possible the
/// figure is the process's peak since it started.
/// </summary>
public sealed class PeakMemoryMeter
{
    private const string ClearRefs = "/proc/self/clear_refs";
    private const string Status = "/proc/self/status";

    private readonly IMemoryStatistics? _device;

    private PeakMemoryMeter(IMemoryStatistics? device, bool hostReset)
    {
        _device = device;
        HostPeakReset = hostReset;
    }

    /// <summary>"device" or "host".</summary>
    public string Kind => _device is null ? "host" : "device";

    /// <summary>Whether the host peak was reset at the start (false: it counts from the process's start).</summary>
    public bool HostPeakReset { get; }

    /// <summary>Resets the peak for <paramref name="backend"/> and starts counting.</summary>
    public static PeakMemoryMeter Start(IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (backend is IMemoryStatistics stats)
        {
            stats.ResetPeak();
            return new PeakMemoryMeter(stats, hostReset: false);
        }
        return new PeakMemoryMeter(null, ResetHostPeak());
    }

    /// <summary>The peak so far, in bytes.</summary>
    public long PeakBytes => _device?.PeakBytes ?? HostPeakBytes();

    /// <summary>Resets the kernel's high-water mark of this process's resident memory (Linux 4.0+).</summary>
    public static bool ResetHostPeak()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            File.WriteAllText(ClearRefs, "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The process's peak resident memory: VmHWM on Linux, the runtime's peak working set elsewhere.</summary>
    public static long HostPeakBytes()
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                foreach (var line in File.ReadLines(Status))
                {
                    if (!line.StartsWith("VmHWM:", StringComparison.Ordinal)) continue;
                    var parts = line["VmHWM:".Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length == 2 && parts[1] == "kB" && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out long kb))
                        return kb * 1024;
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Fall through to the runtime's figure.
            }
        }
        using var process = Process.GetCurrentProcess();
        return process.PeakWorkingSet64;
    }
}
