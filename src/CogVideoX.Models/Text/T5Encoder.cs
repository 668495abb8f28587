using CogVideoX.Engine;
using CogVideoX.Models.Blocks;
using CogVideoX.Weights;

namespace CogVideoX.Models.Text;

/// <summary>
/// The T5 encoder stack as CogVideoX uses it (transformers' T5EncoderModel, T5 v1.1: gated-GELU feed-forward, no
/// biases, RMS norms, relative position bias computed by the first block and shared by all). Ids [B, L] →
/// embeddings [B, L, d_model]. Called without an attention mask, as diffusers' CogVideoX pipeline calls it: padded
/// positions take part in attention like any other.
/// </summary>
/// <remarks>
/// The module tree mirrors the checkpoint names (<c>shared.weight</c> or <c>encoder.embed_tokens.weight</c>,
/// <c>encoder.block.{i}.layer.0.SelfAttention.{q,k,v,o}</c>, <c>…layer.0.layer_norm</c>,
/// <c>encoder.block.{i}.layer.1.DenseReluDense.{wi_0,wi_1,wo}</c>, <c>…layer.1.layer_norm</c>,
/// <c>encoder.final_layer_norm</c>). Extra tensors (a decoder, an lm_head) are ignored.
///
/// Half precision follows transformers exactly where it matters for range: with F16 weights the <c>wo</c>
/// projections run in float32 (T5's <c>_keep_in_fp32_modules</c>; stored in the checkpoint's half type and widened on
/// use, which is exact), so from the first feed-forward on the residual
/// stream is float32 and each norm returns the weight dtype; while the stream is F16, values are clamped after each
/// sub-layer when any is infinite, as transformers' T5Block does.
///
/// The encoder owns its weight tensors (Dispose releases them). Build it outside any <see cref="TensorScope"/>, or
/// that scope will release the weights when it ends. Its blocks come from an <see cref="IBlockSource{TBlock}"/>:
/// resident (loaded with the rest) or streamed from host images (<see cref="LoadHostBlocks"/>); the relative position
/// table of block 0 is then held by the encoder itself, since it is used once per forward, before the blocks.
/// </remarks>
public sealed class T5Encoder : IDisposable
{
    /// <summary>float16's largest value minus 1000: transformers' clamp when a half-precision stream has infinities.</summary>
    private const float HalfClampValue = 65504f - 1000f;

    private const string RelativeAttentionBiasName = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight";

    private readonly T5Weights _weights;
    private readonly IBlockSource<T5Block> _blocks = null!;
    private readonly Tensor _relativeAttentionBias = null!;
    private bool _disposed;

    /// <summary>Builds the encoder from checkpoint tensors under <paramref name="weights"/> (converted to its dtype).</summary>
    public T5Encoder(T5Config config, WeightScope weights) : this(config, weights, null)
    {
    }

