using CogVideoX.Engine;
using CogVideoX.Models.Blocks;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>
/// One <c>transformer_blocks.{i}</c> (diffusers' <c>CogVideoXBlock</c>): adaptive LayerNorm-Zero, joint attention
/// over [text; video] tokens with LayerNorm on queries and keys (and rotary positions on the video tokens, 5b style),
/// a gated residual, then the same around a GELU feed-forward. The block holds all of its own weights, so a memory
/// policy can move blocks to the device one at a time (<see cref="Weights"/>, <see cref="Rebind"/>).
/// </summary>
public sealed class TransformerBlock : IStreamableBlock<TransformerBlock>, IDisposable
{
    private const float QueryKeyNormEps = 1e-6f;

    private readonly ParameterSet _parameters = new();
    private readonly LayerNormZero _norm1;
    private readonly LayerNormZero _norm2;
    private readonly Tensor _qkvWeight;
    private readonly Tensor? _qkvBias;
    private readonly Tensor _normQWeight;
    private readonly Tensor _normQBias;
    private readonly Tensor _normKWeight;
    private readonly Tensor _normKBias;
    private readonly Tensor _outWeight;
    private readonly Tensor _outBias;
    private readonly Tensor _ffInWeight;
    private readonly Tensor _ffInBias;
    private readonly Tensor _ffOutWeight;
    private readonly Tensor _ffOutBias;
    private readonly Activation _ffActivation;
    private readonly int _heads;
    private readonly int _headDim;

