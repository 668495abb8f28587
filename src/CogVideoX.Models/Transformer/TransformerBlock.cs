using CogVideoX.Engine;
using CogVideoX.Models.Modules;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>
/// One <c>transformer_blocks.{i}</c> (diffusers' <c>CogVideoXBlock</c>): adaptive LayerNorm-Zero, joint attention
/// over [text; video] tokens with LayerNorm on queries and keys (and rotary positions on the video tokens, 5b style),
/// a gated residual, then the same around a GELU feed-forward. The block holds all of its own weights, so a memory
/// policy can move blocks to the device one at a time (their storage swapped, <see cref="Module.Bind"/>).
/// Its four projections (to_q/to_k/to_v stacked, to_out.0, ff.net.0.proj, ff.net.2) are held exactly or — built with
/// <see cref="ProjectionWeights.Fp8"/> — as FP8 codes and scales only (<see cref="Module.QuantizedFp8"/>).
/// </summary>
public sealed class TransformerBlock : Module
{
    private const float QueryKeyNormEps = 1e-6f;

    private readonly LayerNormZero _norm1;
    private readonly LayerNormZero _norm2;
    private readonly Projection _qkvWeight;
    private readonly Parameter? _qkvBias;
    private readonly Parameter _normQWeight;
    private readonly Parameter _normQBias;
    private readonly Parameter _normKWeight;
    private readonly Parameter _normKBias;
    private readonly Projection _outWeight;
    private readonly Parameter _outBias;
    private readonly Projection _ffInWeight;
    private readonly Parameter _ffInBias;
    private readonly Projection _ffOutWeight;
    private readonly Parameter _ffOutBias;
    private readonly Activation _ffActivation;
    private readonly int _heads;
    private readonly int _headDim;
    private BlockFp8Weights? _fp8;

    [ThreadStatic] private static int t_unfusedFp8Inputs;

    internal TransformerBlock(TransformerConfig c, Activation ffActivation, ProjectionWeights projections = ProjectionWeights.Exact)
    {
        Projections = projections;
        _heads = c.NumAttentionHeads;
        _headDim = c.AttentionHeadDim;
        _ffActivation = ffActivation;
        int d = c.InnerDim, inner = 4 * d;
        _norm1 = Child("norm1", new LayerNormZero(c));
        _norm2 = Child("norm2", new LayerNormZero(c));
        // to_q/to_k/to_v run as one GEMM: their weights are held stacked.
        _qkvWeight = DeclareProjection(["attn1.to_q.weight", "attn1.to_k.weight", "attn1.to_v.weight"], d, d);
        if (c.AttentionBias)
            _qkvBias = Stacked(["attn1.to_q.bias", "attn1.to_k.bias", "attn1.to_v.bias"], d);
        _normQWeight = Weight("attn1.norm_q.weight", _headDim);
        _normQBias = Weight("attn1.norm_q.bias", _headDim);
        _normKWeight = Weight("attn1.norm_k.weight", _headDim);
        _normKBias = Weight("attn1.norm_k.bias", _headDim);
        _outWeight = DeclareProjection(["attn1.to_out.0.weight"], d, d);
        _outBias = Weight("attn1.to_out.0.bias", d);
        _ffInWeight = DeclareProjection(["ff.net.0.proj.weight"], inner, d);
        _ffInBias = Weight("ff.net.0.proj.bias", inner);
        _ffOutWeight = DeclareProjection(["ff.net.2.weight"], d, inner);
        _ffOutBias = Weight("ff.net.2.bias", d);
    }

    /// <summary>How the four projections' weights are held: exactly (FP8 copies made beside them on demand) or as FP8 only.</summary>
    public ProjectionWeights Projections { get; }

    /// <summary>One projection's weight as this block holds it: the exact parameter, or the FP8 codes and scales.</summary>
    private Projection DeclareProjection(string[] names, int outFeatures, int inFeatures)
    {
        if (Projections == ProjectionWeights.Fp8)
        {
            var (codes, scales) = QuantizedFp8(names, outFeatures, inFeatures);
            return new Projection(null, codes, scales);
        }
        return new Projection(names.Length == 1 ? Weight(names[0], outFeatures, inFeatures) : Stacked(names, outFeatures, inFeatures), null, null);
    }

