using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>What a task's conditioning may use while it prepares a run: the model, where it runs, and its components.</summary>
/// <param name="Model">The model folder.</param>
/// <param name="Backend">Where the latents live.</param>
/// <param name="DType">The compute dtype of the latents between steps.</param>
/// <param name="Request">The video asked for.</param>
/// <param name="LatentShape">[1, latent frames, latent channels, height / 8, width / 8].</param>
/// <param name="Components">Loads components on demand (an image-to-video task encodes its image with the VAE).</param>
/// <param name="Policy">The run's memory mode, for components the conditioning loads.</param>
/// <param name="Clock">The run's clock, for loads and stages the conditioning adds.</param>
/// <param name="Observer">Sees the conditioning's intermediate tensors (encoder input and output, image latents).</param>
/// <param name="Cancellation">Checked inside the stages the conditioning adds (the VAE encoder).</param>
public sealed record ConditioningContext(
    ModelFolder Model,
    IBackend Backend,
    DType DType,
    GenerationRequest Request,
    IReadOnlyList<int> LatentShape,
    ComponentManager Components,
    IMemoryPolicy Policy,
    StageClock Clock,
    IPipelineObserver? Observer = null,
    CancellationToken Cancellation = default);

/// <summary>
/// What differs between text-to-video, image-to-video and video-to-video: the latents the denoising loop starts from
/// and what the transformer sees besides them. Text-to-video starts from the generator's noise and adds nothing;
/// image-to-video (diffusers' <c>CogVideoXImageToVideoPipeline</c>) would encode its image with the VAE in
/// <see cref="PrepareLatents"/> and concatenate those latents on the channel axis in <see cref="TransformerInput"/>;
/// video-to-video would noise its encoded video to the first timestep. One instance per run; it may hold tensors
/// between the two calls (released by <see cref="Dispose"/>).
/// </summary>
public abstract class VideoConditioning : IDisposable
{
    /// <summary>
    /// The latents the loop starts from, <see cref="ConditioningContext.LatentShape"/> in the compute dtype on the
    /// backend. Random draws come from <paramref name="generator"/> (the torch-compatible stream the scheduler's noise
    /// continues), scaled by the scheduler's initial sigma.
    /// </summary>
    public abstract Tensor PrepareLatents(ConditioningContext context, TorchGenerator generator, IScheduler scheduler);

    /// <summary>
    /// The transformer's latent input for one step from the (guidance-batched) latents [B, F, C, h, w]: the latents
    /// themselves for text-to-video, with the task's own latents concatenated for image-to-video. Caller disposes.
    /// </summary>
    public virtual Tensor TransformerInput(Tensor latents)
    {
        ArgumentNullException.ThrowIfNull(latents);
        return latents.Alias();
    }

    /// <summary>Releases the tensors the conditioning holds.</summary>
    public void Dispose()
    {
        ReleaseTensors();
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the tensors a task holds between <see cref="PrepareLatents"/> and the end of the run (none here).</summary>
    protected virtual void ReleaseTensors()
    {
    }
}

/// <summary>Text to video (diffusers' <c>CogVideoXPipeline</c>): pure noise in, nothing but the prompt besides.</summary>
public sealed class TextToVideoConditioning : VideoConditioning
{
    /// <summary>The generator's first draw, times the scheduler's initial sigma, in the compute dtype.</summary>
    public override Tensor PrepareLatents(ConditioningContext context, TorchGenerator generator, IScheduler scheduler)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(scheduler);
        var shape = context.LatentShape.ToArray();
        var initial = generator.Randn(shape);
        if (scheduler.InitNoiseSigma != 1f)
            for (int i = 0; i < initial.Length; i++) initial[i] *= scheduler.InitNoiseSigma;
        return Tensor.FromArray(initial, shape, context.Backend, context.DType);
    }
}
