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

/// <summary>
/// diffusers' tiled_encode arithmetic for one spatial compression: tiles of <see cref="SampleHeight"/> ×
/// <see cref="SampleWidth"/> video pixels every <see cref="StrideHeight"/> × <see cref="StrideWidth"/> pixels, blended
/// over <see cref="BlendHeight"/> × <see cref="BlendWidth"/> latent pixels, of which <see cref="KeepHeight"/> ×
/// <see cref="KeepWidth"/> latent pixels are kept per tile.
/// </summary>
internal readonly record struct EncodeTilePlan(int SampleHeight, int SampleWidth, int StrideHeight, int StrideWidth,
    int BlendHeight, int BlendWidth, int KeepHeight, int KeepWidth)
{
    public static EncodeTilePlan For(VaeTiling tiling, int spatialScale)
    {
        if (tiling.TileSampleMinHeight < spatialScale || tiling.TileSampleMinWidth < spatialScale)
            throw new CogVideoXException($"VAE tiling: tiles of {tiling.TileSampleMinHeight}×{tiling.TileSampleMinWidth} pixels are smaller than one latent pixel ({spatialScale}×{spatialScale}); use tiles of at least {spatialScale} pixels (the default is half the model's sample size)");
        if (!(tiling.OverlapFactorHeight >= 0 && tiling.OverlapFactorHeight < 1) || !(tiling.OverlapFactorWidth >= 0 && tiling.OverlapFactorWidth < 1))
            throw new CogVideoXException($"VAE tiling: overlap factors must lie in [0, 1), got {tiling.OverlapFactorHeight} (height) and {tiling.OverlapFactorWidth} (width)");
        // Same int(float) truncations as diffusers, in double precision like Python floats.
        int latentHeight = (int)(tiling.TileSampleMinHeight / (double)spatialScale);
        int latentWidth = (int)(tiling.TileSampleMinWidth / (double)spatialScale);
        int blendHeight = (int)(latentHeight * tiling.OverlapFactorHeight);
        int blendWidth = (int)(latentWidth * tiling.OverlapFactorWidth);
        var plan = new EncodeTilePlan(
            SampleHeight: tiling.TileSampleMinHeight,
            SampleWidth: tiling.TileSampleMinWidth,
            StrideHeight: (int)(tiling.TileSampleMinHeight * (1 - tiling.OverlapFactorHeight)),
            StrideWidth: (int)(tiling.TileSampleMinWidth * (1 - tiling.OverlapFactorWidth)),
            BlendHeight: blendHeight,
            BlendWidth: blendWidth,
            KeepHeight: latentHeight - blendHeight,
            KeepWidth: latentWidth - blendWidth);
        if (plan.StrideHeight < 1 || plan.StrideWidth < 1)
            throw new CogVideoXException($"VAE tiling: tiles of {tiling.TileSampleMinHeight}×{tiling.TileSampleMinWidth} pixels with overlaps {tiling.OverlapFactorHeight} and {tiling.OverlapFactorWidth} do not advance; use larger tiles or smaller overlap factors");
        return plan;
    }

    /// <summary>The tiles' first rows (or columns) for a video <paramref name="size"/> pixels high (or wide).</summary>
    public static IEnumerable<int> Starts(int size, int stride)
    {
        for (int i = 0; i < size; i += stride) yield return i;
    }
}