    /// <summary>
    /// Runs the block on <paramref name="hidden"/> [B, S, D] (the first <paramref name="textLength"/> tokens are text),
    /// updating it in place. <paramref name="activatedEmbedding"/> is SiLU(timestep embedding) [B, time_embed_dim].
    /// <paramref name="attentionMode"/> chooses exact or 8-bit self-attention.
    /// </summary>
    /// <paramref name="linears"/> runs the attention and feed-forward projections (to_q/to_k/to_v, to_out,
    /// ff.net.0.proj, ff.net.2) exactly or as FP8 linears: with exact projections their weights are quantized on first
    /// use and kept until <see cref="ReleaseFp8"/> or the weights change; FP8-only projections run FP8 linears alone.
    public void Forward(Tensor hidden, int textLength, Tensor activatedEmbedding, RotaryTables? rotary,
        AttentionMode attentionMode = AttentionMode.Exact, LinearMode linears = LinearMode.Exact)
    {
        if (linears == LinearMode.Exact && Projections == ProjectionWeights.Fp8)
            throw new CogVideoXException(
                $"transformer block '{Path}': its projections are held as FP8 only (loaded for --linear fp8 with no exact steps), so it cannot run " +
                "exact linears; load the transformer with exact projections for exact steps (--exact-steps N keeps both)");
        using var scope = new TensorScope();
        using var held = linears == LinearMode.Fp8 && Projections == ProjectionWeights.Fp8 ? HeldFp8() : null;
        var fp8 = linears != LinearMode.Fp8 ? null : held ?? Fp8Beside();
        int b = hidden.Dim(0), s = hidden.Dim(1), d = hidden.Dim(2);

        // Under FP8 linears the adaptive norms write the QKV and ff.net.0 projections' FP8 inputs themselves.
        bool fusedFp8 = fp8 is not null && t_unfusedFp8Inputs == 0;
        Tensor gate, textGate, attention;
        if (!fusedFp8)
        {
            var normed = Tensor.Empty(hidden.Backend, hidden.DType, b, s, d);
            (gate, textGate) = _norm1.Apply(hidden, normed, textLength, activatedEmbedding);
            using (var qkv = Project(normed, _qkvWeight, fp8?.Qkv, _qkvBias)) attention = Attention(qkv, rotary, attentionMode, fp8);
            normed.Dispose();
        }
        else
        {
            using var qkv = NormedFp8Linear(_norm1, hidden, textLength, activatedEmbedding, fp8!.Qkv, _qkvBias, Activation.None, out gate, out textGate);
            attention = Attention(qkv, rotary, attentionMode, fp8);
        }
        AddGated(hidden, attention, textLength, gate, textGate);
        attention.Dispose();

        // The feed-forward sees text and video tokens in one GEMM; only its gates differ.
        Tensor inner;
        if (!fusedFp8)
        {
            var normed = Tensor.Empty(hidden.Backend, hidden.DType, b, s, d);
            (gate, textGate) = _norm2.Apply(hidden, normed, textLength, activatedEmbedding);
            inner = Project(normed, _ffInWeight, fp8?.FeedForwardIn, _ffInBias, _ffActivation);
            normed.Dispose();
        }
        else
        {
            inner = NormedFp8Linear(_norm2, hidden, textLength, activatedEmbedding, fp8!.FeedForwardIn, _ffInBias, _ffActivation, out gate, out textGate);
        }
        var ff = Project(inner, _ffOutWeight, fp8?.FeedForwardOut, _ffOutBias);
        inner.Dispose();
        AddGated(hidden, ff, textLength, gate, textGate);
    }

    /// <summary>
    /// An adaptive norm of hidden [B, S, D] and the FP8 linear after it, the norm writing the linear's FP8 input (codes
    /// [B, S, D], scales [B, S]) instead of a half-type tensor that the linear would read back to quantize: the same
    /// codes, so the same result as the norm then <see cref="Ops.LinearFp8(Tensor, Fp8Weight, Tensor?, Activation)"/>.
    /// </summary>
    private static Tensor NormedFp8Linear(LayerNormZero norm, Tensor hidden, int textLength, Tensor activatedEmbedding, Fp8Weight weight,
        Parameter? bias, Activation activation, out Tensor gate, out Tensor textGate)
    {
        using var input = Fp8Activation.Empty(hidden.Backend, hidden.DType, hidden.ShapeArray());
        (gate, textGate) = norm.Apply(hidden, input, textLength, activatedEmbedding);
        return input.LinearFp8(weight, bias?.Value, activation);
    }

