using CogVideoX.Engine;

namespace CogVideoX.Models.Vae;

/// <summary>How <see cref="CogVideoXVaeEncoder.Encode"/> trades memory for time.</summary>
public sealed record VaeEncodeOptions
{
    /// <summary>
    /// Encode in spatial tiles when the video is larger than one tile (null: whole frames). The same record as the
    /// decoder's: tile sizes in video pixels, overlaps as fractions of a tile; diffusers' <c>tiled_encode</c> arithmetic.
    /// </summary>
    public VaeTiling? Tiling { get; init; }

    /// <summary>Encode the items of a batch one at a time (diffusers' enable_slicing).</summary>
    public bool Slicing { get; init; }

    /// <summary>Checked between frame batches, tiles and the encoder's blocks, so a stop request is honoured within a block's time.</summary>
    public CancellationToken Cancellation { get; init; }

    /// <summary>Hears (done, total) after each frame batch (per tile when tiled), for progress bars.</summary>
    public Action<int, int>? Progress { get; init; }

    /// <summary>The default <see cref="ConvolutionWindowFrames"/>: one output frame per chunk at full resolution.</summary>
    public const int DefaultConvolutionWindowFrames = 4;

    /// <summary>
    /// The encoder's ResNet convolutions run in chunks of output frames, in place, each chunk's input window and output
    /// together within this many frames of the widest activation (conv_in's output): 4 gives one frame per chunk at
    /// full resolution (window of three, one out), more at the lower resolutions. 0 runs each convolution whole (a
    /// time-padded copy and a separate output: about a frame batch and a half more memory, fewer calls). The result is
    /// the same either way.
    /// </summary>
    public int ConvolutionWindowFrames { get; init; } = DefaultConvolutionWindowFrames;
}
