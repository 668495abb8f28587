using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>
/// The schedulers CogVideoX ships: DDIM (the 2b default) and DPM-Solver++ (2M, stochastic; the 5b default). Names,
/// diffusers class names and factories are in <see cref="SchedulerRegistry"/>.
/// </summary>
public enum SchedulerKind
{
    Ddim,
    Dpm,
}

/// <summary>
/// A CogVideoX noise scheduler as the pipeline drives it: <see cref="SetTimesteps"/> once per run, then a step once
/// per entry of <see cref="Timesteps"/>, in order. A step runs on tensors on the latents' backend (the pipeline's
/// form) or on host float32 buffers in C order (the reference form; any shape: the update is element-wise); both do
/// the same float32 operations in the same order, so on the CPU they agree to the bit. Coefficients are computed in
/// float64 and applied in float32, as diffusers does, so the results match diffusers' to the last bit or nearly.
/// Dispose releases what a scheduler holds between steps (DPM's previous x̂₀ on the device).
/// </summary>
public interface IScheduler : IDisposable
{
    SchedulerKind Kind { get; }

    /// <summary>The configuration the scheduler was built from.</summary>
    SchedulerConfig Config { get; }

    /// <summary>ᾱ_t for t = 0 … num_train_timesteps − 1 (after the SNR shift and zero-terminal-SNR rescaling).</summary>
    ReadOnlySpan<double> AlphasCumprod { get; }

    /// <summary>The standard deviation of the initial noise (1 for both CogVideoX schedulers).</summary>
    float InitNoiseSigma { get; }

    /// <summary>Steps of the full schedule set by <see cref="SetTimesteps"/> (0 before it; <see cref="SkipSteps"/> keeps it).</summary>
    int NumInferenceSteps { get; }

    /// <summary>The timesteps of the current schedule, from most to least noisy.</summary>
    IReadOnlyList<int> Timesteps { get; }

    /// <summary>Whether a step draws noise (and so needs a generator).</summary>
    bool IsStochastic { get; }

    /// <summary>Builds the schedule for a run of <paramref name="numInferenceSteps"/> steps and forgets any previous run.</summary>
    void SetTimesteps(int numInferenceSteps);

    /// <summary>
    /// Drops the first <paramref name="count"/> timesteps of the schedule (diffusers' image- and video-to-video
    /// <c>timesteps[t_start:]</c>): the run starts at a less noisy timestep, the step sizes stay those of the full
    /// schedule, and the step indices then count from its new first step.
    /// </summary>
    void SkipSteps(int count);

    /// <summary>
    /// Step <paramref name="stepIndex"/> (timestep <c>Timesteps[stepIndex]</c>): from the model's (guided) output and
    /// the current latents, writes the latents of the next step into <paramref name="prevSample"/>, which may be the
    /// same memory as <paramref name="sample"/>. Stochastic schedulers draw their noise from
    /// <paramref name="generator"/> — the generator that drew the initial latents, as diffusers passes it.
    /// </summary>
    void Step(int stepIndex, ReadOnlySpan<float> modelOutput, ReadOnlySpan<float> sample, Span<float> prevSample, TorchGenerator? generator = null);

    /// <summary>
    /// The same step on tensors of one shape on one backend (any dtype; computed in float32): returns the next latents
    /// as a new float32 tensor on the sample's backend (caller disposes). Nothing but a stochastic scheduler's noise —
    /// drawn on the host from <paramref name="generator"/>, so the stream stays torch's — crosses between host and device.
    /// </summary>
    Tensor Step(int stepIndex, Tensor modelOutput, Tensor sample, TorchGenerator? generator = null);

    /// <summary>The denoised estimate x̂₀ from the last span step (empty before it and after a tensor step), e.g. for previews.</summary>
    ReadOnlySpan<float> PredictedOriginalSample { get; }
}
