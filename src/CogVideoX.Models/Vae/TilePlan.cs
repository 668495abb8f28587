using CogVideoX.Engine;

namespace CogVideoX.Models.Vae;

/// <summary>
/// The tile grid of diffusers' tiled_decode and tiled_encode, which differ only in what a tile is run through: tiles
/// of <see cref="TileHeight"/> × <see cref="TileWidth"/> input pixels (latent pixels when decoding, video pixels when
/// encoding) every <see cref="StrideHeight"/> × <see cref="StrideWidth"/> input pixels; neighbouring tiles blended
/// over <see cref="BlendHeight"/> × <see cref="BlendWidth"/> output pixels, of which <see cref="KeepHeight"/> ×
/// <see cref="KeepWidth"/> are kept per tile.
/// </summary>
internal readonly record struct TilePlan(int TileHeight, int TileWidth, int StrideHeight, int StrideWidth,
    int BlendHeight, int BlendWidth, int KeepHeight, int KeepWidth)
{
    /// <summary>The tiles' first rows (or columns) for an input <paramref name="size"/> pixels high (or wide).</summary>
    public static IEnumerable<int> Starts(int size, int stride)
    {
        for (int i = 0; i < size; i += stride) yield return i;
    }

    /// <summary>Whether an input of <paramref name="height"/> × <paramref name="width"/> is larger than one tile (else it is run whole).</summary>
    public bool Cuts(int height, int width) => width > TileWidth || height > TileHeight;

    /// <summary>How many tiles cover an input of <paramref name="height"/> × <paramref name="width"/>.</summary>
    public int Count(int height, int width) => Starts(height, StrideHeight).Count() * Starts(width, StrideWidth).Count();

    /// <summary>
    /// The size of the blended output: the kept part of each tile row and column, where a tile starting at input pixel
    /// i and n pixels high (cut by the edge) gives tileHeight(i, n) output pixels (tileWidth across).
    /// </summary>
    public (int Height, int Width) OutputSize(int height, int width, Func<int, int, int> tileHeight, Func<int, int, int> tileWidth) =>
        (KeptSize(height, TileHeight, StrideHeight, KeepHeight, tileHeight), KeptSize(width, TileWidth, StrideWidth, KeepWidth, tileWidth));

    private static int KeptSize(int size, int tile, int stride, int keep, Func<int, int, int> tileOutput)
    {
        int total = 0;
        foreach (int i in Starts(size, stride)) total += Math.Min(keep, tileOutput(i, Math.Min(tile, size - i)));
        return total;
    }

    /// <summary>
    /// Runs every tile of <paramref name="input"/> [B, C, F, H, W] into <paramref name="destination"/> of
    /// <see cref="OutputSize"/>: row by row, each tile's output (made by <paramref name="allocate"/> for a tile of
    /// th × tw input pixels, filled by <paramref name="run"/> from the input's tile view) is blended with the (already
    /// blended) tile above and to its left, exactly as diffusers' in-place loop does after running them all, then its
    /// kept part is written to destination. Only the previous row of tile outputs is held.
    /// </summary>
    public void Run(Tensor input, Tensor destination, Func<int, int, Tensor> allocate, Action<Tensor, Tensor> run)
    {
        int h = input.Dim(3), w = input.Dim(4);
        var above = new List<Tensor>();
        var row = new List<Tensor>();
        try
        {
            int y0 = 0;
            foreach (int i in Starts(h, StrideHeight))
            {
                int x0 = 0, keepHeight = 0, col = 0;
                foreach (int j in Starts(w, StrideWidth))
                {
                    int th = Math.Min(TileHeight, h - i), tw = Math.Min(TileWidth, w - j);
                    var tile = allocate(th, tw);
                    row.Add(tile);
                    using (var rows = input.Narrow(3, i, th))
                    using (var view = rows.Narrow(4, j, tw))
                        run(view, tile);
                    (keepHeight, int keepWidth) = PlaceTile(tile, i > 0 ? above[col] : null, col > 0 ? row[col - 1] : null, destination, y0, x0);
                    x0 += keepWidth;
                    col++;
                }
                y0 += keepHeight;
                foreach (var t in above) t.Dispose();
                (above, row) = (row, above);
                row.Clear();
            }
        }
        finally
        {
            foreach (var t in above) t.Dispose();
            foreach (var t in row) t.Dispose();
        }
    }

    /// <summary>
    /// A finished tile blended with the tile above it and the one to its left (either may be null), then its kept
    /// top-left corner copied into <paramref name="destination"/> at (y0, x0); returns the kept height and width.
    /// </summary>
    private (int Height, int Width) PlaceTile(Tensor tile, Tensor? above, Tensor? left, Tensor destination, int y0, int x0)
    {
        if (above is not null) Blend(above, tile, 3, BlendHeight);
        if (left is not null) Blend(left, tile, 4, BlendWidth);
        int keepHeight = Math.Min(KeepHeight, tile.Dim(3));
        int keepWidth = Math.Min(KeepWidth, tile.Dim(4));
        using (var kept = tile.Narrow(3, 0, keepHeight))
        using (var kept2 = kept.Narrow(4, 0, keepWidth))
        using (var target = destination.Narrow(3, y0, keepHeight))
        using (var target2 = target.Narrow(4, x0, keepWidth))
            kept2.CopyTo(target2);
        return (keepHeight, keepWidth);
    }

    /// <summary>
    /// b's first rows (dim 3; columns for dim 4) ← a's last ones · (1 − y/e) + b's · y/e, in place (diffusers' blend_v
    /// and blend_h).
    /// </summary>
    private static void Blend(Tensor a, Tensor b, int dim, int extent)
    {
        extent = Math.Min(Math.Min(a.Dim(dim), b.Dim(dim)), extent);
        for (int y = 0; y < extent; y++)
        {
            using var fromA = a.Narrow(dim, a.Dim(dim) - extent + y, 1);
            using var fromB = b.Narrow(dim, y, 1);
            using var weightedA = fromA.Scale((float)(1 - y / (double)extent));
            using var weightedB = fromB.Scale((float)(y / (double)extent));
            using var sum = weightedA.Add(weightedB);
            sum.CopyTo(fromB);
        }
    }
}
