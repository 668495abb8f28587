namespace CogVideoX.Engine;

/// <summary>
/// Resolves a <see cref="Device"/> to its backend. The CPU backend is built in; other kinds are registered by the
/// assembly that implements them (the CLI registers CUDA at start-up), so the engine does not depend on them. One
/// backend instance is opened per device and set of <see cref="GpuOptions"/> and kept until <see cref="DisposeAll"/>.
/// </summary>
public static class Backends
{
    private static readonly object s_gate = new();
    private static readonly Dictionary<DeviceKind, Func<int, GpuOptions, IBackend>> s_factories = new();
    private static readonly Dictionary<(Device Device, GpuOptions Options), IBackend> s_open = new();

    /// <summary>Registers how a device kind's backend is opened: device index and the run's GPU options in.</summary>
    public static void Register(DeviceKind kind, Func<int, GpuOptions, IBackend> factory)
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

    /// <summary>The backend of a device with these GPU options (the defaults when null), opened on first use.</summary>
    public static IBackend Get(Device device, GpuOptions? options = null)
    {
        if (device.IsCpu) return CpuBackend.Instance;
        // Keyed on the options in effect (COGVIDEOX_* variables applied), so choices that resolve alike share one backend.
        options = (options ?? GpuOptions.Default).WithEnvironment();
        lock (s_gate)
        {
            if (s_open.TryGetValue((device, options), out var open)) return open;
            if (!s_factories.TryGetValue(device.Kind, out var factory))
                throw new CogVideoXException($"device {device} is not available in this build (no {device.Kind} backend is registered); use --device cpu");
            var backend = factory(device.Index, options);
            s_open[(device, options)] = backend;
            return backend;
        }
    }

    /// <summary>Parses "cpu", "cuda" or "cuda:N" and opens its backend.</summary>
    public static IBackend Get(string device, GpuOptions? options = null) => Get(Parse(device), options);

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
