using System.Diagnostics;
using System.Globalization;

namespace CogVideoX.Lab.Runs;

/// <summary>
/// Who holds a claim: host, process id and the process's start time (so a recycled pid is not mistaken for the
/// original holder), and whether such a process is still alive on this host.
/// </summary>
public sealed record ProcessIdentity(string Host, int Pid, long StartTicks)
{
    private static readonly Lazy<ProcessIdentity> s_current = new(() =>
        new ProcessIdentity(Environment.MachineName, Environment.ProcessId, StartTicksOf(Environment.ProcessId) ?? 0));

    public static ProcessIdentity Current => s_current.Value;

    public bool IsThisHost => string.Equals(Host, Environment.MachineName, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// True when the process runs on this host and is alive with the recorded start time. Meaningless for other
    /// hosts (claims from those go stale by their heartbeat instead).
    /// </summary>
    public bool IsAliveHere()
    {
        if (!IsThisHost) return false;
        var start = StartTicksOf(Pid);
        return start is not null && (StartTicks == 0 || start == StartTicks);
    }

    /// <summary>
    /// A process's start time in a stable unit, or null when it is not running (zombies count as dead). Linux reads
    /// /proc/PID/stat (clock ticks since boot); elsewhere the runtime's start time.
    /// </summary>
    public static long? StartTicksOf(int pid)
    {
        if (OperatingSystem.IsLinux())
        {
            string stat;
            try
            {
                stat = File.ReadAllText($"/proc/{pid}/stat");
            }
            catch (IOException)
            {
                return null;
            }
            catch (UnauthorizedAccessException)
            {
                return null;
            }
            // "pid (comm) S ppid …": comm may hold spaces and parentheses, so parse after the last ')'.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            if (fields.Length < 20 || fields[0] is "Z" or "X") return null;
            return long.Parse(fields[19], CultureInfo.InvariantCulture);
        }
        try
        {
            using var p = Process.GetProcessById(pid);
            return p.HasExited ? null : p.StartTime.ToUniversalTime().Ticks;
        }
        catch (ArgumentException)
        {
            return null;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    public override string ToString() => $"pid {Pid} on {Host}";
}
