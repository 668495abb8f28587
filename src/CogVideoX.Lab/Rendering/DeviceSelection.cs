using CogVideoX.Engine;

namespace CogVideoX.Lab;

/// <summary>Whether a GPU can run here: <see cref="Works"/>, with the device's name or why not.</summary>
public readonly record struct GpuCheck(bool Works, string Detail)
{
    public static GpuCheck Found(string name) => new(true, name);

    public static GpuCheck Missing(string why) => new(false, why);
}

/// <summary>A device chosen for <c>auto</c> (or taken as given) and, for the user, why.</summary>
public readonly record struct DeviceChoice(string Device, string Reason);

/// <summary>
/// Turns <c>--device auto</c> (the default of every command that renders) into <c>cuda</c> when a GPU works and
/// <c>cpu</c> otherwise, saying which and why — people coming from diffusers expect the GPU when there is one, and
/// a 2b video in float32 on the CPU takes hours. The GPU check is a parameter so both outcomes can be tested.
/// </summary>
public static class DeviceSelection
{
    public const string Auto = "auto";

    private static readonly Lazy<GpuCheck> s_probe = new(ProbeBackend);

    /// <summary>The real check, once per process: the CUDA backend registered and its first device opened.</summary>
    public static GpuCheck Probe() => s_probe.Value;

    public static bool IsAuto(string? device) => string.Equals(device?.Trim(), Auto, StringComparison.OrdinalIgnoreCase);

    /// <summary><c>auto</c> → cuda or cpu (with why); any other device is returned as it is.</summary>
    public static DeviceChoice Resolve(string device, Func<GpuCheck>? gpu = null)
    {
        if (!IsAuto(device)) return new DeviceChoice(device, "");
        var check = (gpu ?? Probe)();
        return check.Works
            ? new DeviceChoice("cuda", $"device: cuda — --device auto found a GPU that works ({check.Detail}); --device cpu to use the CPU")
            : new DeviceChoice("cpu", $"device: cpu — --device auto found no GPU that works ({check.Detail}); a full-size video takes hours on the CPU: " +
                "make it smaller (--frames, --height, --width, --steps) or run where `cogvideox doctor` finds a GPU");
    }

    private static GpuCheck ProbeBackend()
    {
        if (!Backends.IsRegistered(DeviceKind.Cuda)) return GpuCheck.Missing("this build has no CUDA backend");
        try
        {
            var backend = Backends.Get(Device.Cuda(0));
            return GpuCheck.Found(backend is IDeviceDescription described && described.DescribeDevice().TryGetValue("name", out var name) ? name : backend.Name);
        }
        catch (Exception e) // any failure to open the GPU (no driver, no device, a broken library) means "use the CPU"
        {
            return GpuCheck.Missing(FirstSentence(e.Message));
        }
    }

    /// <summary>
    /// The first sentence of an error (up to ". " or the end of its first line), for the one-line reason of
    /// <c>auto</c>; <c>cogvideox doctor</c> gives the rest. A sentence over 160 characters is cut at a word.
    /// </summary>
    internal static string FirstSentence(string message)
    {
        var line = message.Split('\n')[0].Trim();
        int end = line.IndexOf(". ", StringComparison.Ordinal);
        if (end >= 0) line = line[..end];
        line = line.TrimEnd('.');
        if (line.Length <= 160) return line;
        int space = line.LastIndexOf(' ', 160);
        return line[..(space > 80 ? space : 160)].TrimEnd(',', ';', ':', ' ') + " …";
    }
}