    /// <summary>Self-attention over all tokens from their to_q/to_k/to_v projection qkv [B, S, 3·D]; returns to_out's result [B, S, D].</summary>
    private Tensor Attention(Tensor qkv, RotaryTables? rotary, AttentionMode mode, BlockFp8Weights? fp8)
    {
        int b = qkv.Dim(0), s = qkv.Dim(1);
        using var split = qkv.Reshape(b, s, 3, _heads, _headDim);
        using var qHeads = split.Select(2, 0).Permute(0, 2, 1, 3);
        using var kHeads = split.Select(2, 1).Permute(0, 2, 1, 3);
        using var v = split.Select(2, 2).Permute(0, 2, 1, 3);
        // Per-head LayerNorm over head_dim, then (5b style) the video tokens after the text ones rotated, in one op;
        // its output is a contiguous [B, H, S, hd].
        using var q = NormQueryKey(qHeads, _normQWeight, _normQBias, rotary);
        using var k = NormQueryKey(kHeads, _normKWeight, _normKBias, rotary);
        // The kernel writes heads straight into [B, S, H, hd] order, so merging heads is a free reshape.
        using var merged = Tensor.Empty(qkv.Backend, qkv.DType, b, s, _heads, _headDim);
        float scale = (float)(1.0 / Math.Sqrt(_headDim));
        using (var heads = merged.Permute(0, 2, 1, 3))
        {
            if (mode == AttentionMode.Sage8) Ops.Sage8AttentionInto(q, k, v, scale, heads);
            else Ops.AttentionInto(q, k, v, null, scale, heads);
        }
        using var flat = merged.Reshape(b, s, _heads * _headDim);
        return Project(flat, _outWeight, fp8?.Out, _outBias);
    }

    /// <summary>
    /// Until disposed, FP8 blocks run on this thread feed their QKV and ff.net.0 projections as before the norms
    /// quantized (the norm in the model's dtype, then the linear quantizing it): the reference the fused path must equal
    /// bit for bit (tests).
    /// </summary>
    internal static IDisposable UnfusedFp8Inputs()
    {
        t_unfusedFp8Inputs++;
        return new UnfusedScope();
    }

    private sealed class UnfusedScope : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            t_unfusedFp8Inputs--;
        }
    }

    /// <summary>One projection: the FP8 linear when its quantized weight is given, else the exact one.</summary>
    private static Tensor Project(Tensor x, Projection weight, Fp8Weight? quantized, Parameter? bias, Activation activation = Activation.None) =>
        quantized is null ? x.Linear(weight.Exact!.Value, bias?.Value, activation) : x.LinearFp8(quantized, bias?.Value, activation);

    /// <summary>
    /// Exact projections: their weights quantized to FP8 E4M3 (one scale per output channel) on the weights' backend,
    /// made now and kept beside them until <see cref="ReleaseFp8"/> (whoever swaps the block's weights releases them
    /// first). FP8-only projections: nothing to do, their codes are the block's weights.
    /// </summary>
    public void PrepareFp8()
    {
        if (Projections == ProjectionWeights.Exact) Fp8Beside();
    }

    private BlockFp8Weights Fp8Beside() =>
        _fp8 ??= BlockFp8Weights.Quantize(_qkvWeight.Exact!.Value, _outWeight.Exact!.Value, _ffInWeight.Exact!.Value, _ffOutWeight.Exact!.Value);

    /// <summary>The FP8-only projections' codes and scales as <see cref="Fp8Weight"/>s (new references to the bound tensors).</summary>
    private BlockFp8Weights HeldFp8() => BlockFp8Weights.Of(_qkvWeight.Fp8(), _outWeight.Fp8(), _ffInWeight.Fp8(), _ffOutWeight.Fp8());

    /// <summary>
    /// Bytes of FP8 copies held now beside the exact weights (0 for FP8-only projections, whose codes and scales are
    /// the block's weights and count in its bound bytes).
    /// </summary>
    public long Fp8Bytes => _fp8?.Bytes ?? 0;

    /// <summary>Releases the FP8 copies made beside exact weights (the exact ones stay; FP8-only projections keep theirs).</summary>
    public void ReleaseFp8()
    {
        _fp8?.Dispose();
        _fp8 = null;
    }

    /// <summary>Bytes the quantized projections of one block take: one per weight, four per output channel.</summary>
    public static long Fp8BytesFor(TransformerConfig c)
    {
        long d = c.InnerDim, inner = 4 * d;
        return Fp8Weight.BytesFor(3 * d, d) + Fp8Weight.BytesFor(d, d) + Fp8Weight.BytesFor(inner, d) + Fp8Weight.BytesFor(d, inner);
    }

    /// <summary>
    /// Bytes one block's weights take in <paramref name="dtype"/> with its projections held as <paramref name="projections"/>
    /// says (from its declared parameters: what loading it puts on the device).
    /// </summary>
    public static long BytesFor(TransformerConfig c, DType dtype, ProjectionWeights projections)
    {
        TransformerConfigCheck.Validate(c, "transformer config");
        using var block = new TransformerBlock(c, Activation.GeluTanh, projections);
        return block.Bytes(dtype);
    }

    /// <summary>A projection's weight: <see cref="Exact"/>, or <see cref="Codes"/> and <see cref="Scales"/> (FP8 only).</summary>
    private sealed record Projection(Parameter? Exact, Parameter? Codes, Parameter? Scales)
    {
        public Fp8Weight Fp8() => new(Codes!.Value.Alias(), Scales!.Value.Alias());
    }

    public override void Dispose()
    {
        ReleaseFp8();
        base.Dispose();
    }

    private static Tensor NormQueryKey(Tensor heads, Parameter weight, Parameter bias, RotaryTables? rotary) =>
        rotary is null
            ? heads.LayerNorm(weight.Value, bias.Value, QueryKeyNormEps)
            : heads.LayerNormRotary(weight.Value, bias.Value, QueryKeyNormEps, rotary.Cos, rotary.Sin);

    /// <summary>hidden += gate · update, with the video gate on the video tokens and the text gate on the text tokens.</summary>
    private static void AddGated(Tensor hidden, Tensor update, int textLength, Tensor gate, Tensor textGate)
    {
        AddGated(hidden, update, textLength, hidden.Dim(1) - textLength, gate);
        AddGated(hidden, update, 0, textLength, textGate);
    }

    private static void AddGated(Tensor hidden, Tensor update, int start, int length, Tensor gate)
    {
        if (length == 0) return;
        using var target = hidden.Narrow(1, start, length);
        using var part = update.Narrow(1, start, length);
        using var g = gate.Unsqueeze(1);
        target.AddMulInto(part, g, target);
    }
}

