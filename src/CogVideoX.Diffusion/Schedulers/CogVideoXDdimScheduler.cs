using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>
/// diffusers' <c>CogVideoXDDIMScheduler</c>: deterministic DDIM (η = 0). Each step predicts x̂₀ and moves to the
/// previous timestep along x_{t−1} = a_t·x_t + b_t·x̂₀ with a_t = √((1 − ᾱ_prev)/(1 − ᾱ_t)),
/// b_t = √ᾱ_prev − √ᾱ_t·a_t. It keeps no state between steps. (Like diffusers, it ignores <c>clip_sample</c>.)
/// </summary>
public sealed class CogVideoXDdimScheduler : CogVideoXScheduler
{
    public CogVideoXDdimScheduler(SchedulerConfig config) : base(config)
    {
    }

    public override SchedulerKind Kind => SchedulerKind.Ddim;

    public override bool IsStochastic => false;

    /// <summary>One DDIM step; <paramref name="generator"/> is not used (η = 0 draws no noise).</summary>
    public override void Step(int stepIndex, ReadOnlySpan<float> modelOutput, ReadOnlySpan<float> sample, Span<float> prevSample, TorchGenerator? generator = null)
    {
        int t = CheckStep(stepIndex, modelOutput, sample, prevSample);
        double alphaProdT = AlphasCumprod[t];
        double alphaProdPrev = PreviousAlphaCumprod(t);

        var x0 = PredictedOriginalBuffer(sample.Length);
        PredictOriginal(alphaProdT, modelOutput, sample, x0);

        double a = Math.Sqrt((1.0 - alphaProdPrev) / (1.0 - alphaProdT));
        double b = Math.Sqrt(alphaProdPrev) - Math.Sqrt(alphaProdT) * a;
        float af = (float)a, bf = (float)b;
        for (int i = 0; i < prevSample.Length; i++) prevSample[i] = af * sample[i] + bf * x0[i];
    }
}
