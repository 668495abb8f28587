using CogVideoX.Engine;

namespace CogVideoX.Diffusion;

/// <summary>Scheduler steps on tensors, for a pipeline that keeps its latents as tensors on any backend.</summary>
public static class SchedulerTensorExtensions
{
    /// <summary>
    /// Runs <see cref="IScheduler.Step"/> (on the sample's backend for DDIM, otherwise through host memory: the DPM
    /// step draws its noise from the CPU generator) and returns the next latents as a float32 tensor of the sample's
    /// shape on the sample's backend.
    /// </summary>
    public static Tensor Step(this IScheduler scheduler, int stepIndex, Tensor modelOutput, Tensor sample, TorchGenerator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentNullException.ThrowIfNull(modelOutput);
        ArgumentNullException.ThrowIfNull(sample);
        if (!modelOutput.Shape.SequenceEqual(sample.Shape))
            throw new ArgumentException($"model output {modelOutput.ShapeString} and sample {sample.ShapeString} must have the same shape");
        // DDIM draws no noise and its update is element-wise: it runs where the tensors are.
        if (scheduler is CogVideoXDdimScheduler { StepsOnTensors: true } ddim) return ddim.StepOnTensors(stepIndex, modelOutput, sample);
        var output = modelOutput.ToFloatArray();
        var latents = sample.ToFloatArray();
        scheduler.Step(stepIndex, output, latents, latents, generator);
        return Tensor.FromArray(latents, sample.ShapeArray(), sample.Backend);
    }
}
