using CogVideoX.Engine;
using CogVideoX.Models.Vae;

namespace CogVideoX.Diffusion;

/// <summary>How a <see cref="CogVideoXPipeline"/> runs: where, in which precision, and what it keeps in memory.</summary>
public sealed record PipelineOptions
{
    /// <summary>The backend every component runs on (the CPU reference backend when null).</summary>
    public IBackend? Backend { get; init; }

    /// <summary>
    /// The dtype weights and activations are held in, for all three models, as diffusers' <c>torch_dtype</c>. The
    /// latents follow it between steps (diffusers casts them to the embeddings' dtype); the scheduler and guidance
    /// run in float32.
    /// </summary>
    public DType DType { get; init; } = DType.F32;

    /// <summary>Decode the latents in spatial tiles (null: whole frames).</summary>
    public VaeTiling? VaeTiling { get; init; }

    /// <summary>Decode the items of a batch one at a time.</summary>
    public bool VaeSlicing { get; init; }

    /// <summary>
    /// When components are released and whether their blocks stream from host memory; <see cref="MemoryPolicies.Full"/>
    /// keeps everything loaded, <see cref="MemoryPolicies.Auto"/> chooses per run from the free device memory.
    /// </summary>
    public IMemoryPolicy MemoryPolicy { get; init; } = MemoryPolicies.Full;

    /// <summary>
    /// How the balanced and low modes stream weights from host memory; null takes the backend's own capability (the
    /// CUDA backend has one, the CPU backend none — there those modes load each model whole for its stage).
    /// </summary>
    public IWeightStreaming? WeightStreaming { get; init; }

    /// <summary>Tokens the text encoder reads (diffusers' <c>max_sequence_length</c>; CogVideoX was trained with 226).</summary>
    public int MaxSequenceLength { get; init; } = 226;
}
