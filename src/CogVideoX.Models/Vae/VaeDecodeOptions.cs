using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Vae;

/// <summary>
/// Tiled decoding (diffusers' enable_tiling): the latents are cut into overlapping spatial tiles, each decoded on its
/// own (all frames, with its own conv cache), and neighbouring tiles are blended linearly over the overlap. Sizes are
/// in output pixels; the overlap factors are fractions of a tile.
/// </summary>
public sealed record VaeTiling(int TileSampleMinHeight, int TileSampleMinWidth, double OverlapFactorHeight, double OverlapFactorWidth)
{
    /// <summary>diffusers' defaults: half the config's sample size, overlaps 1/6 (height) and 1/5 (width).</summary>
    public static VaeTiling ForConfig(VaeConfig config) =>
        new(config.SampleHeight / 2, config.SampleWidth / 2, 1.0 / 6, 1.0 / 5);

    /// <summary>The tile arithmetic of diffusers' tiled_decode for a given spatial compression.</summary>
    internal TilePlan Plan(int spatialScale)
    {
        if (TileSampleMinHeight < spatialScale || TileSampleMinWidth < spatialScale)
            throw new CogVideoXException($"VAE tiling: tiles of {TileSampleMinHeight}×{TileSampleMinWidth} pixels are smaller than one latent pixel ({spatialScale}×{spatialScale}); use tiles of at least {spatialScale} pixels (the default is half the model's sample size)");
        if (!(OverlapFactorHeight >= 0 && OverlapFactorHeight < 1) || !(OverlapFactorWidth >= 0 && OverlapFactorWidth < 1))
            throw new CogVideoXException($"VAE tiling: overlap factors must lie in [0, 1), got {OverlapFactorHeight} (height) and {OverlapFactorWidth} (width)");
        // Same int(float) truncations as diffusers, in double precision like Python floats.
        int latentHeight = (int)(TileSampleMinHeight / (double)spatialScale);
        int latentWidth = (int)(TileSampleMinWidth / (double)spatialScale);
        var plan = new TilePlan(
            LatentHeight: latentHeight,
            LatentWidth: latentWidth,
            StrideHeight: (int)(latentHeight * (1 - OverlapFactorHeight)),
            StrideWidth: (int)(latentWidth * (1 - OverlapFactorWidth)),
            BlendHeight: (int)(TileSampleMinHeight * OverlapFactorHeight),
            BlendWidth: (int)(TileSampleMinWidth * OverlapFactorWidth),
            KeepHeight: TileSampleMinHeight - (int)(TileSampleMinHeight * OverlapFactorHeight),
            KeepWidth: TileSampleMinWidth - (int)(TileSampleMinWidth * OverlapFactorWidth));
        if (plan.StrideHeight < 1 || plan.StrideWidth < 1)
            throw new CogVideoXException($"VAE tiling: tiles of {latentHeight}×{latentWidth} latent pixels with overlaps {OverlapFactorHeight} and {OverlapFactorWidth} do not advance; use larger tiles or smaller overlap factors");
        return plan;
    }
}

/// <summary>Tile sizes in latent pixels, the step between tiles, the blended band and the part of each tile kept, in output pixels.</summary>
internal readonly record struct TilePlan(int LatentHeight, int LatentWidth, int StrideHeight, int StrideWidth,
    int BlendHeight, int BlendWidth, int KeepHeight, int KeepWidth);

/// <summary>How <see cref="CogVideoXVae.Decode"/> trades memory for time.</summary>
public sealed record VaeDecodeOptions
{
    /// <summary>Decode in spatial tiles when the latents are larger than one tile (null: whole frames).</summary>
    public VaeTiling? Tiling { get; init; }

    /// <summary>Decode the items of a batch one at a time (diffusers' enable_slicing).</summary>
    public bool Slicing { get; init; }

    /// <summary>Checked between frame batches, tiles and the decoder's blocks, so a stop request is honoured within a block's time.</summary>
    public CancellationToken Cancellation { get; init; }

    /// <summary>Hears (done, total) after each batch of latent frames (per tile when tiled), for progress bars.</summary>
    public Action<int, int>? Progress { get; init; }
}
