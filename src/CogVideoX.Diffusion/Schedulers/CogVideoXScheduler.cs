using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>
/// What CogVideoXDDIMScheduler and CogVideoXDPMScheduler share in diffusers: the noise schedule (scaled-linear betas in
/// float64, the SD3-style SNR shift, zero-terminal-SNR rescaling), the timestep spacings, the x̂₀ prediction and the
/// "previous" timestep rule. The subclasses differ only in their update.
/// </summary>
public abstract class CogVideoXScheduler : IScheduler
{
    private readonly double[] _alphasCumprod;
    private readonly double _finalAlphaCumprod;
    private int[] _timesteps = [];
    private int _numInferenceSteps;
    private float[] _predictedOriginal = [];
    private int _predictedLength;

    protected CogVideoXScheduler(SchedulerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        Validate(config);
        Config = config;
        _alphasCumprod = ComputeAlphasCumprod(config);
        // set_alpha_to_one: the step past t = 0 lands on ᾱ = 1 (a clean sample) rather than on ᾱ_0.
        _finalAlphaCumprod = config.SetAlphaToOne ? 1.0 : _alphasCumprod[0];
    }

    public abstract SchedulerKind Kind { get; }

    public SchedulerConfig Config { get; }

    public ReadOnlySpan<double> AlphasCumprod => _alphasCumprod;

    public float InitNoiseSigma => 1f;

    public int NumInferenceSteps => _numInferenceSteps;

    public IReadOnlyList<int> Timesteps => _timesteps;

    public abstract bool IsStochastic { get; }

    public ReadOnlySpan<float> PredictedOriginalSample => _predictedOriginal.AsSpan(0, _predictedLength);

    public virtual void SetTimesteps(int numInferenceSteps)
    {
        _timesteps = ComputeTimesteps(Config, numInferenceSteps);
        _numInferenceSteps = _timesteps.Length;
        _predictedLength = 0;
    }

