namespace CogVideoX.Engine;

/// <summary>
/// Resolves a <see cref="Device"/> to its backend. The CPU backend is built in; other kinds are registered by the
/// assembly that implements them (the CLI registers CUDA at start-up), so the engine does not depend on them. One
/// backend instance is opened per device and kept until <see cref="DisposeAll"/>.
/// </summary>
public static class Backends
{
    private static readonly object s_gate = new();
    private static readonly Dictionary<DeviceKind, Func<int, IBackend>> s_factories = new();
    private static readonly Dictionary<Device, IBackend> s_open = new();

    public static void Register(DeviceKind kind, Func<int, IBackend> factory)
    {
        ArgumentNullException.ThrowIfNull(factory);
        if (kind == DeviceKind.Cpu) throw new ArgumentException("the CPU backend is built in");
        lock (s_gate) s_factories[kind] = factory;
    }

    public static bool IsRegistered(DeviceKind kind)
    {
        if (kind == DeviceKind.Cpu) return true;
        lock (s_gate) return s_factories.ContainsKey(kind);
    }

    /// <summary>The backend of a device, opened on first use.</summary>
    public static IBackend Get(Device device)
    {
        if (device.IsCpu) return CpuBackend.Instance;
        lock (s_gate)
        {
            if (s_open.TryGetValue(device, out var open)) return open;
            if (!s_factories.TryGetValue(device.Kind, out var factory))
                throw new CogVideoXException($"device {device} is not available in this build (no {device.Kind} backend is registered); use --device cpu");
            var backend = factory(device.Index);
            s_open[device] = backend;
            return backend;
        }
    }

    /// <summary>Parses "cpu", "cuda" or "cuda:N" and opens its backend.</summary>
    public static IBackend Get(string device) => Get(Parse(device));

    public static Device Parse(string text)
    {
        if (Device.TryParse(text, out var device)) return device;
        throw new CogVideoXException($"unknown device '{text}': use cpu, cuda or cuda:N (N = 0 for the first GPU)");
    }

    /// <summary>Disposes every opened backend (GPU memory and contexts go back to the driver).</summary>
    public static void DisposeAll()
    {
        List<IBackend> open;
        lock (s_gate)
        {
            open = s_open.Values.ToList();
            s_open.Clear();
        }
        foreach (var b in open) b.Dispose();
    }
}