/// <summary>How a block's attention and feed-forward projections run.</summary>
public enum LinearMode
{
    /// <summary>GEMMs in the model's dtype (the default).</summary>
    Exact,

    /// <summary>FP8 E4M3 operands, per-channel weight scales and per-token activation scales (<see cref="Ops.LinearFp8"/>).</summary>
    Fp8,
}

/// <summary>How a transformer holds its blocks' four projection weights (to_q/to_k/to_v, to_out.0, ff.net.0.proj, ff.net.2).</summary>
public enum ProjectionWeights
{
    /// <summary>In the model's dtype, as the checkpoint has them; FP8 copies are made beside them when FP8 linears run.</summary>
    Exact,

    /// <summary>
    /// As FP8 E4M3 codes with one float32 scale per output channel only, quantized as they are loaded (the exact
    /// weights are never kept): about half the bytes in F16/BF16. Only FP8 linears can run on them.
    /// </summary>
    Fp8,
}

/// <summary>A block's four projection weights quantized to FP8; owns them.</summary>
internal sealed class BlockFp8Weights : IDisposable
{
    private BlockFp8Weights(Fp8Weight[] weights)
    {
        Qkv = weights[0];
        Out = weights[1];
        FeedForwardIn = weights[2];
        FeedForwardOut = weights[3];
    }

    public Fp8Weight Qkv { get; }

    public Fp8Weight Out { get; }

    public Fp8Weight FeedForwardIn { get; }

    public Fp8Weight FeedForwardOut { get; }

    public long Bytes => Qkv.Bytes + Out.Bytes + FeedForwardIn.Bytes + FeedForwardOut.Bytes;

    /// <summary>Takes over four weights made elsewhere (to_q/k/v, to_out, ff in, ff out).</summary>
    public static BlockFp8Weights Of(params Fp8Weight[] weights) => new(weights);

    public static BlockFp8Weights Quantize(params Tensor[] weights)
    {
        var made = new List<Fp8Weight>();
        try
        {
            foreach (var w in weights) made.Add(w.QuantizeFp8());
            return new BlockFp8Weights(made.ToArray());
        }
        catch
        {
            foreach (var m in made) m.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        Qkv.Dispose();
        Out.Dispose();
        FeedForwardIn.Dispose();
        FeedForwardOut.Dispose();
    }
}
