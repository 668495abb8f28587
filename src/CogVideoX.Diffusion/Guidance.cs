using CogVideoX.Engine;

namespace CogVideoX.Diffusion;

/// <summary>Which step variable drives the dynamic-CFG cosine schedule.</summary>
public enum DynamicCfgSchedule
{
    /// <summary>
    /// diffusers' (and THUDM's SAT code's) formula, 1 + g·(1 − cos(π·((N − t)/N)⁵))/2, where t is the timestep value
    /// (999, 979, …) although the formula was written for a step counter: (N − t)/N is then a large negative number
    /// and the scale jumps pseudo-randomly within [1, 1 + g] until the last few steps. The default, for parity with
    /// diffusers' output.
    /// </summary>
    DiffusersParity,

    /// <summary>
    /// The schedule the formula means: 1 + g·(1 − cos(π·(i/N)⁵))/2 with i = 0 … N − 1 the step index (what the SAT
    /// code's <c>num_steps − timestep</c> evaluates to once the timestep is replaced by the remaining-step counter),
    /// rising smoothly from 1 (no guidance) at the first step to nearly 1 + g at the last.
    /// </summary>
    StepIndex,
}

/// <summary>
/// Classifier-free guidance as CogVideoX's pipeline applies it: the transformer runs on the batch [uncond; cond]
/// (negative prompt first) and the two halves are combined as uncond + s·(cond − uncond), in float32.
/// </summary>
public static class Guidance
{
    /// <summary>
    /// Whether CFG runs at all (the batch of two): diffusers decides it once per run from the user's scale,
    /// <c>guidance_scale &gt; 1</c>; a dynamic per-step scale never switches it off.
    /// </summary>
    public static bool IsEnabled(double guidanceScale) => guidanceScale > 1.0;

    /// <summary>The scale for step <paramref name="stepIndex"/> (timestep <paramref name="timestep"/>) of an N-step run.</summary>
    public static double ScaleAt(double guidanceScale, bool dynamic, int stepIndex, int timestep, int numInferenceSteps,
        DynamicCfgSchedule schedule = DynamicCfgSchedule.DiffusersParity) =>
        dynamic ? DynamicScale(guidanceScale, stepIndex, timestep, numInferenceSteps, schedule) : guidanceScale;

    /// <summary>Dynamic CFG's scale at one step, in float64 in diffusers' order of operations.</summary>
    public static double DynamicScale(double guidanceScale, int stepIndex, int timestep, int numInferenceSteps,
        DynamicCfgSchedule schedule = DynamicCfgSchedule.DiffusersParity)
    {
        if (numInferenceSteps < 1) throw new ArgumentOutOfRangeException(nameof(numInferenceSteps), numInferenceSteps, "must be at least 1");
        double progress = schedule switch
        {
            DynamicCfgSchedule.DiffusersParity => (numInferenceSteps - (double)timestep) / numInferenceSteps,
            DynamicCfgSchedule.StepIndex => (double)stepIndex / numInferenceSteps,
            _ => throw new ArgumentOutOfRangeException(nameof(schedule), schedule, null),
        };
        return 1 + guidanceScale * ((1 - Math.Cos(Math.PI * Math.Pow(progress, 5.0))) / 2);
    }

    /// <summary>
    /// uncond + s·(cond − uncond), each operation rounded to float32 with s rounded to float32 first, as torch computes
    /// it for float32 tensors and a Python float. <paramref name="destination"/> may alias either input.
    /// </summary>
    public static void Combine(ReadOnlySpan<float> uncond, ReadOnlySpan<float> cond, double scale, Span<float> destination)
    {
        if (cond.Length != uncond.Length || destination.Length != uncond.Length)
            throw new ArgumentException($"uncond ({uncond.Length}), cond ({cond.Length}) and destination ({destination.Length}) must have the same length");
        float s = (float)scale;
        for (int i = 0; i < destination.Length; i++)
        {
            float u = uncond[i];
            destination[i] = u + s * (cond[i] - u);
        }
    }

    /// <summary>
    /// Guides the transformer's batch-2 output [uncond; cond] (host, C order): writes the guided prediction (half the
    /// length) into <paramref name="destination"/>.
    /// </summary>
    public static void Apply(ReadOnlySpan<float> batchedOutput, double scale, Span<float> destination)
    {
        if (batchedOutput.Length % 2 != 0 || destination.Length != batchedOutput.Length / 2)
            throw new ArgumentException($"a batch-2 output of {batchedOutput.Length} elements guides into {batchedOutput.Length / 2}, not {destination.Length}");
        int half = destination.Length;
        Combine(batchedOutput[..half], batchedOutput[half..], scale, destination);
    }

    /// <summary>The same on a tensor [2, …] on any backend: returns [1, …] in float32 (caller disposes).</summary>
    public static Tensor Apply(Tensor batchedOutput, double scale)
    {
        ArgumentNullException.ThrowIfNull(batchedOutput);
        if (batchedOutput.Rank == 0 || batchedOutput.Dim(0) != 2)
            throw new ArgumentException($"classifier-free guidance needs the batch [uncond; cond] of 2, got {batchedOutput.ShapeString}", nameof(batchedOutput));
        using var scope = new TensorScope();
        var output = batchedOutput.To(DType.F32);
        var halves = output.Chunk(2, 0);
        var scaled = halves[1].Sub(halves[0]).Scale((float)scale);
        return scope.Keep(halves[0].Add(scaled));
    }
}
