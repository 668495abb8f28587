using System.Globalization;
using System.Text.RegularExpressions;

namespace CogVideoX.Engine.Cuda;

/// <summary>What ptxas said about one kernel: the registers a thread holds, what it spilled, its static shared memory.</summary>
public sealed record KernelResources(string Kernel, int Registers, int SpillStoreBytes, int SpillLoadBytes, int StackBytes, int SharedBytes)
{
    public bool Spills => SpillStoreBytes > 0 || SpillLoadBytes > 0;
}

/// <summary>
/// ptxas's verbose report of one module (NVRTC's log with <c>--ptxas-options=-v</c>): each entry function's
/// resources, and the lines where ptxas warns or names a performance loss (wgmma serialized, for one). Why a compile
/// check wants it: a spill or a serialized wgmma costs speed without failing anything.
/// </summary>
public sealed partial record PtxasReport(IReadOnlyList<KernelResources> Kernels, IReadOnlyList<string> Warnings)
{
    [GeneratedRegex(@"Compiling entry function '([^']+)'")]
    private static partial Regex EntryLine();

    [GeneratedRegex(@"Function properties for (\S+)")]
    private static partial Regex PropertiesLine();

    [GeneratedRegex(@"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")]
    private static partial Regex FrameLine();

    [GeneratedRegex(@"Used (\d+) registers(?:.*?(\d+) bytes smem)?")]
    private static partial Regex UsedLine();

    public static PtxasReport Parse(string log)
    {
        var kernels = new List<KernelResources>();
        var warnings = new List<string>();
        string? entry = null, properties = null;
        int stack = 0, stores = 0, loads = 0;
        foreach (var raw in log.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Contains("warning", StringComparison.OrdinalIgnoreCase) || line.Contains("Performance Loss", StringComparison.Ordinal))
            {
                warnings.Add(line);
                continue;
            }
            if (EntryLine().Match(line) is { Success: true } e)
            {
                entry = e.Groups[1].Value;
                (stack, stores, loads) = (0, 0, 0);
            }
            else if (PropertiesLine().Match(line) is { Success: true } p)
            {
                properties = p.Groups[1].Value;
            }
            else if (properties == entry && FrameLine().Match(line) is { Success: true } f)
            {
                // Only the entry function's own frame: a non-inlined callee has a properties block of its own.
                (stack, stores, loads) = (Int(f.Groups[1]), Int(f.Groups[2]), Int(f.Groups[3]));
            }
            else if (entry is not null && UsedLine().Match(line) is { Success: true } u)
            {
                // "Used" closes an entry function's block; a non-inlined device function's block has no entry line.
                kernels.Add(new KernelResources(entry, Int(u.Groups[1]), stores, loads, stack, u.Groups[2].Success ? Int(u.Groups[2]) : 0));
                (entry, properties) = (null, null);
            }
        }
        return new PtxasReport(kernels, warnings);
    }

    private static int Int(Group g) => int.Parse(g.Value, CultureInfo.InvariantCulture);
}
