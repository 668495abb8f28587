using System.Diagnostics;
using System.Globalization;
using CogVideoX.Lab.Runs;

namespace CogVideoX.Cli.Commands;

/// <summary>
/// Shows a run's progress: a line per job with "i/N", elapsed time and an estimate of what is left; on a terminal
/// the current step is redrawn in place, when redirected only whole lines are written. Also tallies what happened
/// to each job (across worker processes) for the summary.
/// </summary>
internal sealed class RunConsole(TextWriter output, bool interactive, bool quiet, int workers)
{
    private readonly object _lock = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Dictionary<int, JobOutcome> _outcomes = new();
    private readonly Dictionary<int, double> _units = new();
    private readonly Dictionary<int, string> _running = new();
    private readonly Dictionary<int, double> _fractionDone = new();
    private int _total = -1, _completeAtStart;
    private double _totalUnits, _doneUnits, _renderedUnits, _renderedSeconds;
    private bool _statusShown;

    public IReadOnlyDictionary<int, JobOutcome> Outcomes => _outcomes;

    public TimeSpan Elapsed => _clock.Elapsed;

    public void Handle(RunEvent e)
    {
        lock (_lock)
        {
            switch (e.Kind)
            {
                case "plan":
                    if (_total < 0)
                    {
                        (_total, _completeAtStart, _totalUnits) = (e.Total, e.Complete, e.Units);
                        Line($"{_total} video(s) in this run, {_completeAtStart} already complete, {_total - _completeAtStart} to render{(workers > 1 ? $" on {workers} workers" : "")}");
                    }
                    break;
                case "complete":
                    if (Record(e, new JobOutcome { Index = e.Index, Job = e.Job!, Status = "complete", Worker = e.Worker, Device = e.Device }))
                    {
                        _doneUnits += e.Units;
                        Line($"[{Finished}/{_total}] {e.Job}: already complete");
                    }
                    break;
                case "start":
                    _units[e.Index] = e.Units;
                    _running[e.Index] = e.Job!;
                    Line($"[{Finished + _running.Count}/{_total}] {e.Job}: rendering on {e.Device}{WorkerLabel(e)}");
                    break;
                case "step":
                    if (e.Stage == "denoise" && e.Steps > 0) _fractionDone[e.Index] = (double)e.Step / e.Steps;
                    if (interactive && !quiet)
                    {
                        var status = $"  {e.Job} {e.Stage} {e.Step}/{e.Steps}  {Clock(TimeSpan.FromSeconds(e.Seconds))}  · elapsed {Clock(_clock.Elapsed)}{Eta()}";
                        output.Write("\r\u001b[2K" + status);
                        _statusShown = true;
                    }
                    break;
                case "done":
                    _running.Remove(e.Index);
                    if (Record(e, new JobOutcome { Index = e.Index, Job = e.Job!, Status = "rendered", Seconds = e.Seconds, Worker = e.Worker, Device = e.Device }))
                    {
                        _doneUnits += e.Units;
                        _renderedUnits += e.Units;
                        _renderedSeconds += e.Seconds;
                        var memory = e.PeakMemoryBytes > 0 ? $" · peak {e.PeakMemoryBytes / (1024.0 * 1024 * 1024):0.0} GiB" : "";
                        Line($"[{Finished}/{_total}] {e.Job}: done in {e.Seconds:0.0} s{memory} · elapsed {Clock(_clock.Elapsed)}{Eta()}");
                    }
                    break;
                case "linked":
                    _running.Remove(e.Index);
                    if (Record(e, new JobOutcome { Index = e.Index, Job = e.Job!, Status = "linked", Worker = e.Worker, Device = e.Device }))
                    {
                        _doneUnits += e.Units;
                        Line($"[{Finished}/{_total}] {e.Job}: {e.Message}");
                    }
                    break;
                case "failed":
                    _running.Remove(e.Index);
                    if (Record(e, new JobOutcome { Index = e.Index, Job = e.Job!, Status = "failed", Seconds = e.Seconds, Worker = e.Worker, Device = e.Device, Error = e.Message }))
                    {
                        _doneUnits += _units.GetValueOrDefault(e.Index);
                        Line($"[{Finished}/{_total}] {e.Job}: FAILED — {e.Message}", always: true);
                    }
                    break;
                case "note":
                    Line(e.Job is null ? e.Message ?? "" : $"{e.Job}: {e.Message}");
                    break;
            }
        }
    }

    public void Log(int worker, string line)
    {
        lock (_lock) Line($"[worker {worker}] {line}", always: true);
    }

    public void EndStatus()
    {
        lock (_lock)
        {
            if (_statusShown) output.Write("\r\u001b[2K");
            _statusShown = false;
        }
    }

    private int Finished => _outcomes.Count;

    /// <summary>Keeps the most telling outcome per job: a render beats "already complete" seen by another worker.</summary>
    private bool Record(RunEvent e, JobOutcome outcome)
    {
        if (_outcomes.TryGetValue(e.Index, out var existing) && (existing.Status != "complete" || outcome.Status == "complete")) return false;
        bool firstTime = existing is null;
        _outcomes[e.Index] = outcome;
        return firstTime || outcome.Status != "complete";
    }

    private string WorkerLabel(RunEvent e) => workers > 1 ? $" (worker {e.Worker})" : "";

    /// <summary>Remaining work (steps × latent frames, less the steps done of jobs under way) at the rate measured so far, shared by the workers.</summary>
    private string Eta()
    {
        if (_renderedUnits <= 0 || _total < 0) return "";
        double left = _totalUnits - _doneUnits - _running.Keys.Sum(i => _units.GetValueOrDefault(i) * _fractionDone.GetValueOrDefault(i));
        double seconds = left * (_renderedSeconds / _renderedUnits) / Math.Max(1, workers);
        return left <= 0 ? "" : $" · about {Clock(TimeSpan.FromSeconds(seconds))} left";
    }

    private void Line(string text, bool always = false)
    {
        if (quiet && !always) return;
        if (_statusShown)
        {
            output.Write("\r\u001b[2K");
            _statusShown = false;
        }
        output.WriteLine(text);
    }

    public static string Clock(TimeSpan t) =>
        t.TotalHours >= 1
            ? string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}")
            : string.Create(CultureInfo.InvariantCulture, $"{t.Minutes}:{t.Seconds:00}");
}
