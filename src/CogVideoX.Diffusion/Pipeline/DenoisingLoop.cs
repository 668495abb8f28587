using System.Diagnostics;
using CogVideoX.Engine;
using CogVideoX.Models.Transformer;

namespace CogVideoX.Diffusion;

/// <summary>What one run's denoising loop works with besides the latents; the loop owns none of it.</summary>
/// <param name="Transformer">The loaded transformer.</param>
/// <param name="Scheduler">The run's scheduler, its timesteps set.</param>
/// <param name="Generator">The generator that drew the initial latents (a stochastic scheduler's noise continues it).</param>
/// <param name="Conditioning">The task's conditioning (what the transformer sees besides the latents).</param>
/// <param name="Embeddings">Text embeddings, [negative; positive] under guidance.</param>
/// <param name="Request">The video asked for (guidance scale, steps).</param>
/// <param name="Resolved">What the run resolved (guidance on or off, dynamic CFG).</param>
/// <param name="DType">The dtype the latents are held in between steps.</param>
public sealed record DenoisingInputs(
    CogVideoXTransformer Transformer,
    IScheduler Scheduler,
    TorchGenerator Generator,
    VideoConditioning Conditioning,
    Tensor Embeddings,
    GenerationRequest Request,
    ResolvedGeneration Resolved,
    DType DType);

/// <summary>
/// The denoising loop every task shares, as in diffusers' <c>__call__</c>: for each timestep, the transformer on
/// [latents; latents] under classifier-free guidance (the latents alone without) plus what the task adds, the
/// guided prediction in float32, the scheduler's step on the latents' backend.
/// </summary>
public static class DenoisingLoop
{
    /// <summary>The ofs value diffusers' image-to-video pipeline gives a CogVideoX 1.5-I2V transformer every step.</summary>
    public const float OfsValue = 2.0f;

    /// <summary>
    /// Runs every step from <paramref name="latents"/>, which it takes over (disposed, also on failure), and returns
    /// the final latents in the compute dtype. Checks <paramref name="cancellation"/> before each step. Under a step
    /// cache (the request's <see cref="GenerationRequest.Cache"/>) the steps that reused cached work are added to
    /// <paramref name="reusedSteps"/>; the first and last steps (<see cref="StepCaching.IsExactStep"/>) always run in full.
    /// </summary>
    public static Tensor Run(DenoisingInputs inputs, Tensor latents, StageClock clock, CancellationToken cancellation, IPipelineObserver? observer,
        ICollection<int>? reusedSteps = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(latents);
        ArgumentNullException.ThrowIfNull(clock);
        // The schedule's own count: video-to-video's strength cuts it short of the requested steps.
        int steps = inputs.Scheduler.Timesteps.Count;
        var watch = clock.Begin(PipelineStages.Denoise, steps);
        var stepTimes = new List<TimeSpan>(steps);
        // The cache's tensors live on the transformer's backend for the loop only (whatever the memory mode).
        var (stepCache, _) = StepCaching.Create(inputs.Request, inputs.Transformer.Config);
        try
        {
            // FP8 linears: held as FP8 only, the projections were quantized at load (no exact step: the component manager
            // loads them so); held exactly (exact steps), FP8 copies are made once, before the first step, and kept for
            // the next video; an exact run gives their memory back.
            if (inputs.Request.Linears == LinearMode.Fp8) inputs.Transformer.PrepareFp8();
            else inputs.Transformer.ReleaseFp8();
            using var rotary = inputs.Transformer.Config.UseRotaryPositionalEmbeddings
                ? inputs.Transformer.BuildRotaryTables(latents.Dim(1), latents.Dim(3), latents.Dim(4))
                : null;
            var timesteps = inputs.Scheduler.Timesteps;
            for (int i = 0; i < timesteps.Count; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                var stepClock = Stopwatch.StartNew();
                int t = timesteps[i];
                stepCache?.ForceCompute = StepCaching.IsExactStep(i, timesteps.Count, inputs.Request.ExactSteps);
                inputs.Transformer.AttentionMode = StepCaching.AttentionAt(inputs.Request, i, timesteps.Count);
                inputs.Transformer.Linears = LinearModes.ForStep(inputs.Request, i, timesteps.Count);
                var next = Step(inputs, rotary, latents, i, t, observer, cancellation, stepCache);
                bool reused = stepCache?.LastReused ?? false;
                if (reused) reusedSteps?.Add(i);
                latents.Dispose();
                latents = next;
                observer?.Tensor($"latents_after_step{i}", latents);
                NonFiniteCheck.Latents(latents, i, steps, t, inputs.Request.Guidance, inputs.Resolved.ClassifierFreeGuidance);
                latents.Backend.Synchronize();
                stepTimes.Add(stepClock.Elapsed);
                clock.Step(watch, i + 1, steps, stepClock.Elapsed, t, reused);
            }
        }
        catch
        {
            latents.Dispose();
            throw;
        }
        finally
        {
            inputs.Transformer.Linears = LinearMode.Exact;
            stepCache?.Dispose();
            inputs.Transformer.AttentionMode = AttentionMode.Exact;
        }
        clock.Timings = clock.Timings with { Denoise = watch.Elapsed, Steps = stepTimes };
        return latents;
    }

    /// <summary>
    /// One step: the transformer on the (batched, conditioned) latents, the prediction guided in float32, then the
    /// scheduler's update; the next latents come back in the compute dtype.
    /// </summary>
    private static Tensor Step(DenoisingInputs inputs, RotaryTables? rotary, Tensor latents, int index, int timestep, IPipelineObserver? observer,
        CancellationToken cancellation, StepCache? stepCache)
    {
        var (request, resolved) = (inputs.Request, inputs.Resolved);
        bool cfg = resolved.ClassifierFreeGuidance;
        using var batched = cfg ? Ops.Concat(0, latents, latents) : latents.Alias();
        using var input = inputs.Conditioning.TransformerInput(batched);
        observer?.Tensor($"transformer_in_step{index}", input);
        // CogVideoX 1.5-I2V: diffusers' pipeline passes ofs 2.0 to a transformer with an ofs embedding (none otherwise).
        float? ofs = inputs.Transformer.Config.OfsEmbedDim is > 0 ? OfsValue : null;
        using var prediction = inputs.Transformer.Forward(input, inputs.Embeddings, [timestep], rotary, ofs, cancellation, stepCache);
        observer?.Tensor($"transformer_out_step{index}", prediction);
        double scale = Guidance.ScaleAt(request.Guidance, resolved.DynamicCfg, index, timestep, inputs.Scheduler.Timesteps.Count, resolved.DynamicCfgSchedule);
        using var guided = cfg ? Guidance.Apply(prediction, scale) : prediction.To(DType.F32);
        using var updated = inputs.Scheduler.Step(index, guided, latents, inputs.Generator);
        return updated.To(inputs.DType);
    }
}
