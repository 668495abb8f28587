using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>
/// A step cache: the transformer asks it, around its blocks, whether the blocks' work of this call can be taken from
/// an earlier call (and the cache then writes that result into the hidden state). The hidden state is
/// [B, text + video, D], text tokens first. One instance serves one run's denoising loop, which sets
/// <see cref="ForceCompute"/> for the steps that must be exact and reads <see cref="LastReused"/> after each call.
/// The cached tensors live on the transformer's backend and are released by <see cref="Dispose"/>.
/// </summary>
public abstract class StepCache : IDisposable
{
    /// <summary>The decision threshold (what it is compared with is the cache's own).</summary>
    public double Threshold { get; }

    protected StepCache(double threshold)
    {
        if (!double.IsFinite(threshold) || threshold < 0)
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "a step cache's threshold is a finite number ≥ 0");
        Threshold = threshold;
    }

    /// <summary>The next call must run every block (its bookkeeping is done as for any computed call).</summary>
    public bool ForceCompute { get; set; }

    /// <summary>Whether the last call reused cached work instead of running (all or the remaining) blocks.</summary>
    public bool LastReused { get; protected set; }

    /// <summary>The last call's decision metric (NaN where none was computed: a forced step, or the first).</summary>
    public double LastMetric { get; protected set; } = double.NaN;

    /// <summary>
    /// Before block 0, with the timestep embedding [B, time_embed_dim] (before SiLU). True when the cache has added
    /// the result of all blocks to <paramref name="hidden"/>; the transformer then runs none of them.
    /// </summary>
    public abstract bool BeforeBlocks(Tensor timeEmbedding, Tensor hidden, int textLength);

    /// <summary>After block 0. True when the cache has added the result of the remaining blocks to <paramref name="hidden"/>.</summary>
    public abstract bool AfterFirstBlock(Tensor hidden, int textLength);

    /// <summary>After the last block of a call that ran them all.</summary>
    public abstract void AfterBlocks(Tensor hidden, int textLength);

    public abstract void Dispose();

    /// <summary>mean(|a − b|) / mean(|b|), computed in float32 on the tensors' backend (rows reduced there, summed in double here).</summary>
    internal static double RelativeL1(Tensor a, Tensor b)
    {
        using var difference = a.Sub(b);
        return AbsMean(difference) / AbsMean(b);
    }

    internal static double AbsMean(Tensor x)
    {
        using var f = x.To(DType.F32);
        using var negated = f.Neg();
        using var abs = f.Maximum(negated);
        int last = abs.Dim(-1);
        using var rows = abs.Reshape((int)(abs.ElementCount / last), last);
        using var means = rows.Mean();
        double sum = 0;
        foreach (var m in means.ToFloatArray()) sum += m;
        return sum / means.ElementCount;
    }

    /// <summary>x += y (same shapes).</summary>
    internal static void AddInPlace(Tensor x, Tensor y)
    {
        using var sum = x.Add(y);
        sum.CopyTo(x);
    }

    /// <summary>Stores a tensor the cache keeps across calls (taken out of the forward's tensor scope).</summary>
    protected static void Replace(ref Tensor? slot, Tensor? value)
    {
        slot?.Dispose();
        slot = value is null ? null : TensorScope.Detach(value);
    }
}

/// <summary>
/// TeaCache (Liu et al., "Timestep Embedding Tells: It's Time to Cache for Video Diffusion Model"), as its CogVideoX
/// code does it: the relative L1 distance of the timestep embedding from the previous call's, rescaled by a
/// polynomial fitted per model, accumulates; while the sum stays below the threshold the call reuses the residual
/// that the blocks added last time (to text and video tokens), else it runs the blocks and the sum restarts at 0.
/// Forced calls (the first and last steps) run the blocks and restart the sum.
/// </summary>
public sealed class TeaCache : StepCache
{
    private readonly double[] _coefficients;
    private Tensor? _previousEmbedding;
    private Tensor? _previousResidual;
    private Tensor? _input;
    private double _accumulated;

    /// <param name="threshold">rel_l1_thresh: TeaCache's published settings are 0.1 ("slow") and 0.2 ("fast").</param>
    /// <param name="coefficients">The rescale polynomial, highest power first (numpy's poly1d order).</param>
    public TeaCache(double threshold, IReadOnlyList<double> coefficients) : base(threshold)
    {
        ArgumentNullException.ThrowIfNull(coefficients);
        if (coefficients.Count == 0) throw new ArgumentException("the rescale polynomial needs at least one coefficient", nameof(coefficients));
        _coefficients = [.. coefficients];
    }

    /// <summary>The accumulated rescaled distance after the last call (0 after a computed call).</summary>
    public double Accumulated => _accumulated;

    public IReadOnlyList<double> Coefficients => _coefficients;

    /// <summary>The rescale polynomial at x (Horner, highest power first).</summary>
    public double Rescale(double x)
    {
        double y = 0;
        foreach (var c in _coefficients) y = y * x + c;
        return y;
    }

    public override bool BeforeBlocks(Tensor timeEmbedding, Tensor hidden, int textLength)
    {
        bool compute;
        LastMetric = double.NaN;
        if (ForceCompute || _previousEmbedding is null || _previousResidual is null)
        {
            compute = true;
            _accumulated = 0;
        }
        else
        {
            LastMetric = RelativeL1(timeEmbedding, _previousEmbedding);
            _accumulated += Rescale(LastMetric);
            compute = !(_accumulated < Threshold);
            if (compute) _accumulated = 0;
        }
        Replace(ref _previousEmbedding, timeEmbedding.Clone());
        LastReused = !compute;
        if (!compute)
        {
            AddInPlace(hidden, _previousResidual!);
            return true;
        }
        Replace(ref _input, hidden.Clone());
        return false;
    }

