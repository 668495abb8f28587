namespace CogVideoX.Lab.Runs;

/// <summary>
/// What a runner reports as it goes (to the console presenter, or from a worker process to its parent as JSON
/// lines on stdout).
/// </summary>
public sealed record RunEvent
{
    /// <summary>
    /// <c>plan</c>, <c>start</c>, <c>step</c>, <c>done</c>, <c>linked</c> (same settings as a finished job: its file),
    /// <c>complete</c> (found done), <c>held</c>, <c>failed</c>, <c>note</c>.
    /// </summary>
    public required string Kind { get; init; }

    public int Worker { get; init; }

    public string? Device { get; init; }

    public int Index { get; init; }

    public string? Job { get; init; }

    /// <summary>Work units of the job (steps × latent frames), for estimates.</summary>
    public double Units { get; init; }

    public int Step { get; init; }

    public int Steps { get; init; }

    public string? Stage { get; init; }

    public double Seconds { get; init; }

    /// <summary>For <c>plan</c>: jobs in this run (after sharding), and how many are already complete.</summary>
    public int Total { get; init; }

    public int Complete { get; init; }

    public string? Message { get; init; }

    public long PeakMemoryBytes { get; init; }
}

/// <summary>The end of a run, for <c>--json</c>.</summary>
public sealed record RunSummary
{
    public required string Spec { get; init; }

    public required string RunId { get; init; }

    public string Shard { get; init; } = "0/1";

    public IReadOnlyList<string> Devices { get; init; } = [];

    /// <summary>Jobs in this run (after sharding).</summary>
    public int Total { get; init; }

    public int AlreadyComplete { get; init; }

    public int Rendered { get; init; }

    /// <summary>Jobs with the same settings as another job of the study: they got its file instead of a render.</summary>
    public int Linked { get; init; }

    public int Failed { get; init; }

    public double WallSeconds { get; init; }

    public string Manifest { get; init; } = "";

    public List<JobOutcome> Jobs { get; init; } = [];
}

public sealed record JobOutcome
{
    public int Index { get; init; }

    public required string Job { get; init; }

    /// <summary><c>rendered</c>, <c>linked</c> (same settings as another job: its file), <c>complete</c> (already was), <c>failed</c>.</summary>
    public required string Status { get; init; }

    public double Seconds { get; init; }

    public string? Device { get; init; }

    public int Worker { get; init; }

    public string? Error { get; init; }
}

/// <summary>One line of <c>--dry-run</c>.</summary>
public sealed record DryRunRow
{
    public int Index { get; init; }

    public required string Job { get; init; }

    public required string Output { get; init; }

    /// <summary>
    /// <c>complete</c>, <c>todo</c>, <c>same</c> (same settings as <see cref="SameAs"/>: gets its file), <c>claimed</c>
    /// (a live process is on it), <c>stale</c> (will be redone).
    /// </summary>
    public required string Status { get; init; }

    public string? Detail { get; init; }

    public string? SameAs { get; init; }

    public required GenerationSettings Settings { get; init; }

    /// <summary>The settings in one line, for people.</summary>
    public required string Summary { get; init; }
}
