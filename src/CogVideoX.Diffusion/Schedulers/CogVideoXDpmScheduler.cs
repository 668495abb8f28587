using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>
/// diffusers' <c>CogVideoXDPMScheduler</c>: stochastic DPM-Solver++ (2M SDE form) in log-SNR λ = log √(ᾱ/(1 − ᾱ)).
/// Step 0 is first order; later steps are second order, combining this step's x̂₀ with the previous step's; the last
/// step (past t = 0) is first order again. Every step adds fresh Gaussian noise drawn from the run's generator.
/// </summary>
/// <remarks>
/// State: the previous step's x̂₀ and its step index are held in this instance (diffusers' pipeline carries them as
/// <c>old_pred_original_sample</c> and <c>timesteps[i − 1]</c>). <see cref="SetTimesteps"/> or a call with step index 0
/// clears them; any other step must follow the one before it, or <see cref="Step"/> throws.
/// Noise: like diffusers, a second-order step draws two noise tensors and uses only the second — the first belongs to
/// the first-order update computed and discarded before it — so the generator's stream advances the same way.
/// </remarks>
public sealed class CogVideoXDpmScheduler : CogVideoXScheduler
{
    private float[] _previousOriginal = [];
    private int _previousStep = -1;
    private int _previousLength;
    private float[] _noise = [];

    public CogVideoXDpmScheduler(SchedulerConfig config) : base(config)
    {
    }

    public override SchedulerKind Kind => SchedulerKind.Dpm;

    public override bool IsStochastic => true;

    /// <summary>The step index whose x̂₀ is held for the next second-order step (−1 when none).</summary>
    public int PreviousStepIndex => _previousStep;

    public override void SetTimesteps(int numInferenceSteps)
    {
        base.SetTimesteps(numInferenceSteps);
        _previousStep = -1;
    }

    public override void Step(int stepIndex, ReadOnlySpan<float> modelOutput, ReadOnlySpan<float> sample, Span<float> prevSample, TorchGenerator? generator = null)
    {
        int t = CheckStep(stepIndex, modelOutput, sample, prevSample);
        if (generator is null)
            throw new ArgumentNullException(nameof(generator), "the DPM scheduler draws noise every step: pass the generator that drew the initial latents");
        if (stepIndex > 0 && _previousStep != stepIndex - 1)
            throw new InvalidOperationException($"DPM step {stepIndex} needs the x̂₀ of step {stepIndex - 1}, but the last step run was {_previousStep}; run the steps in order from 0");
        int n = sample.Length;
        if (stepIndex > 0 && _previousLength != n)
            throw new ArgumentException($"DPM step {stepIndex} has {n} elements but step {stepIndex - 1} had {_previousLength}");

        double alphaProdT = AlphasCumprod[t];
        double alphaProdPrev = PreviousAlphaCumprod(t);
        double lambda = HalfLogSnr(alphaProdT);
        double h = HalfLogSnr(alphaProdPrev) - lambda;
        float mSample = (float)(Math.Sqrt((1.0 - alphaProdPrev) / (1.0 - alphaProdT)) * Math.Exp(-h));
        float mOriginal = (float)(Expm1(-2.0 * h) * Math.Sqrt(alphaProdPrev));
        float mNoise = (float)(Math.Sqrt(1.0 - alphaProdPrev) * Math.Sqrt(1.0 - Math.Exp(-2.0 * h)));

        var x0 = PredictedOriginalBuffer(n);
        PredictOriginal(alphaProdT, modelOutput, sample, x0);

        if (_noise.Length < n) _noise = new float[n];
        var noise = _noise.AsSpan(0, n);
        generator.Normal(noise);

        bool secondOrder = stepIndex > 0 && PreviousTimestep(t) >= 0;
        if (!secondOrder)
        {
            for (int i = 0; i < n; i++) prevSample[i] = (mSample * sample[i] - mOriginal * x0[i]) + mNoise * noise[i];
        }
        else
        {
            // r = h_last / h, the ratio of the previous log-SNR step to this one, weighs x̂₀ against the previous x̂₀.
            double lambdaBack = HalfLogSnr(AlphasCumprod[Timesteps[stepIndex - 1]]);
            double r = (lambda - lambdaBack) / h;
            float mCurrent = (float)(1.0 + 1.0 / (2.0 * r));
            float mPrevious = (float)(1.0 / (2.0 * r));
            // The first draw above went to the discarded first-order update; the second-order one uses a fresh draw.
            generator.Normal(noise);
            var old = _previousOriginal.AsSpan(0, n);
            for (int i = 0; i < n; i++)
            {
                float denoised = mCurrent * x0[i] - mPrevious * old[i];
                prevSample[i] = (mSample * sample[i] - mOriginal * denoised) + mNoise * noise[i];
            }
        }

        if (_previousOriginal.Length < n) _previousOriginal = new float[n];
        x0.CopyTo(_previousOriginal);
        _previousLength = n;
        _previousStep = stepIndex;
    }

    /// <summary>λ = log √(ᾱ / (1 − ᾱ)), in diffusers' order of operations (−∞ at ᾱ = 0, +∞ at ᾱ = 1).</summary>
    private static double HalfLogSnr(double alphaCumprod) => Math.Log(Math.Sqrt(alphaCumprod / (1.0 - alphaCumprod)));

    /// <summary>eˣ − 1 without the cancellation of <c>Math.Exp(x) − 1</c> near 0 (.NET has no expm1).</summary>
    internal static double Expm1(double x)
    {
        if (double.IsNaN(x)) return x;
        if (x == double.NegativeInfinity) return -1.0;
        if (Math.Abs(x) >= 1.0) return Math.Exp(x) - 1.0;
        // Kahan's trick: (u − 1)·x / log u cancels the rounding error of u = eˣ; a few ulp at most.
        double u = Math.Exp(x);
        if (u == 1.0) return x;
        double um1 = u - 1.0;
        if (um1 == -1.0) return -1.0;
        return um1 * x / Math.Log(u);
    }
}
