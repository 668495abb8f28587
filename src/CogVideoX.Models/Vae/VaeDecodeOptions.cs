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

    /// <summary>
    /// Full-height tiles side by side: <paramref name="columns"/> tiles across a video of
    /// <paramref name="height"/> × <paramref name="width"/> pixels, each reaching about <paramref name="overlapLatent"/>
    /// latent pixels into its right neighbour and blended over that overlap. One row, so no tile cuts the frame
    /// horizontally, and the work beyond whole frames is only the overlaps — the tiling for a decode that must stay
    /// under a memory budget at nearly its untiled speed (CogVideoX 1.5 at 768×1360: 2 columns of 744 pixels).
    /// Expressed in diffusers' terms (tile size, overlap factors) that its enable_tiling accepts, so its tiled_decode
    /// with the same values cuts the same tiles: the tile height is taller than the video (the tile is cut at the edge)
    /// with the default height overlap, so one row covers it; the width overlap factor is chosen so that the blended band
    /// is exactly the overlap (diffusers keeps tile − blend pixels of each tile: were that more than the stride, the
    /// video would come out wider).
    /// </summary>
    public static VaeTiling Columns(int height, int width, int columns, int spatialScale = 8, int overlapLatent = 8)
    {
        if (height < spatialScale || width < spatialScale || columns < 1 || overlapLatent < 1)
            throw new ArgumentOutOfRangeException(nameof(columns), $"column tiles of a {height}×{width} video: {columns} columns, overlap {overlapLatent}");
        int latentHeight = height / spatialScale, latentWidth = width / spatialScale;
        int stride = (latentWidth + columns - 1) / columns;
        if (columns > 1 && stride > overlapLatent)
        {
            // int(tile · (1 − f)) must be the stride and int(tile · scale · f) the overlap in pixels; f = overlap / tile
            // does it in exact arithmetic, and within an ulp or two of it in doubles for some overlap near the one asked.
            for (int overlap = overlapLatent; overlap <= 2 * overlapLatent; overlap++)
            {
                int tile = stride + overlap;
                double f0 = overlap / (double)tile;
                foreach (var f in new[] { f0, Math.BitIncrement(f0), Math.BitDecrement(f0), Math.BitIncrement(Math.BitIncrement(f0)), Math.BitDecrement(Math.BitDecrement(f0)) })
                    if ((int)(tile * (1 - f)) == stride && (int)(tile * spatialScale * f) == overlap * spatialScale)
                        return new VaeTiling(OneRowHeight(latentHeight) * spatialScale, tile * spatialScale, DefaultOverlapHeight, f);
            }
        }
        return new VaeTiling(latentHeight * spatialScale, latentWidth * spatialScale, 0, 0);
    }

    /// <summary>diffusers' default height overlap factor (enable_tiling treats 0 as "not given" and uses it).</summary>
    private const double DefaultOverlapHeight = 1.0 / 6;

    /// <summary>
    /// The tile height (latent pixels) whose stride int(h · (1 − 1/6)) covers all <paramref name="latentHeight"/> rows:
    /// one row of tiles, with the overlap factor diffusers' enable_tiling can be given.
    /// </summary>
    private static int OneRowHeight(int latentHeight)
    {
        int h = latentHeight;
        while ((int)(h * (1 - DefaultOverlapHeight)) < latentHeight) h++;
        return h;
    }

    /// <summary>The tile arithmetic of diffusers' tiled_decode for a given spatial compression: tiles in latent pixels.</summary>
    internal TilePlan Plan(int spatialScale)
    {
        CheckTiles(spatialScale);
        // Same int(float) truncations as diffusers, in double precision like Python floats.
        int latentHeight = (int)(TileSampleMinHeight / (double)spatialScale);
        int latentWidth = (int)(TileSampleMinWidth / (double)spatialScale);
        var plan = new TilePlan(
            TileHeight: latentHeight,
            TileWidth: latentWidth,
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

    /// <summary>The tile arithmetic of diffusers' tiled_encode for a given spatial compression: tiles in video pixels.</summary>
    internal TilePlan EncodePlan(int spatialScale)
    {
        CheckTiles(spatialScale);
        // Same int(float) truncations as diffusers, in double precision like Python floats.
        int latentHeight = (int)(TileSampleMinHeight / (double)spatialScale);
        int latentWidth = (int)(TileSampleMinWidth / (double)spatialScale);
        int blendHeight = (int)(latentHeight * OverlapFactorHeight);
        int blendWidth = (int)(latentWidth * OverlapFactorWidth);
        var plan = new TilePlan(
            TileHeight: TileSampleMinHeight,
            TileWidth: TileSampleMinWidth,
            StrideHeight: (int)(TileSampleMinHeight * (1 - OverlapFactorHeight)),
            StrideWidth: (int)(TileSampleMinWidth * (1 - OverlapFactorWidth)),
            BlendHeight: blendHeight,
            BlendWidth: blendWidth,
            KeepHeight: latentHeight - blendHeight,
            KeepWidth: latentWidth - blendWidth);
        if (plan.StrideHeight < 1 || plan.StrideWidth < 1)
            throw new CogVideoXException($"VAE tiling: tiles of {TileSampleMinHeight}×{TileSampleMinWidth} pixels with overlaps {OverlapFactorHeight} and {OverlapFactorWidth} do not advance; use larger tiles or smaller overlap factors");
        return plan;
    }

    private void CheckTiles(int spatialScale)
    {
        if (TileSampleMinHeight < spatialScale || TileSampleMinWidth < spatialScale)
            throw new CogVideoXException($"VAE tiling: tiles of {TileSampleMinHeight}×{TileSampleMinWidth} pixels are smaller than one latent pixel ({spatialScale}×{spatialScale}); use tiles of at least {spatialScale} pixels (the default is half the model's sample size)");
        if (!(OverlapFactorHeight >= 0 && OverlapFactorHeight < 1) || !(OverlapFactorWidth >= 0 && OverlapFactorWidth < 1))
            throw new CogVideoXException($"VAE tiling: overlap factors must lie in [0, 1), got {OverlapFactorHeight} (height) and {OverlapFactorWidth} (width)");
    }
}

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
