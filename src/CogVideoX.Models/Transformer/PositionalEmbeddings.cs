using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>
/// The fixed 3D sine-cosine positional table of the CogVideoX-2b style transformer (diffusers'
/// <c>get_3d_sincos_pos_embed</c>), computed on the host with the reference's number types: grid positions in
/// float32, frequencies and sin/cos in float64, the table rounded to float32 at the end.
/// </summary>
public static class SincosPositionalEmbedding
{
    /// <summary>
    /// The table for a patch grid of <paramref name="frames"/> × <paramref name="height"/> × <paramref name="width"/>,
    /// rows in token order (frame, row, column), each row <paramref name="embedDim"/> wide:
    /// [temporal (D/4) | column position (3D/8) | row position (3D/8)].
    /// </summary>
    public static float[] Compute(int embedDim, int frames, int height, int width, double spatialInterpolationScale,
        double temporalInterpolationScale)
    {
        if (embedDim <= 0 || embedDim % 16 != 0)
            throw new CogVideoXException(
                $"sincos positional embeddings need a hidden size divisible by 16 (heads × head dim), got {embedDim}");
        if (frames <= 0 || height <= 0 || width <= 0)
            throw new ArgumentOutOfRangeException(nameof(frames), $"grid {frames}×{height}×{width} must be positive");
        int temporalDim = embedDim / 4;
        int axisDim = 3 * embedDim / 8;

        // diffusers divides a float32 arange by the scale in float32 (the scalar is cast to float32 first).
        float spatialScale = (float)spatialInterpolationScale;
        float temporalScale = (float)temporalInterpolationScale;
        var temporal = Table1D(temporalDim, frames, i => i / temporalScale);
        // The first spatial half is driven by the column (w) coordinate: diffusers builds the grid with
        // meshgrid(w, h) and names the halves the other way round.
        var columns = Table1D(axisDim, width, i => i / spatialScale);
        var rows = Table1D(axisDim, height, i => i / spatialScale);

        var table = new float[(long)frames * height * width * embedDim];
        long at = 0;
        for (int f = 0; f < frames; f++)
            for (int h = 0; h < height; h++)
                for (int w = 0; w < width; w++)
                {
                    var row = table.AsSpan((int)at, embedDim);
                    temporal.AsSpan(f * temporalDim, temporalDim).CopyTo(row);
                    columns.AsSpan(w * axisDim, axisDim).CopyTo(row[temporalDim..]);
                    rows.AsSpan(h * axisDim, axisDim).CopyTo(row[(temporalDim + axisDim)..]);
                    at += embedDim;
                }
        return table;
    }

    /// <summary>
    /// diffusers' <c>get_1d_sincos_pos_embed_from_grid</c> (float64): [sin(p·ωₖ) | cos(p·ωₖ)] with
    /// ωₖ = 1 / 10000^(k / (dim/2)); positions come in as float32 values.
    /// </summary>
    private static float[] Table1D(int dim, int count, Func<int, float> position)
    {
        int half = dim / 2;
        var omega = new double[half];
        for (int k = 0; k < half; k++)
            omega[k] = 1.0 / Math.Pow(10000.0, k / (dim / 2.0));
        var table = new float[count * dim];
        for (int i = 0; i < count; i++)
        {
            double p = position(i);
            for (int k = 0; k < half; k++)
            {
                double angle = p * omega[k];
                table[i * dim + k] = (float)Math.Sin(angle);
                table[i * dim + half + k] = (float)Math.Cos(angle);
            }
        }
        return table;
    }
}

/// <summary>
/// The 3D rotary tables of the CogVideoX-5b style and 1.5 transformers, built as diffusers' pipeline builds them
/// (<c>_prepare_rotary_positional_embeddings</c>): 1.0 places the latent patch grid in a crop region of the config's
/// base grid ("linspace"); 1.5 numbers the patches 0, 1, 2, … on each axis of the patched grid, frames counted in
/// temporal patches ("slice", the base grid only bounding the size). Each axis gets its own share of the head
/// dimension (time D/4, height 3D/8, width 3D/8). Build them once per run and pass them to every transformer call.
/// </summary>
public sealed class RotaryTables : IDisposable
{
    private RotaryTables(Tensor cos, Tensor sin, int frames, int height, int width)
    {
        Cos = cos;
        Sin = sin;
        Frames = frames;
        Height = height;
        Width = width;
    }

    /// <summary>cos table [video tokens, head dim], values repeated in interleaved pairs.</summary>
    public Tensor Cos { get; }

    /// <summary>sin table [video tokens, head dim], values repeated in interleaved pairs.</summary>
    public Tensor Sin { get; }