    internal TransformerBlock(WeightScope w, TransformerConfig c, Activation ffActivation)
    {
        _heads = c.NumAttentionHeads;
        _headDim = c.AttentionHeadDim;
        _ffActivation = ffActivation;
        int d = c.InnerDim, inner = 4 * d;
        try
        {
            _norm1 = new LayerNormZero(w.Scope("norm1"), c);
            _norm2 = new LayerNormZero(w.Scope("norm2"), c);
            var attn = w.Scope("attn1");
            // to_q/to_k/to_v run as one GEMM: their weights are stacked once here.
            _qkvWeight = _parameters.Keep(Stacked(attn, "weight", d, d));
            if (c.AttentionBias)
                _qkvBias = _parameters.Keep(Stacked(attn, "bias", d));
            _normQWeight = _parameters.Load(attn, "norm_q.weight", _headDim);
            _normQBias = _parameters.Load(attn, "norm_q.bias", _headDim);
            _normKWeight = _parameters.Load(attn, "norm_k.weight", _headDim);
            _normKBias = _parameters.Load(attn, "norm_k.bias", _headDim);
            _outWeight = _parameters.Load(attn, "to_out.0.weight", d, d);
            _outBias = _parameters.Load(attn, "to_out.0.bias", d);
            _ffInWeight = _parameters.Load(w, "ff.net.0.proj.weight", inner, d);
            _ffInBias = _parameters.Load(w, "ff.net.0.proj.bias", inner);
            _ffOutWeight = _parameters.Load(w, "ff.net.2.weight", d, inner);
            _ffOutBias = _parameters.Load(w, "ff.net.2.bias", d);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The same block over other tensors (see <see cref="Rebind"/>); fields in the order of <see cref="Weights"/>.</summary>
    private TransformerBlock(TransformerBlock source, Func<Tensor, Tensor> place)
    {
        _heads = source._heads;
        _headDim = source._headDim;
        _ffActivation = source._ffActivation;
        try
        {
            _norm1 = source._norm1.Rebind(place);
            _norm2 = source._norm2.Rebind(place);
            Tensor Keep(Tensor t) => _parameters.Keep(place(t));
            _qkvWeight = Keep(source._qkvWeight);
            if (source._qkvBias is not null) _qkvBias = Keep(source._qkvBias);
            _normQWeight = Keep(source._normQWeight);
            _normQBias = Keep(source._normQBias);
            _normKWeight = Keep(source._normKWeight);
            _normKBias = Keep(source._normKBias);
            _outWeight = Keep(source._outWeight);
            _outBias = Keep(source._outBias);
            _ffInWeight = Keep(source._ffInWeight);
            _ffInBias = Keep(source._ffInBias);
            _ffOutWeight = Keep(source._ffOutWeight);
            _ffOutBias = Keep(source._ffOutBias);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The block's weights: norm1's, norm2's, then its own in load order (the same order for every block).</summary>
    public IReadOnlyList<Tensor> Weights =>
        [.. _norm1.Parameters.Tensors, .. _norm2.Parameters.Tensors, .. _parameters.Tensors];

    /// <summary>This block's structure over <c>place(w)</c> for each of <see cref="Weights"/> (e.g. a device slot).</summary>
    public TransformerBlock Rebind(Func<Tensor, Tensor> place) => new(this, place);

    /// <summary>Bytes of weights this block holds on its backend.</summary>
    public long WeightBytes => _parameters.Bytes + _norm1.Parameters.Bytes + _norm2.Parameters.Bytes;

    internal IEnumerable<string> NamesRead =>
        _norm1.Parameters.NamesRead.Concat(_norm2.Parameters.NamesRead).Concat(_parameters.NamesRead);

    internal static void DescribeParameters(TransformerConfig c, string prefix, List<(string Name, int[] Shape)> into)
    {
        int d = c.InnerDim, inner = 4 * d, hd = c.AttentionHeadDim;
        LayerNormZero.DescribeParameters(c, $"{prefix}.norm1", into);
        LayerNormZero.DescribeParameters(c, $"{prefix}.norm2", into);
        foreach (var proj in new[] { "to_q", "to_k", "to_v" })
        {
            into.Add(($"{prefix}.attn1.{proj}.weight", [d, d]));
            if (c.AttentionBias) into.Add(($"{prefix}.attn1.{proj}.bias", [d]));
        }
        into.Add(($"{prefix}.attn1.norm_q.weight", [hd]));
        into.Add(($"{prefix}.attn1.norm_q.bias", [hd]));
        into.Add(($"{prefix}.attn1.norm_k.weight", [hd]));
        into.Add(($"{prefix}.attn1.norm_k.bias", [hd]));
        into.Add(($"{prefix}.attn1.to_out.0.weight", [d, d]));
        into.Add(($"{prefix}.attn1.to_out.0.bias", [d]));
        into.Add(($"{prefix}.ff.net.0.proj.weight", [inner, d]));
        into.Add(($"{prefix}.ff.net.0.proj.bias", [inner]));
        into.Add(($"{prefix}.ff.net.2.weight", [d, inner]));
        into.Add(($"{prefix}.ff.net.2.bias", [d]));
    }

    /// <summary>to_q, to_k, to_v's <paramref name="suffix"/> tensors concatenated along dim 0.</summary>
    private Tensor Stacked(WeightScope attn, string suffix, params int[] shape)
    {
        using var q = _parameters.LoadTransient(attn, $"to_q.{suffix}", shape);
        using var k = _parameters.LoadTransient(attn, $"to_k.{suffix}", shape);
        using var v = _parameters.LoadTransient(attn, $"to_v.{suffix}", shape);
        return Ops.Concat(0, q, k, v);
    }

    /// <summary>
    /// Runs the block on <paramref name="hidden"/> [B, S, D] (the first <paramref name="textLength"/> tokens are text),
    /// updating it in place. <paramref name="activatedEmbedding"/> is SiLU(timestep embedding) [B, time_embed_dim].
    /// </summary>
    public void Forward(Tensor hidden, int textLength, Tensor activatedEmbedding, RotaryTables? rotary)
    {
        using var scope = new TensorScope();
        int b = hidden.Dim(0), s = hidden.Dim(1), d = hidden.Dim(2);

        var normed = Tensor.Empty(hidden.Backend, hidden.DType, b, s, d);
        var (gate, textGate) = _norm1.Apply(hidden, normed, textLength, activatedEmbedding);
        var attention = Attention(normed, textLength, rotary);
        normed.Dispose();
        AddGated(hidden, attention, textLength, gate, textGate);
        attention.Dispose();

        // The feed-forward sees text and video tokens in one GEMM; only its gates differ.
        normed = Tensor.Empty(hidden.Backend, hidden.DType, b, s, d);
        (gate, textGate) = _norm2.Apply(hidden, normed, textLength, activatedEmbedding);
        var inner = normed.Linear(_ffInWeight, _ffInBias, _ffActivation);
        normed.Dispose();
        var ff = inner.Linear(_ffOutWeight, _ffOutBias);
        inner.Dispose();
        AddGated(hidden, ff, textLength, gate, textGate);
    }

    /// <summary>Self-attention over all tokens of x [B, S, D]; returns to_out's result [B, S, D].</summary>
    private Tensor Attention(Tensor x, int textLength, RotaryTables? rotary)
    {
        int b = x.Dim(0), s = x.Dim(1);
        using var qkv = x.Linear(_qkvWeight, _qkvBias);
        using var split = qkv.Reshape(b, s, 3, _heads, _headDim);
        using var qHeads = split.Select(2, 0).Permute(0, 2, 1, 3);
        using var kHeads = split.Select(2, 1).Permute(0, 2, 1, 3);
        using var v = split.Select(2, 2).Permute(0, 2, 1, 3);
        // Per-head LayerNorm over head_dim; its output is a contiguous [B, H, S, hd].
        using var q = qHeads.LayerNorm(_normQWeight, _normQBias, QueryKeyNormEps);
        using var k = kHeads.LayerNorm(_normKWeight, _normKBias, QueryKeyNormEps);
        if (rotary is not null)
        {
            ApplyRotary(q, textLength, rotary);
            ApplyRotary(k, textLength, rotary);
        }
        // The kernel writes heads straight into [B, S, H, hd] order, so merging heads is a free reshape.
        using var merged = Tensor.Empty(x.Backend, x.DType, b, s, _heads, _headDim);
        using (var heads = merged.Permute(0, 2, 1, 3))
            Ops.AttentionInto(q, k, v, null, (float)(1.0 / Math.Sqrt(_headDim)), heads);
        using var flat = merged.Reshape(b, s, _heads * _headDim);
        return flat.Linear(_outWeight, _outBias);
    }

    /// <summary>Rotates the video tokens (after the text tokens) of x [B, H, S, hd] in place.</summary>
    private static void ApplyRotary(Tensor x, int textLength, RotaryTables rotary)
    {
        using var video = x.Narrow(2, textLength, x.Dim(2) - textLength);
        video.RotaryInto(rotary.Cos, rotary.Sin, video);
    }

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

    public void Dispose()
    {
        _norm1?.Dispose();
        _norm2?.Dispose();
        _parameters.Dispose();
    }
}