    public virtual void SkipSteps(int count)
    {
        if (_timesteps.Length == 0)
            throw new InvalidOperationException("SetTimesteps must be called before SkipSteps");
        if (count < 0 || count >= _timesteps.Length)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"the schedule has {_timesteps.Length} steps; at least one must remain");
        _timesteps = _timesteps[count..];
        _predictedLength = 0;
    }

    public abstract void Step(int stepIndex, ReadOnlySpan<float> modelOutput, ReadOnlySpan<float> sample, Span<float> prevSample, TorchGenerator? generator = null);

    public abstract Tensor Step(int stepIndex, Tensor modelOutput, Tensor sample, TorchGenerator? generator = null);

    /// <summary>Checks a step's arguments and returns its timestep.</summary>
    protected int CheckStep(int stepIndex, ReadOnlySpan<float> modelOutput, ReadOnlySpan<float> sample, Span<float> prevSample)
    {
        int t = CheckStepIndex(stepIndex);
        if (modelOutput.Length != sample.Length || prevSample.Length != sample.Length)
            throw new ArgumentException($"model output ({modelOutput.Length}), sample ({sample.Length}) and prevSample ({prevSample.Length}) must have the same element count");
        return t;
    }

    /// <summary>Checks a tensor step's arguments and returns its timestep; the host x̂₀ of an earlier span step is forgotten.</summary>
    protected int CheckStep(int stepIndex, Tensor modelOutput, Tensor sample)
    {
        ArgumentNullException.ThrowIfNull(modelOutput);
        ArgumentNullException.ThrowIfNull(sample);
        int t = CheckStepIndex(stepIndex);
        if (!modelOutput.Shape.SequenceEqual(sample.Shape))
            throw new ArgumentException($"model output {modelOutput.ShapeString} and sample {sample.ShapeString} must have the same shape");
        if (!ReferenceEquals(modelOutput.Backend, sample.Backend))
            throw new ArgumentException($"model output ({modelOutput.Device}) and sample ({sample.Device}) must be on the same backend");
        _predictedLength = 0;
        return t;
    }

    private int CheckStepIndex(int stepIndex)
    {
        if (_timesteps.Length == 0)
            throw new InvalidOperationException("SetTimesteps must be called before Step");
        if ((uint)stepIndex >= (uint)_timesteps.Length)
            throw new ArgumentOutOfRangeException(nameof(stepIndex), stepIndex, $"the schedule has {_timesteps.Length} steps");
        return _timesteps[stepIndex];
    }

    /// <summary>ᾱ of the timestep diffusers steps to from <paramref name="timestep"/>: t − N/steps, or the final ᾱ past 0.</summary>
    /// <remarks>
    /// diffusers takes the previous timestep as <c>t − num_train_timesteps // steps</c>, not the next entry of the
    /// schedule; they differ when the steps do not divide 1000 (e.g. 7 trailing steps), and parity keeps the former.
    /// </remarks>
    protected double PreviousAlphaCumprod(int timestep)
    {
        int prev = PreviousTimestep(timestep);
        return prev >= 0 ? _alphasCumprod[prev] : _finalAlphaCumprod;
    }

    protected int PreviousTimestep(int timestep) => timestep - Config.NumTrainTimesteps / NumInferenceSteps;

    /// <summary>Buffer for this step's x̂₀ (kept for <see cref="PredictedOriginalSample"/>).</summary>
    protected Span<float> PredictedOriginalBuffer(int length)
    {
        if (_predictedOriginal.Length < length) _predictedOriginal = new float[length];
        _predictedLength = length;
        return _predictedOriginal.AsSpan(0, length);
    }

    /// <summary>
    /// x̂₀ from the model output at ᾱ_t, in float32 with the float64 coefficients rounded to float32 first, as torch
    /// does when a float32 tensor meets a 0-d float64 tensor.
    /// </summary>
    protected void PredictOriginal(double alphaProdT, ReadOnlySpan<float> modelOutput, ReadOnlySpan<float> sample, Span<float> x0)
    {
        float sqrtAlpha = (float)Math.Sqrt(alphaProdT);
        float sqrtBeta = (float)Math.Sqrt(1.0 - alphaProdT);
        switch (Config.PredictionType)
        {
            case "v_prediction":
                for (int i = 0; i < x0.Length; i++) x0[i] = sqrtAlpha * sample[i] - sqrtBeta * modelOutput[i];
                break;
            case "epsilon":
                for (int i = 0; i < x0.Length; i++) x0[i] = (sample[i] - sqrtBeta * modelOutput[i]) / sqrtAlpha;
                break;
            default: // "sample", the only other value Validate lets through
                modelOutput.CopyTo(x0);
                break;
        }
    }

    /// <summary>
    /// The same x̂₀ on float32 tensors on their backend: the same operations in the same order, each rounded once, so
    /// on the CPU backend it is bit-identical to the span form. Tensors it makes belong to the caller's scope.
    /// </summary>
    protected Tensor PredictOriginal(double alphaProdT, Tensor modelOutput, Tensor sample)
    {
        float sqrtAlpha = (float)Math.Sqrt(alphaProdT);
        float sqrtBeta = (float)Math.Sqrt(1.0 - alphaProdT);
        return Config.PredictionType switch
        {
            "v_prediction" => sample.Scale(sqrtAlpha).Sub(modelOutput.Scale(sqrtBeta)),
            // A division, not a product with the reciprocal, as the span form (and torch) divides.
            "epsilon" => sample.Sub(modelOutput.Scale(sqrtBeta)).Div(Tensor.Full(sample.Backend, DType.F32, sqrtAlpha, Ones(sample.Rank))),
            _ => modelOutput.Alias(),
        };
    }

    private static int[] Ones(int rank)
    {
        var shape = new int[rank];
        Array.Fill(shape, 1);
        return shape;
    }

    /// <summary>Releases the tensors the scheduler holds between steps.</summary>
    public void Dispose()
    {
        ReleaseState();
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the tensors a subclass holds between steps (none here).</summary>
    protected virtual void ReleaseState()
    {
    }

    /// <summary>ᾱ_t as diffusers computes it, in float64.</summary>
    public static double[] ComputeAlphasCumprod(SchedulerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        Validate(config);
        int n = config.NumTrainTimesteps;
        // scaled_linear: betas = linspace(√β_start, √β_end, N, float64)². torch's CPU linspace computes the first half
        // from the start and the second from the end, with the product fused (GCC contracts it under -mfma).
        double start = Math.Pow(config.BetaStart, 0.5), end = Math.Pow(config.BetaEnd, 0.5);
        double step = n > 1 ? (end - start) / (n - 1) : 0.0;
        int halfway = n / 2;
        var alphas = new double[n];
        double cumulative = 1.0;
        double shift = config.SnrShiftScale;
        for (int i = 0; i < n; i++)
        {
            double root = i < halfway ? Math.FusedMultiplyAdd(step, i, start) : Math.FusedMultiplyAdd(-step, n - i - 1, end);
            double beta = root * root;
            cumulative *= 1.0 - beta;
            // SNR shift (as SD3): ᾱ / (s + (1 − s) ᾱ).
            alphas[i] = cumulative / (((1.0 - shift) * cumulative) + shift);
        }
        if (config.RescaleBetasZeroSnr) RescaleZeroTerminalSnr(alphas);
        return alphas;
    }

    /// <summary>Rescales √ᾱ linearly so the last timestep has zero SNR and the first keeps its value (arXiv 2305.08891, alg. 1).</summary>
    private static void RescaleZeroTerminalSnr(double[] alphasCumprod)
    {
        int last = alphasCumprod.Length - 1;
        double first = Math.Sqrt(alphasCumprod[0]);
        double final = Math.Sqrt(alphasCumprod[last]);
        double scale = first / (first - final);
        for (int i = 0; i <= last; i++)
        {
            double root = (Math.Sqrt(alphasCumprod[i]) - final) * scale;
            alphasCumprod[i] = root * root;
        }
    }

    /// <summary>The timesteps of an <paramref name="steps"/>-step run, as diffusers' <c>set_timesteps</c> computes them.</summary>
    public static int[] ComputeTimesteps(SchedulerConfig config, int steps)
    {
        ArgumentNullException.ThrowIfNull(config);
        Validate(config);
        int n = config.NumTrainTimesteps;
        if (steps < 1 || steps > n)
            throw new CogVideoXException($"The number of inference steps must be between 1 and {n} (the scheduler's num_train_timesteps); got {steps}.");
        var t = new int[steps];
        switch (config.TimestepSpacing)
        {
            case "linspace":
                {
                    // numpy: linspace(0, N − 1, steps) = i·((N − 1)/(steps − 1)) with the last set to N − 1; rounded
                    // half to even, then reversed.
                    double stop = n - 1;
                    double div = steps - 1;
                    double delta = stop;
                    double step = div > 0 ? delta / div : double.NaN;
                    for (int i = 0; i < steps; i++)
                    {
                        double v = div <= 0 ? i * delta : step == 0 ? i / div * delta : i * step;
                        if (i == steps - 1 && steps > 1) v = stop;
                        t[steps - 1 - i] = (int)Math.Round(v, MidpointRounding.ToEven);
                    }
                    break;
                }
            case "leading":
                {
                    int ratio = n / steps;
                    for (int i = 0; i < steps; i++) t[steps - 1 - i] = i * ratio + config.StepsOffset;
                    break;
                }
            default: // "trailing"
                {
                    // numpy: arange(N, 0, −N/steps): element 1 is N + (−ratio), the rest N + i·(element 1 − N); rounded
                    // half to even, minus one. For some step counts (61, 103, 121, …) numpy's length, ceil(−N / −ratio),
                    // rounds up to steps + 1 and diffusers runs an extra step at timestep −1 (ᾱ of index −1 wraps to the
                    // last one): that artefact is left out here, the first `steps` timesteps are diffusers' own.
                    double ratio = (double)n / steps;
                    double second = n + -ratio;
                    double delta = second - n;
                    for (int i = 0; i < steps; i++)
                    {
                        double v = i == 0 ? n : i == 1 ? second : n + i * delta;
                        t[i] = (int)Math.Round(v, MidpointRounding.ToEven) - 1;
                    }
                    break;
                }
        }
        if (t[0] >= n)
            throw new CogVideoXException(
                $"With steps_offset {config.StepsOffset} and {steps} steps the first timestep is {t[0]}, past the last " +
                $"trained timestep {n - 1}. Use fewer steps or a smaller steps_offset in scheduler_config.json.");
        return t;
    }

    private static readonly string[] s_predictionTypes = ["epsilon", "sample", "v_prediction"];
    private static readonly string[] s_spacings = ["linspace", "leading", "trailing"];

    private static void Validate(SchedulerConfig c)
    {
        if (c.TrainedBetas is not null)
            throw new CogVideoXException("scheduler config: trained_betas is not supported; CogVideoX's schedulers use beta_schedule \"scaled_linear\" with beta_start and beta_end. Remove trained_betas from scheduler_config.json.");
        if (c.BetaSchedule != "scaled_linear")
            throw new CogVideoXException($"scheduler config: beta_schedule \"{c.BetaSchedule}\" is not supported; the CogVideoX schedulers here implement \"scaled_linear\", which every published CogVideoX scheduler_config.json names.");
        if (Array.IndexOf(s_predictionTypes, c.PredictionType) < 0)
            throw new CogVideoXException($"scheduler config: prediction_type \"{c.PredictionType}\" is not one of {string.Join(", ", s_predictionTypes)} (CogVideoX uses v_prediction).");
        if (Array.IndexOf(s_spacings, c.TimestepSpacing) < 0)
            throw new CogVideoXException($"scheduler config: timestep_spacing \"{c.TimestepSpacing}\" is not one of {string.Join(", ", s_spacings)}.");
        if (c.NumTrainTimesteps < 2)
            throw new CogVideoXException($"scheduler config: num_train_timesteps must be at least 2; got {c.NumTrainTimesteps}.");
        if (!(c.BetaStart >= 0 && c.BetaStart < 1) || !(c.BetaEnd >= 0 && c.BetaEnd < 1))
            throw new CogVideoXException($"scheduler config: beta_start ({c.BetaStart}) and beta_end ({c.BetaEnd}) must lie in [0, 1).");
        if (!(c.SnrShiftScale > 0) || double.IsInfinity(c.SnrShiftScale))
            throw new CogVideoXException($"scheduler config: snr_shift_scale must be a positive number; got {c.SnrShiftScale}.");
        if (c.StepsOffset < 0)
            throw new CogVideoXException($"scheduler config: steps_offset must not be negative; got {c.StepsOffset}.");
    }
}