    public override bool AfterFirstBlock(Tensor hidden, int textLength) => false;

    public override void AfterBlocks(Tensor hidden, int textLength)
    {
        if (_input is null) throw new InvalidOperationException("TeaCache: AfterBlocks without BeforeBlocks");
        Replace(ref _previousResidual, hidden.Sub(_input));
        Replace(ref _input, null);
    }

    public override void Dispose()
    {
        Replace(ref _previousEmbedding, null);
        Replace(ref _previousResidual, null);
        Replace(ref _input, null);
    }
}

/// <summary>
/// First Block Cache (ParaAttention's, as diffusers' <c>apply_first_block_cache</c> does it): block 0 always runs;
/// the relative L1 distance of its residual on the video tokens from the residual of the last computed call decides.
/// Above the threshold the remaining blocks run (and their residual over block 0's output, text and video, is kept);
/// at or below it that kept residual is added to block 0's output instead. The whole batch (both CFG halves) decides
/// together, as in diffusers.
/// </summary>
public sealed class FirstBlockCache(double threshold) : StepCache(threshold)
{
    private Tensor? _input;
    private Tensor? _headResidual;
    private Tensor? _headOutput;
    private Tensor? _tailResidual;

    public override bool BeforeBlocks(Tensor timeEmbedding, Tensor hidden, int textLength)
    {
        LastReused = false;
        LastMetric = double.NaN;
        using var video = hidden.Narrow(1, textLength, hidden.Dim(1) - textLength);
        Replace(ref _input, video.Clone());
        return false;
    }

    public override bool AfterFirstBlock(Tensor hidden, int textLength)
    {
        if (_input is null) throw new InvalidOperationException("FirstBlockCache: AfterFirstBlock without BeforeBlocks");
        Tensor residual;
        using (var video = hidden.Narrow(1, textLength, hidden.Dim(1) - textLength))
            residual = video.Sub(_input);
        Replace(ref _input, null);
        bool compute = true;
        if (_headResidual is not null)
        {
            LastMetric = RelativeL1(residual, _headResidual);
            compute = ForceCompute || LastMetric > Threshold || _tailResidual is null;
        }
        LastReused = !compute;
        if (!compute)
        {
            residual.Dispose();
            AddInPlace(hidden, _tailResidual!);
            return true;
        }
        Replace(ref _headResidual, residual);
        Replace(ref _headOutput, hidden.Clone());
        return false;
    }

    public override void AfterBlocks(Tensor hidden, int textLength)
    {
        if (_headOutput is null) throw new InvalidOperationException("FirstBlockCache: AfterBlocks without AfterFirstBlock");
        Replace(ref _tailResidual, hidden.Sub(_headOutput));
        Replace(ref _headOutput, null);
    }

    public override void Dispose()
    {
        Replace(ref _input, null);
        Replace(ref _headResidual, null);
        Replace(ref _headOutput, null);
        Replace(ref _tailResidual, null);
    }
}

/// <summary>
/// TeaCache's published rescale polynomials for CogVideoX (highest power first), from TeaCache commit 7c10efc:
/// <c>TeaCache4CogVideoX1.5/teacache_sample_video.py</c> (<c>coefficients_dict</c>); the 2b and 5b rows are also in
/// <c>eval/teacache/experiments/cogvideox.py</c>, chosen there by <c>use_rotary_positional_embeddings</c>.
/// </summary>
public static class TeaCacheCoefficients
{
    public static readonly double[] CogVideoX2b = [-3.10658903e+01, 2.54732368e+01, -5.92380459e+00, 1.75769064e+00, -3.61568434e-03];

    /// <summary>CogVideoX-5b and CogVideoX-5b-I2V.</summary>
    public static readonly double[] CogVideoX5b = [-1.53880483e+03, 8.43202495e+02, -1.34363087e+02, 7.97131516e+00, -5.23162339e-02];

    public static readonly double[] CogVideoX15_5b = [2.50210439e+02, -1.65061612e+02, 3.57804877e+01, -7.81551492e-01, 3.58559703e-02];

    public static readonly double[] CogVideoX15_5bI2V = [1.22842302e+02, -1.04088754e+02, 2.62981677e+01, -3.06009921e-01, 3.71213220e-02];

    /// <summary>
    /// The polynomial for a transformer config, and the model it was published for: sincos positions → 2b; rotary →
    /// 5b; a temporal patch (patch_size_t) → 1.5, its I2V row when the latents carry the image (in_channels twice
    /// out_channels).
    /// </summary>
    public static (double[] Coefficients, string Model) For(TransformerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (!config.UseRotaryPositionalEmbeddings) return (CogVideoX2b, "CogVideoX-2b");
        bool imageToVideo = config.OutChannels is { } o && config.InChannels == 2 * o;
        if (config.PatchSizeT is not null)
            return imageToVideo ? (CogVideoX15_5bI2V, "CogVideoX1.5-5B-I2V") : (CogVideoX15_5b, "CogVideoX1.5-5B");
        return (CogVideoX5b, imageToVideo ? "CogVideoX-5b-I2V" : "CogVideoX-5b");
    }
}
