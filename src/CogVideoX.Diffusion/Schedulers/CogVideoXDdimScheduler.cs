using CogVideoX.Engine;
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

        var (af, bf) = Coefficients(alphaProdT, alphaProdPrev);
        for (int i = 0; i < prevSample.Length; i++) prevSample[i] = af * sample[i] + bf * x0[i];
    }

    /// <summary>
    /// The same step on the sample's backend, so a GPU pipeline's latents never travel to the host and back between
    /// transformer calls: the same float32 operations in the same order (each rounded once), so on the CPU backend it
    /// is bit-identical to the span form. Returns the next latents in float32 (caller disposes).
    /// </summary>
    public override Tensor Step(int stepIndex, Tensor modelOutput, Tensor sample, TorchGenerator? generator = null)
    {
        int t = CheckStep(stepIndex, modelOutput, sample);
        double alphaProdT = AlphasCumprod[t];
        var (a, b) = Coefficients(alphaProdT, PreviousAlphaCumprod(t));
        using var scope = new TensorScope();
        var x = sample.To(DType.F32);
        var x0 = PredictOriginal(alphaProdT, modelOutput.To(DType.F32), x);
        return scope.Keep(x.Scale(a).Add(x0.Scale(b)));
    }

    /// <summary>a_t and b_t of x_{t−1} = a_t·x_t + b_t·x̂₀, computed in double and rounded to float32 once.</summary>
    private static (float A, float B) Coefficients(double alphaProdT, double alphaProdPrev)
    {
        double a = Math.Sqrt((1.0 - alphaProdPrev) / (1.0 - alphaProdT));
        double b = Math.Sqrt(alphaProdPrev) - Math.Sqrt(alphaProdT) * a;
        return ((float)a, (float)b);
    }
}
