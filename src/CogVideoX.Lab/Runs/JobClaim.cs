using System.Globalization;
using System.Text.Json;

namespace CogVideoX.Lab.Runs;

/// <summary>What a claim file records about its holder.</summary>
public sealed record ClaimRecord
{
    public string Host { get; init; } = "";

    public int Pid { get; init; }

    public long StartTicks { get; init; }

    public int Worker { get; init; }

    public string RunId { get; init; } = "";

    public DateTimeOffset ClaimedUtc { get; init; }

    [System.Text.Json.Serialization.JsonIgnore]
    public ProcessIdentity Holder => new(Host, Pid, StartTicks);
}

/// <summary>A job's claim as another process sees it.</summary>
public readonly record struct ClaimStatus(ClaimRecord? Holder, bool Live)
{
    public static ClaimStatus Free => new(null, false);

    public override string ToString() => Holder is null ? "free" : Live ? $"claimed by {Holder.Holder}" : $"stale claim of {Holder.Holder}";
}

/// <summary>
/// Exactly-once job ownership between processes that share the output folder (workers, Slurm shards, a resumed run).
/// A claim is a file <c>.NAME.claim.K</c> next to the job's output, created with O_EXCL so only one process can
/// create attempt K. The highest attempt counts. It is live while its process runs (same host: pid and start time;
/// other hosts: its heartbeat, the file's modification time, is younger than the stale limit). Taking over a stale
/// claim means creating attempt K+1, which again only one process can do — no deletion races.
/// </summary>
public sealed class JobClaim : IDisposable
{
    /// <summary>A claim file that exists but is empty or unreadable is given this long for its writer to finish.</summary>
    private static readonly TimeSpan s_unreadableGrace = TimeSpan.FromSeconds(10);

    private readonly string _directory;
    private readonly string _name;
    private bool _released;

    private JobClaim(string directory, string name, string path, ClaimRecord record, ClaimStatus tookOver)
    {
        _directory = directory;
        _name = name;
        Path = path;
        Record = record;
        TookOver = tookOver;
    }

    public string Path { get; }

    public ClaimRecord Record { get; }

    /// <summary>The stale claim this one replaced (Free when the job was unclaimed).</summary>
    public ClaimStatus TookOver { get; }

    /// <summary>Claims the job whose video is <paramref name="outputPath"/>; null when another live process holds it.</summary>
    public static JobClaim? TryAcquire(string outputPath, int worker, string runId, TimeSpan staleAfter, out ClaimStatus observed)
    {
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(outputPath))!;
        var name = System.IO.Path.GetFileNameWithoutExtension(outputPath);
        Directory.CreateDirectory(dir);
        var me = ProcessIdentity.Current;
        var record = new ClaimRecord
        {
            Host = me.Host,
            Pid = me.Pid,
            StartTicks = me.StartTicks,
            Worker = worker,
            RunId = runId,
            ClaimedUtc = DateTimeOffset.UtcNow,
        };
        var bytes = JsonSerializer.SerializeToUtf8Bytes(record, LabLineJsonContext.Default.ClaimRecord);
        for (int tries = 0; tries < 100; tries++)
        {
            var (attempt, status) = Inspect(dir, name, staleAfter);
            observed = status;
            if (status.Live) return null;
            var path = ClaimPath(dir, name, attempt + 1);
            try
            {
                using (var fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read))
                {
                    fs.Write(bytes);
                    fs.Flush(flushToDisk: true);
                }
                return new JobClaim(dir, name, path, record, status);
            }
            catch (IOException) when (File.Exists(path))
            {
                // Someone else created that attempt between our look and our create: look again.
            }
        }
        throw new IOException($"could not claim {outputPath}: its claim files keep changing");
    }

    /// <summary>The job's current claim, without taking it.</summary>
    public static ClaimStatus Status(string outputPath, TimeSpan staleAfter)
    {
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(outputPath))!;
        return Directory.Exists(dir) ? Inspect(dir, System.IO.Path.GetFileNameWithoutExtension(outputPath), staleAfter).Status : ClaimStatus.Free;
    }

    /// <summary>Removes every claim file of a job (once it is complete, none of them means anything).</summary>
    public static void ClearAll(string outputPath)
    {
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(outputPath))!;
        if (!Directory.Exists(dir)) return;
        foreach (var (_, path) in Attempts(dir, System.IO.Path.GetFileNameWithoutExtension(outputPath)))
            TryDelete(path);
    }

    /// <summary>Marks the claim as still held (for processes on other hosts, which cannot see our pid).</summary>
    public void Heartbeat()
    {
        try
        {
            File.SetLastWriteTimeUtc(Path, DateTime.UtcNow);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Gives the job up after it completed: removes all its claim files.</summary>
    public void ReleaseCompleted()
    {
        foreach (var (_, path) in Attempts(_directory, _name))
            TryDelete(path);
        _released = true;
    }

    /// <summary>Gives the job up unfinished (failed or cancelled): removes only our attempt, so others may take it.</summary>
    public void Dispose()
    {
        if (_released) return;
        TryDelete(Path);
        _released = true;
    }

    private static (int Attempt, ClaimStatus Status) Inspect(string dir, string name, TimeSpan staleAfter)
    {
        var attempts = Attempts(dir, name).OrderByDescending(a => a.Attempt).ToList();
        if (attempts.Count == 0) return (-1, ClaimStatus.Free);
        var (attempt, path) = attempts[0];
        ClaimRecord? record = null;
        DateTime modified;
        try
        {
            modified = File.GetLastWriteTimeUtc(path);
            record = JsonSerializer.Deserialize(File.ReadAllBytes(path), LabLineJsonContext.Default.ClaimRecord);
        }
        catch (FileNotFoundException)
        {
            // Released while we looked: the attempt number is free to reuse or exceed.
            return (attempt, ClaimStatus.Free);
        }
        catch (Exception e) when (e is JsonException or IOException)
        {
            modified = File.Exists(path) ? File.GetLastWriteTimeUtc(path) : DateTime.MinValue;
        }
        if (record is null)
            return (attempt, new ClaimStatus(new ClaimRecord { Host = "?", Pid = 0 }, DateTime.UtcNow - modified < s_unreadableGrace));
        bool live = record.Holder.IsThisHost ? record.Holder.IsAliveHere() : DateTime.UtcNow - modified < staleAfter;
        return (attempt, new ClaimStatus(record, live));
    }

    private static IEnumerable<(int Attempt, string Path)> Attempts(string dir, string name)
    {
        var prefix = $".{name}.claim.";
        foreach (var path in Directory.EnumerateFiles(dir, prefix + "*"))
        {
            var suffix = System.IO.Path.GetFileName(path)[prefix.Length..];
            if (int.TryParse(suffix, NumberStyles.None, CultureInfo.InvariantCulture, out var attempt))
                yield return (attempt, path);
        }
    }

    private static string ClaimPath(string dir, string name, int attempt) =>
        System.IO.Path.Combine(dir, $".{name}.claim.{attempt.ToString(CultureInfo.InvariantCulture)}");

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
