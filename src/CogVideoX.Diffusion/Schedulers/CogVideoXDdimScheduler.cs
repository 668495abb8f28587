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

    /// <summary>a_t and b_t of x_{t−1} = a_t·x_t + b_t·x̂₀, computed in double and rounded to float32 once.</summary>
    private static (float A, float B) Coefficients(double alphaProdT, double alphaProdPrev)
    {
        double a = Math.Sqrt((1.0 - alphaProdPrev) / (1.0 - alphaProdT));
        double b = Math.Sqrt(alphaProdPrev) - Math.Sqrt(alphaProdT) * a;
        return ((float)a, (float)b);
    }

    /// <summary>Whether <see cref="StepOnTensors"/> can take this configuration's prediction type.</summary>
    public bool StepsOnTensors => Config.PredictionType is "v_prediction" or "sample";

    /// <summary>
    /// The same step as <see cref="Step(int, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, TorchGenerator?)"/>
    /// on the sample's backend, so a GPU pipeline's latents never travel to the host and back between transformer
    /// calls. The same float32 operations in the same order (each rounded once), so on the CPU backend it is
    /// bit-identical to the span form. Returns the next latents in float32 (caller disposes).
    /// </summary>
    public Tensor StepOnTensors(int stepIndex, Tensor modelOutput, Tensor sample)
    {
        ArgumentNullException.ThrowIfNull(modelOutput);
        ArgumentNullException.ThrowIfNull(sample);
        if (!modelOutput.Shape.SequenceEqual(sample.Shape))
            throw new ArgumentException($"model output {modelOutput.ShapeString} and sample {sample.ShapeString} must have the same shape");
        if (!StepsOnTensors)
            throw new InvalidOperationException($"prediction type '{Config.PredictionType}' steps through host memory (Step on spans)");
        int t = CheckStep(stepIndex, default, default, default);
        double alphaProdT = AlphasCumprod[t];
        var (a, b) = Coefficients(alphaProdT, PreviousAlphaCumprod(t));
        using var scope = new TensorScope();
        var x = sample.To(DType.F32);
        var v = modelOutput.To(DType.F32);
        // x̂₀ = √ᾱ_t·x − √(1 − ᾱ_t)·v with the coefficients rounded to float32 first, as PredictOriginal.
        var x0 = Config.PredictionType == "v_prediction"
            ? x.Scale((float)Math.Sqrt(alphaProdT)).Sub(v.Scale((float)Math.Sqrt(1.0 - alphaProdT)))
            : v;
        return scope.Keep(x.Scale(a).Add(x0.Scale(b)));
    }
}