    /// <summary>
    /// Builds the encoder with its blocks taken from <paramref name="blocks"/> (which it then owns) instead of loaded
    /// from <paramref name="weights"/>; null loads them onto the backend with the rest.
    /// </summary>
    internal T5Encoder(T5Config config, WeightScope weights, IBlockSource<T5Block>? blocks)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        Validate(config, weights.Checkpoint.Source);
        Config = config;
        Backend = weights.Backend;
        DType = weights.DType;
        if (!DType.IsFloat()) throw new ArgumentException($"the text encoder needs a float dtype, not {DType.Name()}");
        if (blocks is not null && blocks.Count != config.NumLayers)
            throw new ArgumentException($"{blocks.Count} blocks given for a text encoder of {config.NumLayers} layers", nameof(blocks));
        _weights = new T5Weights(DType);
        T5Block[]? loaded = null;
        try
        {
            var embedName = weights.Contains("encoder.embed_tokens.weight") ? "encoder.embed_tokens.weight" : "shared.weight";
            if (!weights.Contains(embedName))
                throw new WeightsException($"{weights.Checkpoint.Source}: no token embedding: expected 'shared.weight' or 'encoder.embed_tokens.weight' of shape [{config.VocabSize}, {config.DModel}]");
            EmbedTokens = _weights.Own(weights.Get(embedName, config.VocabSize, config.DModel));

            var encoder = weights.Scope("encoder");
            if (blocks is null)
            {
                var scope = encoder.Scope("block");
                loaded = new T5Block[config.NumLayers];
                for (int i = 0; i < config.NumLayers; i++)
                    loaded[i] = new T5Block(config, scope.Scope(i), hasRelativeAttentionBias: i == 0);
                _relativeAttentionBias = loaded[0].Layer0.SelfAttention.RelativeAttentionBias!;
                blocks = new ResidentBlocks<T5Block>(loaded);
            }
            else
            {
                _relativeAttentionBias = _weights.Own(weights.Get(RelativeAttentionBiasName, config.RelativeAttentionNumBuckets, config.NumHeads));
            }
            _blocks = blocks;
            FinalLayerNorm = new T5LayerNorm(_weights, config, encoder.Scope("final_layer_norm"));
        }
        catch
        {
            if (loaded is not null) foreach (var b in loaded) b?.Dispose();
            _blocks = null!; // a source given by the caller stays the caller's when construction fails
            Dispose();
            throw;
        }
    }

    public T5Config Config { get; }

    public IBackend Backend { get; }

    /// <summary>The dtype of the weights and of the output.</summary>
    public DType DType { get; }

    /// <summary>Rows of the embedding table: every token id must be below this.</summary>
    public int VocabSize => Config.VocabSize;

    public int DModel => Config.DModel;

    internal Tensor EmbedTokens { get; }

    /// <summary>Where the blocks come from while a forward runs.</summary>
    public IBlockSource<T5Block> BlockSource => _blocks;

    /// <summary>The blocks when they are resident (empty when they stream).</summary>
    internal IReadOnlyList<T5Block> Blocks => _blocks is ResidentBlocks<T5Block> resident ? resident.Blocks : [];

    internal T5LayerNorm FinalLayerNorm { get; }

    /// <summary>Reads <c>config.json</c> and the weights (one file or shards) of a <c>text_encoder/</c> folder.</summary>
    public static T5Encoder Load(string folder, IBackend backend, DType dtype)
    {
        if (!Directory.Exists(folder))
            throw new WeightsException($"{folder}: text encoder folder not found; expected a model's text_encoder/ folder (config.json and .safetensors weights)");
        var config = T5Config.Load(Path.Combine(folder, "config.json"));
        using var checkpoint = Checkpoint.Open(folder);
        return new T5Encoder(config, checkpoint.Scope(backend, dtype));
    }

    /// <summary>
    /// Loads a <c>text_encoder/</c> folder onto <paramref name="backend"/> except its blocks, which come from
    /// <paramref name="blocks"/> (taken over by the encoder; disposed with it, also when loading fails).
    /// </summary>
    public static T5Encoder Load(string folder, IBackend backend, DType dtype, IBlockSource<T5Block> blocks)
    {
        try
        {
            var config = T5Config.Load(Path.Combine(CheckFolder(folder), "config.json"));
            using var checkpoint = Checkpoint.Open(folder);
            return new T5Encoder(config, checkpoint.Scope(backend, dtype), blocks);
        }
        catch
        {
            blocks.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The blocks of a <c>text_encoder/</c> folder packed into host memory in <paramref name="dtype"/> (pinned through
    /// <paramref name="pinned"/> when given), for <see cref="StreamedBlocks{TBlock}"/>. Read one block at a time; the
    /// relative position table stays with the encoder.
    /// </summary>
    public static HostBlocks<T5Block> LoadHostBlocks(string folder, DType dtype, IWeightStreaming? pinned)
    {
        var config = T5Config.Load(Path.Combine(CheckFolder(folder), "config.json"));
        using var checkpoint = Checkpoint.Open(folder);
        Validate(config, checkpoint.Source);
        if (!dtype.IsFloat()) throw new ArgumentException($"the text encoder needs a float dtype, not {dtype.Name()}");
        var blocks = checkpoint.Scope(CpuBackend.Instance, dtype).Scope("encoder").Scope("block");
        return HostBlocks<T5Block>.Load("text encoder blocks", config.NumLayers,
            i => new T5Block(config, blocks.Scope(i), hasRelativeAttentionBias: false), pinned);
    }

    private static string CheckFolder(string folder) => Directory.Exists(folder) ? folder
        : throw new WeightsException($"{folder}: text encoder folder not found; expected a model's text_encoder/ folder (config.json and .safetensors weights)");

    /// <summary>Embeddings [1, L, d_model] of a tokenized prompt, after checking its ids fit this encoder.</summary>
    public Tensor Encode(TokenizedPrompt prompt) => Encode([prompt])[0];

    /// <summary>
    /// Embeddings [1, L, d_model] of each prompt, computed in one pass through the blocks (each block runs on every
    /// prompt before the next block), so streamed blocks are fetched once for all of them; each prompt's arithmetic
    /// is exactly that of encoding it alone.
    /// </summary>
    public IReadOnlyList<Tensor> Encode(IReadOnlyList<TokenizedPrompt> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var ids = new Tensor[prompts.Count];
        try
        {
            for (int i = 0; i < ids.Length; i++)
            {
                ArgumentNullException.ThrowIfNull(prompts[i]);
                foreach (long id in prompts[i].Ids)
                    if (id < 0 || id >= VocabSize)
                        throw new CogVideoXException(
                            $"Token id {id} is outside the text encoder's vocabulary of {VocabSize}: the tokenizer and the text encoder do not belong to the same model.");
                ids[i] = prompts[i].ToTensor(Backend);
            }
            return Forward(ids);
        }
        finally
        {
            foreach (var t in ids) t?.Dispose();
        }
    }

    /// <summary>Token ids I64 [B, L] → last hidden state [B, L, d_model] (after the final norm).</summary>
    public Tensor Forward(Tensor inputIds) => Forward([inputIds])[0];

    /// <summary>Several id tensors I64 [B, L] through one pass of the blocks; one hidden state per input.</summary>
    public IReadOnlyList<Tensor> Forward(IReadOnlyList<Tensor> inputIds)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(inputIds);
        foreach (var input in inputIds)
        {
            ArgumentNullException.ThrowIfNull(input);
            if (input.DType != DType.I64 || input.Rank != 2)
                throw new ArgumentException($"T5 encoder: input ids must be I64 [batch, length], got {input}");
        }
        using var scope = new TensorScope();
        // A streaming source starts copying block 0 now, beside the embeddings and the position biases.
        _blocks.BeginPass();
        var hidden = new Tensor[inputIds.Count];
        var positionBias = new Tensor[inputIds.Count];
        var biasByLength = new Dictionary<int, Tensor>();
        for (int p = 0; p < hidden.Length; p++)
        {
            var ids = ReferenceEquals(inputIds[p].Backend, Backend) ? inputIds[p] : inputIds[p].To(Backend);
            int length = ids.Dim(1);
            hidden[p] = EmbedTokens.Embedding(ids);
            if (!biasByLength.TryGetValue(length, out var bias))
                biasByLength[length] = bias = T5Attention.ComputeBias(_relativeAttentionBias, Config, length, length);
            positionBias[p] = bias;
        }
        for (int i = 0; i < _blocks.Count; i++)
        {
            var block = _blocks.Acquire(i);
            for (int p = 0; p < hidden.Length; p++)
            {
                var next = block.Forward(hidden[p], positionBias[p]);
                hidden[p].Dispose(); // each block's input is no longer needed; keeps memory at one hidden state per prompt
                hidden[p] = next;
            }
            _blocks.Release(i);
        }
        return hidden.Select(h => scope.Keep(FinalLayerNorm.Forward(h))).ToArray();
    }

    /// <summary>
    /// Every checkpoint tensor the encoder of this config reads, with its shape (the embedding as
    /// <c>shared.weight</c>, as T5 checkpoints store it): for sizing memory and writing weights without a checkpoint.
    /// </summary>
    public static IReadOnlyList<(string Name, int[] Shape)> ParameterShapes(T5Config config)
    {
        Validate(config, "text encoder config");
        int d = config.DModel, inner = config.NumHeads * config.DKv, ff = config.DFf;
        var list = new List<(string Name, int[] Shape)> { ("shared.weight", [config.VocabSize, d]) };
        for (int i = 0; i < config.NumLayers; i++)
        {
            string a = $"encoder.block.{i}.layer.0", f = $"encoder.block.{i}.layer.1";
            foreach (var p in new[] { "q", "k", "v" }) list.Add(($"{a}.SelfAttention.{p}.weight", [inner, d]));
            list.Add(($"{a}.SelfAttention.o.weight", [d, inner]));
            if (i == 0) list.Add(($"{a}.SelfAttention.relative_attention_bias.weight", [config.RelativeAttentionNumBuckets, config.NumHeads]));
            list.Add(($"{a}.layer_norm.weight", [d]));
            if (config.Gated)
            {
                list.Add(($"{f}.DenseReluDense.wi_0.weight", [ff, d]));
                list.Add(($"{f}.DenseReluDense.wi_1.weight", [ff, d]));
            }
            else
                list.Add(($"{f}.DenseReluDense.wi.weight", [ff, d]));
            list.Add(($"{f}.DenseReluDense.wo.weight", [d, ff]));
            list.Add(($"{f}.layer_norm.weight", [d]));
        }
        list.Add(("encoder.final_layer_norm.weight", [d]));
        return list;
    }

    /// <summary>Bucket of each (query, key) pair, row-major [queryLength, keyLength], as transformers computes it.</summary>
    public static int[] RelativePositionBuckets(int queryLength, int keyLength, bool bidirectional, int numBuckets, int maxDistance)
    {
        var buckets = new int[queryLength * keyLength];
        for (int i = 0; i < queryLength; i++)
            for (int j = 0; j < keyLength; j++)
                buckets[i * keyLength + j] = RelativePositionBucket(j - i, bidirectional, numBuckets, maxDistance);
        return buckets;
    }

    /// <summary>
    /// T5's bucket for memory_position − query_position: exact below max_exact, log-spaced up to max_distance, then
    /// the last bucket; in bidirectional mode the upper half of the buckets is for keys after the query. The
    /// logarithm is taken in float32 arithmetic step by step as PyTorch does it, because at distances that are powers
    /// of two the value lands exactly on a bucket boundary and the rounding decides the bucket.
    /// </summary>
    public static int RelativePositionBucket(int relativePosition, bool bidirectional, int numBuckets, int maxDistance)
    {
        int bucket = 0;
        int position;
        if (bidirectional)
        {
            numBuckets /= 2;
            if (relativePosition > 0) bucket += numBuckets;
            position = Math.Abs(relativePosition);
        }
        else
            position = -Math.Min(relativePosition, 0);
        int maxExact = numBuckets / 2;
        if (position < maxExact) return bucket + position;
        float ratio = (float)position / maxExact;
        float logRatio = MathF.Log(ratio);
        float logRange = (float)Math.Log((double)maxDistance / maxExact);
        float scaled = logRatio / logRange * (numBuckets - maxExact);
        int large = maxExact + (int)scaled; // .to(torch.long) truncates toward zero
        return bucket + Math.Min(large, numBuckets - 1);
    }

    /// <summary>a + b with PyTorch's type promotion: a half operand meeting a float32 one is widened.</summary>
    internal static Tensor AddPromoted(Tensor a, Tensor b)
    {
        if (a.DType == b.DType) return a.Add(b);
        using var wa = a.To(DType.F32);
        using var wb = b.To(DType.F32);
        return wa.Add(wb);
    }

    /// <summary>transformers' T5Block guard: a float16 stream holding an infinity is clamped to ±(max − 1000).</summary>
    internal static Tensor ClampIfHalfOverflow(Tensor hidden)
    {
        if (hidden.DType != DType.F16) return hidden;
        using var flat = hidden.Reshape(-1);
        using var abs = flat.Unary(UnaryOp.Abs);
        using var max = abs.Reduce(ReduceOp.Max);
        if (!float.IsPositiveInfinity(max.Item())) return hidden;
        return hidden.Clamp(-HalfClampValue, HalfClampValue);
    }

    internal static Activation ActivationOf(T5Config config) => config.Activation switch
    {
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => Activation.GeluTanh,
        "gelu" => Activation.Gelu,
        "relu" => Activation.Relu,
        "silu" or "swish" => Activation.Silu,
        _ => throw new WeightsException(
            $"text encoder config: feed-forward activation '{config.Activation}' is not supported; supported: gelu_new, gelu_pytorch_tanh, gelu_fast, gelu, relu, silu"),
    };

    private static void Validate(T5Config c, string source)
    {
        void Positive(int value, string key)
        {
            if (value < 1) throw new WeightsException($"{source}: text encoder config {key} = {value}; it must be at least 1");
        }
        Positive(c.VocabSize, "vocab_size");
        Positive(c.DModel, "d_model");
        Positive(c.DKv, "d_kv");
        Positive(c.DFf, "d_ff");
        Positive(c.NumLayers, "num_layers");
        Positive(c.NumHeads, "num_heads");
        Positive(c.RelativeAttentionNumBuckets, "relative_attention_num_buckets");
        Positive(c.RelativeAttentionMaxDistance, "relative_attention_max_distance");
        if (c.RelativeAttentionNumBuckets < 4)
            throw new WeightsException($"{source}: text encoder config relative_attention_num_buckets = {c.RelativeAttentionNumBuckets}; bidirectional buckets need at least 4");
        if (!(c.LayerNormEpsilon > 0))
            throw new WeightsException($"{source}: text encoder config layer_norm_epsilon = {c.LayerNormEpsilon}; it must be positive");
        ActivationOf(c);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _blocks?.Dispose();
        _weights.Dispose();
    }
}

/// <summary>
/// The tensors one part of the encoder owns (the encoder's own, or one block's), and the precision rule they are
/// loaded under: with F16 weights <c>wo</c> and the norms' float32 copies stay float32 (transformers' _keep_in_fp32_modules).
/// </summary>
internal sealed class T5Weights(DType dtype) : IDisposable
{
    private readonly List<Tensor> _owned = new();

    /// <summary>True when <c>wo</c> runs in float32 under F16 weights.</summary>
    public bool KeepFeedForwardOutputInFloat32 { get; } = dtype == DType.F16;

    public Tensor Own(Tensor tensor)
    {
        _owned.Add(tensor);
        return tensor;
    }

    public void Dispose()
    {
        foreach (var t in _owned) t.Dispose();
        _owned.Clear();
    }
}

/// <summary>
/// <c>encoder.block.{i}</c>: self-attention (layer.0), then feed-forward (layer.1), each pre-norm with a residual. The
/// block owns its weights, so it can be packed into host memory and streamed (the relative position table of block 0
/// is not among its <see cref="Weights"/>: the encoder uses it before the blocks).
/// </summary>
public sealed class T5Block : IStreamableBlock<T5Block>, IDisposable
{
    private readonly T5Weights _weights;

    internal T5Block(T5Config config, WeightScope weights, bool hasRelativeAttentionBias)
    {
        _weights = new T5Weights(weights.DType);
        try
        {
            var layers = weights.Scope("layer");
            Layer0 = new T5SelfAttentionLayer(_weights, config, layers.Scope(0), hasRelativeAttentionBias);
            Layer1 = new T5FeedForwardLayer(_weights, config, layers.Scope(1));
        }
        catch
        {
            _weights.Dispose();
            throw;
        }
    }

    /// <summary>The same block over <c>place(w)</c> for each of <see cref="Weights"/>, in that order.</summary>
    private T5Block(T5Block source, Func<Tensor, Tensor> place)
    {
        _weights = new T5Weights(DType.F32);
        Tensor Place(Tensor t) => _weights.Own(place(t));
        try
        {
            Layer0 = new T5SelfAttentionLayer(source.Layer0, Place);
            Layer1 = new T5FeedForwardLayer(source.Layer1, Place);
        }
        catch
        {
            _weights.Dispose();
            throw;
        }
    }

    /// <summary>q, k, v, o, layer.0's norm, the feed-forward's projections, layer.1's norm (float32 copies included).</summary>
    public IReadOnlyList<Tensor> Weights
    {
        get
        {
            var list = new List<Tensor>();
            Layer0.Collect(list);
            Layer1.Collect(list);
            return list;
        }
    }

    internal T5SelfAttentionLayer Layer0 { get; }

    internal T5FeedForwardLayer Layer1 { get; }

    public T5Block Rebind(Func<Tensor, Tensor> place) => new(this, place);

    public void Dispose() => _weights.Dispose();

    public Tensor Forward(Tensor hidden, Tensor positionBias)
    {
        using var scope = new TensorScope();
        hidden = Layer0.Forward(hidden, positionBias);
        hidden = T5Encoder.ClampIfHalfOverflow(hidden);
        hidden = Layer1.Forward(hidden);
        hidden = T5Encoder.ClampIfHalfOverflow(hidden);
        return scope.Keep(hidden);
    }
}

/// <summary><c>layer.0</c>: hidden + SelfAttention(layer_norm(hidden)).</summary>
internal sealed class T5SelfAttentionLayer
{
    public T5SelfAttentionLayer(T5Weights owner, T5Config config, WeightScope weights, bool hasRelativeAttentionBias)
    {
        SelfAttention = new T5Attention(owner, config, weights.Scope("SelfAttention"), hasRelativeAttentionBias);
        LayerNorm = new T5LayerNorm(owner, config, weights.Scope("layer_norm"));
    }

    public T5SelfAttentionLayer(T5SelfAttentionLayer source, Func<Tensor, Tensor> place)
    {
        SelfAttention = new T5Attention(source.SelfAttention, place);
        LayerNorm = new T5LayerNorm(source.LayerNorm, place);
    }

    public void Collect(List<Tensor> into)
    {
        SelfAttention.Collect(into);
        LayerNorm.Collect(into);
    }

    public T5Attention SelfAttention { get; }

    public T5LayerNorm LayerNorm { get; }

    public Tensor Forward(Tensor hidden, Tensor positionBias)
    {
        using var normed = LayerNorm.Forward(hidden);
        using var attended = SelfAttention.Forward(normed, positionBias);
        return T5Encoder.AddPromoted(hidden, attended);
    }
}

/// <summary>
/// <c>SelfAttention</c>: q, k, v, o projections without biases; scores q·kᵀ without the 1/√d scaling, plus the
/// relative position bias; <c>relative_attention_bias</c> [num_buckets, heads] exists in the first block only.
/// </summary>
internal sealed class T5Attention
{
    private readonly T5Config _config;

    public T5Attention(T5Weights owner, T5Config config, WeightScope weights, bool hasRelativeAttentionBias)
    {
        _config = config;
        int inner = config.NumHeads * config.DKv;
        Q = owner.Own(weights.Get("q.weight", inner, config.DModel));
        K = owner.Own(weights.Get("k.weight", inner, config.DModel));
        V = owner.Own(weights.Get("v.weight", inner, config.DModel));
        O = owner.Own(weights.Get("o.weight", config.DModel, inner));
        if (hasRelativeAttentionBias)
            RelativeAttentionBias = owner.Own(weights.Get("relative_attention_bias.weight", config.RelativeAttentionNumBuckets, config.NumHeads));
    }

    /// <summary>The same projections over <c>place(w)</c> (q, k, v, o); the relative position table is not carried.</summary>
    public T5Attention(T5Attention source, Func<Tensor, Tensor> place)
    {
        _config = source._config;
        Q = place(source.Q);
        K = place(source.K);
        V = place(source.V);
        O = place(source.O);
    }

    public void Collect(List<Tensor> into) => into.AddRange([Q, K, V, O]);

    public Tensor Q { get; }

    public Tensor K { get; }

    public Tensor V { get; }

    public Tensor O { get; }

    public Tensor? RelativeAttentionBias { get; }

    /// <summary>
    /// The additive bias [1, heads, queryLength, keyLength] from the bucket table <paramref name="table"/>
    /// [num_buckets, heads] (block 0's relative_attention_bias; bidirectional: encoder).
    /// </summary>
    public static Tensor ComputeBias(Tensor table, T5Config config, int queryLength, int keyLength)
    {
        var buckets = T5Encoder.RelativePositionBuckets(queryLength, keyLength, bidirectional: true,
            config.RelativeAttentionNumBuckets, config.RelativeAttentionMaxDistance);
        using var ids = Tensor.FromArray(Array.ConvertAll(buckets, b => (long)b), new[] { buckets.Length }, table.Backend);
        using var values = table.Embedding(ids);
        using var grid = values.Reshape(queryLength, keyLength, config.NumHeads);
        using var perHead = grid.Permute(2, 0, 1);
        using var batched = perHead.Unsqueeze(0);
        return batched.Contiguous();
    }

    public Tensor Forward(Tensor x, Tensor positionBias)
    {
        int batch = x.Dim(0), length = x.Dim(1), heads = _config.NumHeads, dkv = _config.DKv;
        using var q = x.Linear(Q);
        using var k = x.Linear(K);
        using var v = x.Linear(V);
        using var q4 = q.Reshape(batch, length, heads, dkv);
        using var k4 = k.Reshape(batch, length, heads, dkv);
        using var v4 = v.Reshape(batch, length, heads, dkv);
        using var qh = q4.Transpose(1, 2);
        using var kh = k4.Transpose(1, 2);
        using var vh = v4.Transpose(1, 2);
        // Written through a [B, H, L, D] view of a [B, L, H, D] buffer, so merging the heads needs no copy.
        using var merged = Tensor.Empty(x.Backend, x.DType, batch, length, heads, dkv);
        using (var view = merged.Transpose(1, 2))
            Ops.AttentionInto(qh, kh, vh, positionBias, scale: 1f, output: view);
        using var flat = merged.Reshape(batch, length, heads * dkv);
        return flat.Linear(O);
    }
}

/// <summary><c>layer.1</c>: hidden + DenseReluDense(layer_norm(hidden)).</summary>
internal sealed class T5FeedForwardLayer
{
    public T5FeedForwardLayer(T5Weights owner, T5Config config, WeightScope weights)
    {
        DenseReluDense = new T5DenseActDense(owner, config, weights.Scope("DenseReluDense"));
        LayerNorm = new T5LayerNorm(owner, config, weights.Scope("layer_norm"));
    }

    public T5FeedForwardLayer(T5FeedForwardLayer source, Func<Tensor, Tensor> place)
    {
        DenseReluDense = new T5DenseActDense(source.DenseReluDense, place);
        LayerNorm = new T5LayerNorm(source.LayerNorm, place);
    }

    public void Collect(List<Tensor> into)
    {
        DenseReluDense.Collect(into);
        LayerNorm.Collect(into);
    }

    public T5DenseActDense DenseReluDense { get; }

    public T5LayerNorm LayerNorm { get; }

    public Tensor Forward(Tensor hidden)
    {
        using var normed = LayerNorm.Forward(hidden);
        using var transformed = DenseReluDense.Forward(normed);
        return T5Encoder.AddPromoted(hidden, transformed);
    }
}

/// <summary>
/// <c>DenseReluDense</c>: gated (v1.1) wo(act(wi_0 x) · wi_1 x), or plain wo(act(wi x)); under F16 weights wo runs
/// in float32, its input widened to it, as transformers does.
/// </summary>
internal sealed class T5DenseActDense
{
    private readonly Activation _activation;

    /// <summary>wo runs in float32 (F16 weights), whatever its storage.</summary>
    private readonly bool _float32Output;

    public T5DenseActDense(T5Weights owner, T5Config config, WeightScope weights)
    {
        _activation = T5Encoder.ActivationOf(config);
        _float32Output = owner.KeepFeedForwardOutputInFloat32;
        if (config.Gated)
        {
            Wi0 = owner.Own(weights.Get("wi_0.weight", config.DFf, config.DModel));
            Wi1 = owner.Own(weights.Get("wi_1.weight", config.DFf, config.DModel));
        }
        else
            Wi = owner.Own(weights.Get("wi.weight", config.DFf, config.DModel));
        Wo = owner.Own(WoScope(owner, weights).Get("wo.weight", config.DModel, config.DFf));
    }

    public T5DenseActDense(T5DenseActDense source, Func<Tensor, Tensor> place)
    {
        _activation = source._activation;
        _float32Output = source._float32Output;
        if (source.Wi0 is not null) Wi0 = place(source.Wi0);
        if (source.Wi1 is not null) Wi1 = place(source.Wi1);
        if (source.Wi is not null) Wi = place(source.Wi);
        Wo = place(source.Wo);
    }

    public void Collect(List<Tensor> into)
    {
        if (Wi0 is not null) into.Add(Wi0);
        if (Wi1 is not null) into.Add(Wi1);
        if (Wi is not null) into.Add(Wi);
        into.Add(Wo);
    }

    public Tensor? Wi0 { get; }

    public Tensor? Wi1 { get; }

    public Tensor? Wi { get; }

    public Tensor Wo { get; }

    /// <summary>
    /// Where <c>wo</c> runs in float32, it is kept in the checkpoint's own half type when it has one and widened on use:
    /// the widening is exact, so the product is the same, and T5-XXL's 24 of them take 1.9 GiB instead of 3.8 GiB for
    /// the whole run (the widened copy lives for one layer, 168 MiB). Random weights are drawn in the load dtype.
    /// </summary>
    private static WeightScope WoScope(T5Weights owner, WeightScope weights)
    {
        if (!owner.KeepFeedForwardOutputInFloat32) return weights;
        var stored = weights.StoredDType("wo.weight") ?? weights.DType;
        return weights.As(stored is DType.F16 or DType.BF16 ? stored : DType.F32);
    }

    public Tensor Forward(Tensor x)
    {
        Tensor hidden;
        if (Wi is not null)
            hidden = x.Linear(Wi, null, _activation);
        else
        {
            using var gate = x.Linear(Wi0!, null, _activation);
            using var linear = x.Linear(Wi1!);
            hidden = gate.Mul(linear);
        }
        using (hidden)
        {
            var dtype = _float32Output ? DType.F32 : Wo.DType;
            using var wo = Wo.DType == dtype ? null : Wo.To(dtype);
            if (hidden.DType == dtype) return hidden.Linear(wo ?? Wo);
            using var widened = hidden.To(dtype);
            return widened.Linear(wo ?? Wo);
        }
    }
}

/// <summary>
/// T5's layer norm (<c>*.layer_norm</c>, <c>final_layer_norm</c>): x / √(mean(x²) + ε) · weight, no mean, no bias,
/// statistics in float32; the result has the weight's dtype (a float32 stream under half weights is narrowed).
/// </summary>
internal sealed class T5LayerNorm
{
    private readonly float _epsilon;

    public T5LayerNorm(T5Weights owner, T5Config config, WeightScope weights)
    {
        _epsilon = (float)config.LayerNormEpsilon;
        Weight = owner.Own(weights.Get("weight", config.DModel));
        // The float32 stream of F16 mode is normalised from its float32 values with a float32 copy of the weight.
        if (owner.KeepFeedForwardOutputInFloat32)
            WeightFloat32 = owner.Own(Weight.To(DType.F32));
    }

    public T5LayerNorm(T5LayerNorm source, Func<Tensor, Tensor> place)
    {
        _epsilon = source._epsilon;
        Weight = place(source.Weight);
        if (source.WeightFloat32 is not null) WeightFloat32 = place(source.WeightFloat32);
    }

    public void Collect(List<Tensor> into)
    {
        into.Add(Weight);
        if (WeightFloat32 is not null) into.Add(WeightFloat32);
    }

    public Tensor Weight { get; }

    private Tensor? WeightFloat32 { get; }

    public Tensor Forward(Tensor x)
    {
        if (x.DType == Weight.DType) return x.RmsNorm(Weight, _epsilon);
        if (x.DType != DType.F32 || WeightFloat32 is null)
            throw new InvalidOperationException($"T5 layer norm: a {x.DType.Name()} input meets {Weight.DType.Name()} weights");
        using var normed = x.RmsNorm(WeightFloat32, _epsilon);
        return normed.To(Weight.DType);
    }
}
