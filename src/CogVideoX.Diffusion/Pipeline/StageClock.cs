using System.Diagnostics;
using CogVideoX.Engine;

namespace CogVideoX.Diffusion;

/// <summary>
/// One run's clock: reports each stage's start and end (and the denoising steps) to the progress listener and adds
/// the stage times to <see cref="Timings"/>. A stage ends after the backend has finished its queued work, so the
/// times are the device's, not the time it took to queue the work.
/// </summary>
public sealed class StageClock
{
    private readonly IBackend _backend;
    private readonly IProgress<PipelineProgress>? _progress;
    private readonly Stopwatch _run = Stopwatch.StartNew();

    public StageClock(IBackend backend, IProgress<PipelineProgress>? progress)
    {
        ArgumentNullException.ThrowIfNull(backend);
        _backend = backend;
        _progress = progress;
    }

    /// <summary>Time since the run started.</summary>
    public TimeSpan Elapsed => _run.Elapsed;

    /// <summary>The stage times so far.</summary>
    public PipelineTimings Timings { get; set; } = new();

    /// <summary>Reports a stage's start; the watch it returns times the stage.</summary>
    public Stopwatch Begin(string stage, int totalSteps = 1)
    {
        _progress?.Report(new PipelineProgress(stage, 0, totalSteps, TimeSpan.Zero, _run.Elapsed, TimeSpan.Zero, -1));
        return Stopwatch.StartNew();
    }

    /// <summary>Waits for the backend, reports the stage's end and returns its duration.</summary>
    public TimeSpan End(string stage, Stopwatch watch)
    {
        _backend.Synchronize();
        var elapsed = watch.Elapsed;
        _progress?.Report(new PipelineProgress(stage, 1, 1, elapsed, _run.Elapsed, elapsed, -1));
        return elapsed;
    }

    /// <summary>Reports progress inside another stage (the VAE's batches of latent frames), so it gets a bar and an estimate too.</summary>
    public void Part(string stage, Stopwatch watch, int done, int total) =>
        _progress?.Report(new PipelineProgress(stage, done, total, watch.Elapsed, _run.Elapsed, TimeSpan.Zero, -1));

    /// <summary>Reports a denoising step done (<paramref name="done"/> of <paramref name="total"/>, at timestep <paramref name="timestep"/>).</summary>
    public void Step(Stopwatch stage, int done, int total, TimeSpan step, int timestep, bool reused = false) =>
        _progress?.Report(new PipelineProgress(PipelineStages.Denoise, done, total, stage.Elapsed, _run.Elapsed, step, timestep) { StepReused = reused });
}
