using System.Globalization;
using CogVideoX.Engine;
using CogVideoX.Lab.Specs;

namespace CogVideoX.Lab.Runs;

/// <summary>
/// One slice of a job list for Slurm arrays and the like: job k belongs to shard i of n when k mod n == i, over the
/// plan's stable order — deterministic, disjoint, and covering every job; it interleaves experiments so shards
/// get similar mixes of long and short jobs.
/// </summary>
public readonly record struct Shard(int Index, int Count)
{
    public static Shard All => new(0, 1);

    public bool Contains(int jobIndex) => jobIndex % Count == Index;

    public static Shard Parse(string text)
    {
        var parts = text.Split('/');
        if (parts.Length != 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var i)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            throw new CogVideoXException($"--shard '{text}' is not of the form i/n (e.g. 0/4 for the first of four shards; Slurm: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)", 2);
        if (n < 1 || i >= n)
            throw new CogVideoXException($"--shard {text}: the shard index must be 0 … n−1 and n ≥ 1 (got index {i} of {n})", 2);
        return new Shard(i, n);
    }

    public override string ToString() => $"{Index}/{Count}";
}

/// <summary>Parses <c>--devices</c>: <c>0,1</c> → cuda:0, cuda:1; <c>cuda:2</c> as is; <c>cpu</c> (repeatable, for CPU workers).</summary>
public static class DeviceList
{
    public static IReadOnlyList<string> Parse(string text)
    {
        var devices = new List<string>();
        foreach (var raw in text.Split(',', StringSplitOptions.TrimEntries))
        {
            var item = raw.ToLowerInvariant();
            string device = int.TryParse(item, NumberStyles.None, CultureInfo.InvariantCulture, out var ordinal) ? $"cuda:{ordinal}" : item;
            if (!SettingKey.IsDevice(device) || device is "cuda" or "auto")
                throw new CogVideoXException($"--devices: '{raw}' is not a device; give GPU ordinals (0,1), cuda:N, or cpu (e.g. --devices 0,1)", 2);
            devices.Add(device);
        }
        var repeated = devices.Where(d => d != "cpu").GroupBy(d => d).FirstOrDefault(g => g.Count() > 1);
        if (repeated is not null)
            throw new CogVideoXException($"--devices names {repeated.Key} twice; one worker per GPU (two would share its memory and slow each other)", 2);
        return devices;
    }
}

/// <summary>How one runner process works through a plan.</summary>
public sealed record RunOptions
{
    public required string OutputDir { get; init; }

    public Shard Shard { get; init; } = Shard.All;

    /// <summary>Which worker this process is (0 when it runs alone).</summary>
    public int Worker { get; init; }

    /// <summary>Renders on this device instead of the spec's (a worker of <c>--devices</c>); must be of the same kind.</summary>
    public string? Device { get; init; }

    /// <summary>Shared by the workers of one invocation (failure markers and the manifest use it).</summary>
    public string RunId { get; init; } = NewRunId();

    /// <summary>A claim from another host whose heartbeat is older than this is taken over.</summary>
    public TimeSpan StaleAfter { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>How often to look again at jobs other live processes hold.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// True for a rehearsal with <see cref="SyntheticRenderer"/>. Outputs count as complete only when made the same
    /// way, so a real run replaces a rehearsal's test patterns instead of keeping them.
    /// </summary>
    public bool Synthetic { get; init; }

    public static string NewRunId() => $"{DateTime.UtcNow:yyyyMMdd'T'HHmmss}-{Guid.NewGuid().ToString("N")[..6]}";
}