    /// <summary>Frames of the patch grid the tables were built for (latent frames / patch_size_t for 1.5).</summary>
    public int Frames { get; }

    /// <summary>Patch rows of the grid.</summary>
    public int Height { get; }

    /// <summary>Patch columns of the grid.</summary>
    public int Width { get; }

    public int Tokens => Frames * Height * Width;

    /// <summary>
    /// Tables for latents of <paramref name="latentFrames"/> × <paramref name="latentHeight"/> ×
    /// <paramref name="latentWidth"/> (the VAE's latent size, before patching), on a backend in a dtype.
    /// </summary>
    public static RotaryTables Build(TransformerConfig config, int latentFrames, int latentHeight, int latentWidth,
        IBackend backend, DType dtype)
    {
        TransformerConfigCheck.Validate(config, "transformer config");
        if (!config.UseRotaryPositionalEmbeddings)
            throw new CogVideoXException(
                "this transformer uses sincos positional embeddings (use_rotary_positional_embeddings is false); it takes no rotary tables");
        int p = config.PatchSize;
        TransformerConfigCheck.LatentSize(config, latentFrames, latentHeight, latentWidth);
        int gridHeight = latentHeight / p, gridWidth = latentWidth / p;
        int gridFrames = latentFrames / (config.PatchSizeT ?? 1);
        var (cos, sin) = config.PatchSizeT is null
            ? Compute(config.AttentionHeadDim, latentFrames, gridHeight, gridWidth, config.SampleHeight / p, config.SampleWidth / p)
            : ComputeSliced(config.AttentionHeadDim, gridFrames, gridHeight, gridWidth);
        int[] shape = [gridFrames * gridHeight * gridWidth, config.AttentionHeadDim];
        var cosTensor = Tensor.FromArray(cos, shape, backend, dtype);
        try
        {
            var sinTensor = Tensor.FromArray(sin, shape, backend, dtype);
            return new RotaryTables(cosTensor, sinTensor, gridFrames, gridHeight, gridWidth);
        }
        catch
        {
            cosTensor.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The host tables (diffusers' <c>get_3d_rotary_pos_embed</c>, grid_type "linspace", float32) for a patch grid of
    /// frames × gridHeight × gridWidth placed in a base grid of baseHeight × baseWidth patches; each is
    /// [frames·gridHeight·gridWidth, headDim] in token order (frame, row, column).
    /// </summary>
    public static (float[] Cos, float[] Sin) Compute(int headDim, int frames, int gridHeight, int gridWidth,
        int baseHeight, int baseWidth)
    {
        if (headDim <= 0 || headDim % 16 != 0)
            throw new CogVideoXException($"3D rotary embeddings need a head dim divisible by 16, got {headDim}");
        if (frames <= 0 || gridHeight <= 0 || gridWidth <= 0 || baseHeight <= 0 || baseWidth <= 0)
            throw new ArgumentOutOfRangeException(nameof(frames),
                $"grid {frames}×{gridHeight}×{gridWidth} and base {baseHeight}×{baseWidth} must be positive");
        var ((top, left), (bottom, right)) = CropRegion(gridHeight, gridWidth, baseHeight, baseWidth);

        // Python computes the end points in float64 (stop·(n−1)/n); torch.linspace takes them as float32.
        var gridT = Linspace(0f, (float)(frames * (frames - 1) / (double)frames), frames);
        var gridH = Linspace(top, (float)(bottom * (gridHeight - 1) / (double)gridHeight), gridHeight);
        var gridW = Linspace(left, (float)(right * (gridWidth - 1) / (double)gridWidth), gridWidth);
        return Tables(headDim, gridT, gridH, gridW);
    }

    /// <summary>
    /// The host tables of CogVideoX 1.5 (<c>get_3d_rotary_pos_embed</c> with grid_type "slice"): positions 0 … n − 1
    /// on each axis of a frames × gridHeight × gridWidth patch grid (frames in temporal patches). diffusers computes
    /// the spatial axes for the whole base grid and slices them; the rows it keeps are these.
    /// </summary>
    public static (float[] Cos, float[] Sin) ComputeSliced(int headDim, int frames, int gridHeight, int gridWidth)
    {
        if (headDim <= 0 || headDim % 16 != 0)
            throw new CogVideoXException($"3D rotary embeddings need a head dim divisible by 16, got {headDim}");
        if (frames <= 0 || gridHeight <= 0 || gridWidth <= 0)
            throw new ArgumentOutOfRangeException(nameof(frames), $"grid {frames}×{gridHeight}×{gridWidth} must be positive");
        static float[] Arange(int n)
        {
            var values = new float[n];
            for (int i = 0; i < n; i++) values[i] = i;
            return values;
        }
        return Tables(headDim, Arange(frames), Arange(gridHeight), Arange(gridWidth));
    }

    /// <summary>cos and sin tables [T·H·W, headDim] in token order from each axis' positions.</summary>
    private static (float[] Cos, float[] Sin) Tables(int headDim, float[] gridT, float[] gridH, float[] gridW)
    {
        int frames = gridT.Length, gridHeight = gridH.Length, gridWidth = gridW.Length;
        int dimT = headDim / 4, dimH = headDim / 8 * 3, dimW = headDim / 8 * 3;
        var (tCos, tSin) = Axis(dimT, gridT);
        var (hCos, hSin) = Axis(dimH, gridH);
        var (wCos, wSin) = Axis(dimW, gridW);

        long tokens = (long)frames * gridHeight * gridWidth;
        var cos = new float[tokens * headDim];
        var sin = new float[tokens * headDim];
        int row = 0;
        for (int f = 0; f < frames; f++)
            for (int h = 0; h < gridHeight; h++)
                for (int w = 0; w < gridWidth; w++, row++)
                {
                    Place(cos, row, headDim, tCos, f, dimT, hCos, h, dimH, wCos, w, dimW);
                    Place(sin, row, headDim, tSin, f, dimT, hSin, h, dimH, wSin, w, dimW);
                }
        return (cos, sin);
    }

    private static void Place(float[] table, int row, int headDim, float[] t, int f, int dimT, float[] h, int hi, int dimH,
        float[] w, int wi, int dimW)
    {
        var dst = table.AsSpan(row * headDim, headDim);
        t.AsSpan(f * dimT, dimT).CopyTo(dst);
        h.AsSpan(hi * dimH, dimH).CopyTo(dst[dimT..]);
        w.AsSpan(wi * dimW, dimW).CopyTo(dst[(dimT + dimH)..]);
    }

    /// <summary>
    /// diffusers' <c>get_resize_crop_region_for_grid</c>: the grid resized to fit the base grid (aspect kept), centred.
    /// Python's round() rounds halves to even, as Math.Round does by default.
    /// </summary>
    internal static ((int Top, int Left), (int Bottom, int Right)) CropRegion(int gridHeight, int gridWidth,
        int baseHeight, int baseWidth)
    {
        double th = baseHeight, tw = baseWidth;
        double r = (double)gridHeight / gridWidth;
        int resizeHeight, resizeWidth;
        if (r > th / tw)
        {
            resizeHeight = baseHeight;
            resizeWidth = (int)Math.Round(th / gridHeight * gridWidth);
        }
        else
        {
            resizeWidth = baseWidth;
            resizeHeight = (int)Math.Round(tw / gridWidth * gridHeight);
        }
        int top = (int)Math.Round((th - resizeHeight) / 2.0);
        int left = (int)Math.Round((tw - resizeWidth) / 2.0);
        return ((top, left), (top + resizeHeight, left + resizeWidth));
    }

    /// <summary>torch.linspace in float32 on the CPU: the first half counts up from start, the second down from end.</summary>
    internal static float[] Linspace(float start, float end, int steps)
    {
        var values = new float[steps];
        if (steps == 1)
        {
            values[0] = start;
            return values;
        }
        float step = (end - start) / (steps - 1);
        int halfway = steps / 2;
        for (int i = 0; i < steps; i++)
            values[i] = i < halfway ? start + step * i : end - step * (steps - i - 1);
        return values;
    }

    /// <summary>
    /// diffusers' <c>get_1d_rotary_pos_embed</c> (use_real, repeat_interleave_real, float32):
    /// θₖ = 1 / 10000^(2k/dim), cos/sin of p·θₖ, each value repeated twice → [positions, dim].
    /// </summary>
    private static (float[] Cos, float[] Sin) Axis(int dim, float[] positions)
    {
        int half = dim / 2;
        var freqs = new float[half];
        for (int k = 0; k < half; k++)
            freqs[k] = 1f / MathF.Pow(10000f, 2 * k / (float)dim);
        var cos = new float[positions.Length * dim];
        var sin = new float[positions.Length * dim];
        for (int i = 0; i < positions.Length; i++)
            for (int k = 0; k < half; k++)
            {
                // The product is rounded to float32 as torch.outer does; sin/cos of that float32 value are taken
                // in float64 and rounded once.
                float angle = positions[i] * freqs[k];
                float c = (float)Math.Cos(angle), s = (float)Math.Sin(angle);
                cos[i * dim + 2 * k] = cos[i * dim + 2 * k + 1] = c;
                sin[i * dim + 2 * k] = sin[i * dim + 2 * k + 1] = s;
            }
        return (cos, sin);
    }

    public void Dispose()
    {
        Cos.Dispose();
        Sin.Dispose();
    }
}
