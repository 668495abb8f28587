using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>
/// diffusers' <c>CogVideoXDPMScheduler</c>: stochastic DPM-Solver++ (2M SDE form) in log-SNR λ = log √(ᾱ/(1 − ᾱ)).
/// Step 0 is first order; later steps are second order, combining this step's x̂₀ with the previous step's; the last
/// step (past t = 0) is first order again. Every step adds fresh Gaussian noise drawn from the run's generator.
/// </summary>
/// <remarks>
/// State: the previous step's x̂₀ and its step index are held in this instance (diffusers' pipeline carries them as
/// <c>old_pred_original_sample</c> and <c>timesteps[i − 1]</c>) — a host buffer after a span step, a tensor on the
/// latents' backend after a tensor step (released by <see cref="CogVideoXScheduler.Dispose"/>).
/// <see cref="SetTimesteps"/> or a call with step index 0 clears them; any other step must follow the one before it,
/// or <c>Step</c> throws.
/// Noise: like diffusers, a second-order step draws two noise tensors and uses only the second — the first belongs to
/// the first-order update computed and discarded before it — so the generator's stream advances the same way. The
/// noise always comes from the CPU generator (the torch-compatible stream); a tensor step uploads it.
/// </remarks>
public sealed class CogVideoXDpmScheduler : CogVideoXScheduler
{
    private float[] _previousOriginal = [];
    private Tensor? _previousOriginalTensor;
    private int _previousStep = -1;
    private long _previousLength;
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
        ReleaseState();
    }

    /// <summary>The cut schedule starts first order, as diffusers' loop passes no previous x̂₀ at its first step.</summary>
    public override void SkipSteps(int count)
    {
        base.SkipSteps(count);
        _previousStep = -1;
        ReleaseState();
    }

    public override void Step(int stepIndex, ReadOnlySpan<float> modelOutput, ReadOnlySpan<float> sample, Span<float> prevSample, TorchGenerator? generator = null)
    {
        int t = CheckStep(stepIndex, modelOutput, sample, prevSample);
        int n = sample.Length;
        var m = Coefficients(stepIndex, t, n, generator);

        var x0 = PredictedOriginalBuffer(n);
        PredictOriginal(m.AlphaProdT, modelOutput, sample, x0);
        var noise = DrawNoise(generator!, n, m.SecondOrder);

        if (!m.SecondOrder)
        {
            for (int i = 0; i < n; i++) prevSample[i] = (m.Sample * sample[i] - m.Original * x0[i]) + m.Noise * noise[i];
        }
        else
        {
            var old = PreviousOriginalOnHost(n);
            for (int i = 0; i < n; i++)
            {
                float denoised = m.Current * x0[i] - m.Previous * old[i];
                prevSample[i] = (m.Sample * sample[i] - m.Original * denoised) + m.Noise * noise[i];
            }
        }

        if (_previousOriginal.Length < n) _previousOriginal = new float[n];
        x0.CopyTo(_previousOriginal);
        _previousOriginalTensor?.Dispose();
        _previousOriginalTensor = null;
        Remember(stepIndex, n);
    }

    /// <summary>
    /// The same step on the sample's backend: the latents, the model output and the held x̂₀ stay there, only the
    /// noise (drawn on the host from <paramref name="generator"/>) is uploaded. The same float32 operations in the same
    /// order, so on the CPU backend it is bit-identical to the span form. Returns the next latents in float32.
    /// </summary>
    public override Tensor Step(int stepIndex, Tensor modelOutput, Tensor sample, TorchGenerator? generator = null)
    {
        int t = CheckStep(stepIndex, modelOutput, sample);
        long count = sample.ElementCount;
        if (count > Array.MaxLength)
            throw new ArgumentException($"a DPM step draws its noise in one host buffer; {sample.ShapeString} has too many elements");
        int n = (int)count;
        var m = Coefficients(stepIndex, t, n, generator);

        using var scope = new TensorScope();
        var x = sample.To(DType.F32);
        var x0 = PredictOriginal(m.AlphaProdT, modelOutput.To(DType.F32), x);
        var noise = Tensor.FromArray(DrawNoise(generator!, n, m.SecondOrder), sample.ShapeArray(), sample.Backend);
        var denoised = m.SecondOrder ? x0.Scale(m.Current).Sub(PreviousOriginalOn(sample).Scale(m.Previous)) : x0;
        var next = scope.Keep(x.Scale(m.Sample).Sub(denoised.Scale(m.Original)).Add(noise.Scale(m.Noise)));

        _previousOriginalTensor?.Dispose();
        _previousOriginalTensor = TensorScope.Detach(x0);
        Remember(stepIndex, n);
        return next;
    }

    /// <summary>A step's float32 multipliers, computed in float64 in diffusers' order.</summary>
    private readonly record struct StepCoefficients(double AlphaProdT, bool SecondOrder, float Sample, float Original, float Noise, float Current, float Previous);

    /// <summary>Checks the step follows the held state and computes its multipliers (the same for both step forms).</summary>
    private StepCoefficients Coefficients(int stepIndex, int t, long n, TorchGenerator? generator)
    {
        if (generator is null)
            throw new ArgumentNullException(nameof(generator), "the DPM scheduler draws noise every step: pass the generator that drew the initial latents");
        if (stepIndex > 0 && _previousStep != stepIndex - 1)
            throw new InvalidOperationException($"DPM step {stepIndex} needs the x̂₀ of step {stepIndex - 1}, but the last step run was {_previousStep}; run the steps in order from 0");
        if (stepIndex > 0 && _previousLength != n)
            throw new ArgumentException($"DPM step {stepIndex} has {n} elements but step {stepIndex - 1} had {_previousLength}");

        double alphaProdT = AlphasCumprod[t];
        double alphaProdPrev = PreviousAlphaCumprod(t);
        double lambda = HalfLogSnr(alphaProdT);
        double h = HalfLogSnr(alphaProdPrev) - lambda;
        float mSample = (float)(Math.Sqrt((1.0 - alphaProdPrev) / (1.0 - alphaProdT)) * Math.Exp(-h));
        float mOriginal = (float)(Expm1(-2.0 * h) * Math.Sqrt(alphaProdPrev));
        float mNoise = (float)(Math.Sqrt(1.0 - alphaProdPrev) * Math.Sqrt(1.0 - Math.Exp(-2.0 * h)));
        bool secondOrder = stepIndex > 0 && PreviousTimestep(t) >= 0;
        if (!secondOrder) return new StepCoefficients(alphaProdT, false, mSample, mOriginal, mNoise, 0f, 0f);

        // r = h_last / h, the ratio of the previous log-SNR step to this one, weighs x̂₀ against the previous x̂₀.
        double lambdaBack = HalfLogSnr(AlphasCumprod[Timesteps[stepIndex - 1]]);
        double r = (lambda - lambdaBack) / h;
        return new StepCoefficients(alphaProdT, true, mSample, mOriginal, mNoise, (float)(1.0 + 1.0 / (2.0 * r)), (float)(1.0 / (2.0 * r)));
    }

    /// <summary>This step's noise; a second-order step's first draw went to the discarded first-order update.</summary>
    private Span<float> DrawNoise(TorchGenerator generator, int n, bool secondOrder)
    {
        if (_noise.Length < n) _noise = new float[n];
        var noise = _noise.AsSpan(0, n);
        generator.Normal(noise);
        if (secondOrder) generator.Normal(noise);
        return noise;
    }

    /// <summary>The held x̂₀ in host memory (downloaded when a tensor step left it on a device).</summary>
    private ReadOnlySpan<float> PreviousOriginalOnHost(int n)
    {
        if (_previousOriginalTensor is not null) return _previousOriginalTensor.ToFloatArray();
        return _previousOriginal.AsSpan(0, n);
    }

    /// <summary>The held x̂₀ as a tensor on the sample's backend (uploaded when a span step left it on the host).</summary>
    private Tensor PreviousOriginalOn(Tensor sample)
    {
        if (_previousOriginalTensor is not null && ReferenceEquals(_previousOriginalTensor.Backend, sample.Backend))
            return _previousOriginalTensor.Reshape(sample.ShapeArray());
        var host = _previousOriginalTensor?.ToFloatArray() ?? _previousOriginal.AsSpan(0, (int)_previousLength).ToArray();
        return Tensor.FromArray(host, sample.ShapeArray(), sample.Backend);
    }

    private void Remember(int stepIndex, long n)
    {
        _previousLength = n;
        _previousStep = stepIndex;
    }

    protected override void ReleaseState()
    {
        _previousOriginalTensor?.Dispose();
        _previousOriginalTensor = null;
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
