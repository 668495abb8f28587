namespace CogVideoX.Engine;

public enum DeviceKind : byte
{
    Cpu,
    Cuda,
}

/// <summary>Where a tensor's storage lives: the CPU, or CUDA device N.</summary>
public readonly record struct Device(DeviceKind Kind, int Index = 0)
{
    public static Device Cpu => new(DeviceKind.Cpu);

    public static Device Cuda(int index = 0) => new(DeviceKind.Cuda, index);

    public bool IsCpu => Kind == DeviceKind.Cpu;

    public override string ToString() => Kind == DeviceKind.Cpu ? "cpu" : $"cuda:{Index}";

    /// <summary>Parses "cpu", "cuda", "cuda:N".</summary>
    public static bool TryParse(string text, out Device device)
    {
        var t = text.Trim().ToLowerInvariant();
        if (t == "cpu") { device = Cpu; return true; }
        if (t == "cuda" || t == "gpu") { device = Cuda(0); return true; }
        if (t.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(t.AsSpan(5), out var i) && i >= 0)
        {
            device = Cuda(i);
            return true;
        }
        device = default;
        return false;
    }
}
