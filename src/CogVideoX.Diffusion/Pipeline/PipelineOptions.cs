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

    /// <summary>When components are released; <see cref="MemoryPolicies.Full"/> keeps everything loaded.</summary>
    public IMemoryPolicy MemoryPolicy { get; init; } = MemoryPolicies.Full;

    /// <summary>Tokens the text encoder reads (diffusers' <c>max_sequence_length</c>; CogVideoX was trained with 226).</summary>
    public int MaxSequenceLength { get; init; } = 226;
}
