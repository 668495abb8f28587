using CogVideoX.Engine;
using CogVideoX.Models.Modules;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>
/// <c>patch_embed</c> (diffusers' <c>CogVideoXPatchEmbed</c>): each frame's p×p latent patches projected to the
/// hidden size (CogVideoX 1.0: the checkpoint's stride-p convolution, run as one GEMM over gathered patches;
/// CogVideoX 1.5: p_t frames × p × p patches through a linear layer, <c>patch_size_t</c>), <c>text_proj</c> for the
/// text embeddings, text tokens first, and — 2b style — the sincos positional table added to the video tokens.
/// With <c>use_learned_positional_embeddings</c> (CogVideoX-5b-I2V, besides its rotary positions)
/// the checkpoint's <c>pos_embedding</c> [1, text + video tokens of the config's sample size, D] is added to all tokens
/// when a call has the sample's frame count, and — as diffusers does — the sincos table of the call's grid (text rows
/// zero) for any other frame count; another height or width is refused (the table covers one size).
/// </summary>
internal sealed class PatchEmbedding : Module
{
    private readonly Parameter _projWeight;
    private readonly Parameter? _projBias;
    private readonly Parameter _textWeight;
    private readonly Parameter _textBias;
    private readonly Parameter? _learned;
    private readonly TransformerConfig _config;
    private (int Frames, int Height, int Width) _positionsKey;
    private Tensor? _positions;

    public PatchEmbedding(TransformerConfig c)
    {
        _config = c;
        int d = c.InnerDim, p = c.PatchSize;
        if (c.PatchSizeT is { } pt)
        {
            // CogVideoX 1.5: an nn.Linear over (C, p_t, ky, kx) features, always with a bias (patch_bias only
            // concerns 1.0's convolution).
            _projWeight = Weight("proj.weight", d, c.InChannels * pt * p * p);
            _projBias = Weight("proj.bias", d);
        }
        else
        {
            // A stride-p p×p convolution on non-overlapping patches is a GEMM with the kernel flattened (C, ky, kx).
            _projWeight = Reshaped("proj.weight", [d, c.InChannels, p, p], [d, c.InChannels * p * p]);
            if (c.PatchBias)
                _projBias = Weight("proj.bias", d);
        }
        _textWeight = Weight("text_proj.weight", d, c.TextEmbedDim);
        _textBias = Weight("text_proj.bias", d);
        if (c.UseLearnedPositionalEmbeddings)
            _learned = Weight("pos_embedding", 1, c.MaxTextSeqLength + LearnedVideoTokens(c), d);
    }

    /// <summary>Video tokens of the config's sample size: the rows of the learned table after the text's.</summary>
    internal static int LearnedVideoTokens(TransformerConfig c) =>
        (c.SampleHeight / c.PatchSize) * (c.SampleWidth / c.PatchSize) * ((c.SampleFrames - 1) / c.TemporalCompressionRatio + 1);

    /// <summary>Whether a call with <paramref name="latentFrames"/> latent frames adds the learned table as stored.</summary>
    internal static bool UsesLearnedTable(TransformerConfig c, int latentFrames) =>
        c.UseLearnedPositionalEmbeddings && (latentFrames - 1) * c.TemporalCompressionRatio + 1 == c.SampleFrames;

    /// <summary>
    /// latents [B, F, C, H, W], text [B, T, text_embed_dim] → tokens [B, T + (F/p_t)·(H/p)·(W/p), D] (p_t = 1 for
    /// CogVideoX 1.0; for 1.5 the caller has padded F to a multiple of p_t).
    /// </summary>
    public Tensor Forward(Tensor latents, Tensor text)
    {
        using var scope = new TensorScope();
        int b = latents.Dim(0), f = latents.Dim(1), ch = latents.Dim(2), p = _config.PatchSize;
        int gh = latents.Dim(3) / p, gw = latents.Dim(4) / p;
        Tensor patches;
        if (_config.PatchSizeT is { } pt)
        {
            // [B, F/p_t, p_t, C, h, p, w, p] → [B, F/p_t, h, w, C, p_t, p, p]: one row per patch in token order
            // (frame group, row, column), features (C, p_t, ky, kx) as diffusers flattens them.
            patches = latents.Reshape(b, f / pt, pt, ch, gh, p, gw, p).Permute(0, 1, 4, 6, 3, 2, 5, 7)
                .Reshape(b, f / pt * gh * gw, ch * pt * p * p);
        }
        else
        {
            // [B, F, C, h, p, w, p] → [B, F, h, w, C, p, p]: one row per patch in token order (frame, row, column).
            patches = latents.Reshape(b, f, ch, gh, p, gw, p).Permute(0, 1, 3, 5, 2, 4, 6).Reshape(b, f * gh * gw, ch * p * p);
        }
        var video = patches.Linear(_projWeight.Value, _projBias?.Value);
        var textTokens = text.Linear(_textWeight.Value, _textBias.Value);
        if (_learned is not null && UsesLearnedTable(_config, f))
        {
            // The learned table spans text and video tokens: [1, T + N, D] → its text rows and its video rows.
            int t = textTokens.Dim(1);
            var table = _learned.Value.Reshape(_learned.Value.Dim(1), _config.InnerDim);
            textTokens = textTokens.Add(table.Narrow(0, 0, t));
            video = video.Add(table.Narrow(0, t, table.Dim(0) - t));
        }
        else if (!_config.UseRotaryPositionalEmbeddings || _learned is not null)
        {
            video = video.Add(Positions(f, gh, gw, video.Backend, video.DType));
        }
        return scope.Keep(Ops.Concat(1, textTokens, video));
    }

    /// <summary>
    /// The sincos table for this grid. diffusers builds it for the config's sample size at load and again in forward
    /// when a call's size differs; both give the table of the call's own grid, so one table is kept per grid size.
    /// </summary>
    private Tensor Positions(int frames, int height, int width, IBackend backend, DType dtype)
    {
        if (_positions is not null && _positionsKey == (frames, height, width)
            && ReferenceEquals(_positions.Backend, backend) && _positions.DType == dtype)
            return _positions;
        var table = SincosPositionalEmbedding.Compute(_config.InnerDim, frames, height, width,
            _config.SpatialInterpolationScale, _config.TemporalInterpolationScale);
        // The cache outlives the tensor scope of the call that fills it.
        var fresh = TensorScope.Detach(Tensor.FromArray(table, [frames * height * width, _config.InnerDim], backend, dtype));
        _positions?.Dispose();
        _positions = fresh;
        _positionsKey = (frames, height, width);
        return fresh;
    }

    public override void Dispose()
    {
        _positions?.Dispose();
        _positions = null;
        base.Dispose();
    }
}
