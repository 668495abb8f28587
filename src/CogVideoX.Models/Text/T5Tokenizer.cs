using System.Globalization;
using System.Text.Json;
using CogVideoX.Engine;
using CogVideoX.Weights;
using Microsoft.ML.Tokenizers;

namespace CogVideoX.Models.Text;

/// <summary>
/// The T5 tokenizer of a CogVideoX model, read from its <c>tokenizer/</c> folder as published (<c>spiece.model</c>,
/// <c>tokenizer_config.json</c>, <c>special_tokens_map.json</c>, <c>added_tokens.json</c>), giving the ids
/// transformers' T5Tokenizer gives.
/// </summary>
/// <remarks>
/// The steps are those of transformers' (tokenizers-backed) T5Tokenizer:
/// <list type="number">
/// <item>special and added tokens written in the text (<c>&lt;/s&gt;</c>, <c>&lt;pad&gt;</c>, <c>&lt;unk&gt;</c>,
/// <c>&lt;extra_id_N&gt;</c>) are split out first, leftmost and longest match first, and become their own ids;</item>
/// <item>each piece of text between them is normalised with the model's own rules (its precompiled nmt_nfkc
/// charsmap) and split into words at whitespace, so whitespace around special tokens produces nothing;</item>
/// <item>each word, with the ▁ prefix, is segmented by the Unigram model (Viterbi), and runs of unknown characters
/// become a single <c>&lt;unk&gt;</c>, as sentencepiece does;</item>
/// <item><c>&lt;/s&gt;</c> is appended; truncation keeps it; padding uses <c>&lt;pad&gt;</c>.</item>
/// </list>
/// Microsoft.ML.Tokenizers does the normalisation and the Unigram segmentation. This class does the rest: reading
/// the configuration files, the extra ids (<c>&lt;extra_id_0&gt;</c> is the last id), splitting special tokens out,
/// the word split, merging unknown runs (the library emits one <c>&lt;unk&gt;</c> per character), <c>&lt;/s&gt;</c>,
/// truncation and padding; and it works around the library's failure to load models without a BOS piece (see
/// <see cref="SentencePieceModelFile"/>).
/// </remarks>
public sealed class T5Tokenizer
{
    private const char WordMark = '\u2581';

    private readonly SentencePieceTokenizer _model;
    private readonly Dictionary<string, int> _specialIds;
    private readonly Dictionary<int, string> _specialById;
    private readonly Dictionary<char, string[]> _specialsByFirstChar;
    private readonly bool _mergeUnknown;

    private T5Tokenizer(
        string folder, SentencePieceTokenizer model, SentencePieceModelFile file, int extraIds, int? modelMaxLength,
        Dictionary<string, int> specialIds, int eosId, int padId, int unkId, int vocabSize)
    {
        Folder = folder;
        _model = model;
        _mergeUnknown = !file.ByteFallback;
        PieceCount = file.Pieces.Count;
        ExtraIds = extraIds;
        ModelMaxLength = modelMaxLength;
        EosId = eosId;
        PadId = padId;
        UnkId = unkId;
        VocabSize = vocabSize;
        _specialIds = specialIds;
        _specialById = new Dictionary<int, string>();
        foreach (var (token, id) in specialIds) _specialById.TryAdd(id, token);
        _specialsByFirstChar = specialIds.Keys
            .GroupBy(t => t[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Length).ThenBy(t => t, StringComparer.Ordinal).ToArray());
    }

    /// <summary>The folder the tokenizer was read from.</summary>
    public string Folder { get; }

    /// <summary>Pieces of the sentencepiece model.</summary>
    public int PieceCount { get; }

    /// <summary>Sentinel tokens <c>&lt;extra_id_0&gt;</c>… after the pieces (100 for T5).</summary>
    public int ExtraIds { get; }

    /// <summary>Every id the tokenizer can produce is below this (pieces + extra ids + added tokens).</summary>
    public int VocabSize { get; }

    /// <summary><c>model_max_length</c> of tokenizer_config.json (226 for CogVideoX), when it gives one.</summary>
    public int? ModelMaxLength { get; }

    public int EosId { get; }

    public int PadId { get; }

    public int UnkId { get; }

    /// <summary>The tokens split out of the text before the sentencepiece model sees it, with their ids.</summary>
    public IReadOnlyDictionary<string, int> SpecialTokens => _specialIds;

    /// <summary>Reads a <c>tokenizer/</c> folder: spiece.model and the optional JSON files next to it.</summary>
    public static T5Tokenizer Load(string folder)
    {
        if (!Directory.Exists(folder))
            throw new WeightsException($"{folder}: tokenizer folder not found; expected a model's tokenizer/ folder holding spiece.model");
        var spiecePath = Path.Combine(folder, "spiece.model");
        if (!File.Exists(spiecePath))
        {
            var hint = File.Exists(Path.Combine(folder, "tokenizer.json"))
                ? " (there is a tokenizer.json, but the T5 tokenizer is read from spiece.model, which CogVideoX's published tokenizer/ folder holds)"
                : "";
            throw new WeightsException($"{folder}: no spiece.model in this folder{hint}; point at the tokenizer/ folder of a CogVideoX model");
        }
        var file = SentencePieceModelFile.Read(spiecePath);
        if (file.ModelType != SentencePieceModelFile.ModelTypeUnigram)
            throw new WeightsException($"{spiecePath}: sentencepiece model type {file.ModelType} is not Unigram (1); the T5 tokenizer needs T5's Unigram spiece.model");

        SentencePieceTokenizer model;
        try
        {
            using var stream = new MemoryStream(file.LoadableBytes(), writable: false);
            model = SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not CogVideoXException)
        {
            throw new WeightsException($"{spiecePath}: the sentencepiece model cannot be used ({e.Message})", e);
        }

        var config = ReadJsonObject(Path.Combine(folder, "tokenizer_config.json"));
        var specialMap = ReadJsonObject(Path.Combine(folder, "special_tokens_map.json"));
        var addedPath = Path.Combine(folder, "added_tokens.json");
        var addedJson = ReadJsonObject(addedPath);

        // special_tokens_map.json overrides tokenizer_config.json, as in transformers' from_pretrained.
        string Named(string key, string fallback)
        {
            string? value = null;
            foreach (var (source, path) in new[] { (specialMap, "special_tokens_map.json"), (config, "tokenizer_config.json") })
            {
                if (source is { } s && s.TryGetProperty(key, out var e))
                {
                    value = TokenText(e, Path.Combine(folder, path), key);
                    if (value is not null) break;
                }
            }
            return value ?? fallback;
        }

        string eos = Named("eos_token", "</s>");
        string unk = Named("unk_token", "<unk>");
        string pad = Named("pad_token", "<pad>");
        int extraIds = 100;
        if (config is { } c && c.TryGetProperty("extra_ids", out var extraElement))
        {
            if (extraElement.ValueKind != JsonValueKind.Number || !extraElement.TryGetInt32(out extraIds) || extraIds < 0)
                throw new WeightsException($"{Path.Combine(folder, "tokenizer_config.json")}: extra_ids must be a non-negative integer");
        }

        var additional = new List<string>();
        foreach (var (source, path) in new[] { (specialMap, "special_tokens_map.json"), (config, "tokenizer_config.json") })
        {
            if (source is not { } s) continue;
            foreach (var key in new[] { "additional_special_tokens", "extra_special_tokens" })
            {
                if (!s.TryGetProperty(key, out var list) || list.ValueKind == JsonValueKind.Null) continue;
                if (list.ValueKind != JsonValueKind.Array)
                    throw new WeightsException($"{Path.Combine(folder, path)}: {key} must be a list of tokens");
                foreach (var item in list.EnumerateArray())
                    if (TokenText(item, Path.Combine(folder, path), key) is { } t && !additional.Contains(t))
                        additional.Add(t);
            }
            if (additional.Count > 0) break;
        }
        int sentinels = additional.Count(t => t.Contains("<extra_id_", StringComparison.Ordinal));
        if (sentinels == 0)
            for (int i = 0; i < extraIds; i++) additional.Add($"<extra_id_{i}>");
        else if (extraIds > 0 && sentinels != extraIds)
            throw new WeightsException($"{folder}: tokenizer_config.json says extra_ids = {extraIds} but the special tokens list {sentinels} <extra_id_N> tokens; they must agree");

        // Ids of added tokens: added_tokens.json, then tokenizer_config.json's added_tokens_decoder.
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        if (addedJson is { } a)
        {
            foreach (var p in a.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0)
                    throw new WeightsException($"{addedPath}: the id of '{p.Name}' must be a non-negative integer");
                added[p.Name] = id;
            }
        }
        if (config is { } cfg && cfg.TryGetProperty("added_tokens_decoder", out var decoder) && decoder.ValueKind == JsonValueKind.Object)
        {
            foreach (var p in decoder.EnumerateObject())
            {
                if (!int.TryParse(p.Name, NumberStyles.None, CultureInfo.InvariantCulture, out int id))
                    throw new WeightsException($"{Path.Combine(folder, "tokenizer_config.json")}: added_tokens_decoder key '{p.Name}' is not a token id");
                if (TokenText(p.Value, Path.Combine(folder, "tokenizer_config.json"), "added_tokens_decoder") is { } t)
                    added.TryAdd(t, id);
            }
        }

        var pieceIds = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < file.Pieces.Count; i++) pieceIds.TryAdd(file.Pieces[i], i);
        int Resolve(string token)
        {
            if (added.TryGetValue(token, out int id)) return id;
            if (pieceIds.TryGetValue(token, out id)) return id;
            if (token.StartsWith("<extra_id_", StringComparison.Ordinal) && token.EndsWith('>')
                && int.TryParse(token.AsSpan(10, token.Length - 11), NumberStyles.None, CultureInfo.InvariantCulture, out int n)
                && n < extraIds)
                return file.Pieces.Count + extraIds - 1 - n;
            throw new WeightsException($"{folder}: the special token '{token}' is neither a piece of spiece.model, nor in added_tokens.json, nor one of the {extraIds} <extra_id_N> tokens");
        }

        var specials = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var token in new[] { eos, unk, pad }.Concat(additional).Concat(added.Keys))
            if (token.Length > 0) specials.TryAdd(token, Resolve(token));
        int vocabSize = Math.Max(file.Pieces.Count + extraIds, specials.Values.Max() + 1);

        int? maxLength = null;
        if (config is { } mc && mc.TryGetProperty("model_max_length", out var ml) && ml.ValueKind == JsonValueKind.Number
            && ml.TryGetDouble(out double mlv) && mlv >= 1 && mlv <= int.MaxValue)
            maxLength = (int)mlv;

        return new T5Tokenizer(folder, model, file, extraIds, maxLength, specials, specials[eos], specials[pad], specials[unk], vocabSize);
    }

    /// <summary>The id of the sentinel <c>&lt;extra_id_n&gt;</c>.</summary>
    public int ExtraIdToken(int n)
    {
        if (n < 0 || n >= ExtraIds) throw new ArgumentOutOfRangeException(nameof(n), $"there are {ExtraIds} extra ids");
        return _specialIds[$"<extra_id_{n}>"];
    }

    /// <summary>All ids of the text, <c>&lt;/s&gt;</c> appended when asked, neither truncated nor padded.</summary>
    public int[] EncodeToIds(string text, bool addEndOfSequence = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = Encode(text);
        var ids = new int[tokens.Count + (addEndOfSequence ? 1 : 0)];
        for (int i = 0; i < tokens.Count; i++) ids[i] = tokens[i].Id;
        if (addEndOfSequence) ids[^1] = EosId;
        return ids;
    }

    /// <summary>
    /// The prompt as the encoder reads it: at most maxLength − 1 tokens, then <c>&lt;/s&gt;</c>, padded with
    /// <c>&lt;pad&gt;</c> to maxLength (transformers' padding="max_length", truncation=True).
    /// </summary>
    public TokenizedPrompt Tokenize(string text, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (maxLength < 1)
            throw new CogVideoXException($"The maximum sequence length must be at least 1 (room for </s>); got {maxLength}.");
        var tokens = Encode(text);
        int keep = Math.Min(tokens.Count, maxLength - 1);
        var ids = new long[maxLength];
        var mask = new long[maxLength];
        for (int i = 0; i < keep; i++)
        {
            ids[i] = tokens[i].Id;
            mask[i] = 1;
        }
        ids[keep] = EosId;
        mask[keep] = 1;
        for (int i = keep + 1; i < maxLength; i++) ids[i] = PadId;
        string? cut = keep < tokens.Count ? DescribeCut(text, tokens, keep) : null;
        return new TokenizedPrompt(text, ids, mask, tokens.Count + 1, maxLength, cut);
    }

    /// <summary>What sentencepiece alone gives for the text: special tokens written in it are not split out.</summary>
    internal int[] EncodeWithoutSpecialTokens(string text)
    {
        var tokens = new List<(int Id, int Source)>();
        EncodeSegment(text, 0, text.Length, tokens);
        return tokens.Select(t => t.Id).ToArray();
    }

    /// <summary>Token ids with the offset in the text of the word (or special token) each comes from, −1 when unknown.</summary>
    private List<(int Id, int Source)> Encode(string text)
    {
        var tokens = new List<(int Id, int Source)>();
        int segmentStart = 0, pos = 0;
        while (pos < text.Length)
        {
            var special = MatchSpecial(text, pos);
            if (special is null)
            {
                pos++;
                continue;
            }
            EncodeSegment(text, segmentStart, pos - segmentStart, tokens);
            tokens.Add((_specialIds[special], pos));
            pos += special.Length;
            segmentStart = pos;
        }
        EncodeSegment(text, segmentStart, text.Length - segmentStart, tokens);
        return tokens;
    }

    private string? MatchSpecial(string text, int pos)
    {
        if (!_specialsByFirstChar.TryGetValue(text[pos], out var candidates)) return null;
        foreach (var candidate in candidates)
            if (text.AsSpan(pos).StartsWith(candidate, StringComparison.Ordinal))
                return candidate;
        return null;
    }

    private void EncodeSegment(string text, int start, int length, List<(int Id, int Source)> tokens)
    {
        if (length == 0) return;
        var segment = text.Substring(start, length);
        // The library normalises as the model says (charsmap, whitespace); the segmentation of this call is not used.
        _model.EncodeToTokens(segment, out string? normalized, addBeginningOfSentence: false, addEndOfSentence: false,
            considerPreTokenization: false, considerNormalization: true);
        var words = Words(normalized ?? segment);
        if (words.Count == 0) return;
        // Words of the normalised text map one to one onto the written words unless normalisation added or removed
        // a separator (e.g. a zero-width space); then the source of those tokens is unknown.
        var written = Words(segment);
        bool mapped = written.Count == words.Count;
        string norm = normalized ?? segment;
        for (int w = 0; w < words.Count; w++)
        {
            int source = mapped ? start + written[w].Start : -1;
            var word = string.Concat(WordMark.ToString(), norm.AsSpan(words[w].Start, words[w].Length));
            bool previousUnknown = false;
            foreach (var token in _model.EncodeToTokens(word, out _, addBeginningOfSentence: false, addEndOfSentence: false,
                         considerPreTokenization: false, considerNormalization: false))
            {
                bool unknown = token.Id == UnkId;
                if (unknown && previousUnknown && _mergeUnknown) continue;
                tokens.Add((token.Id, source));
                previousUnknown = unknown;
            }
        }
    }

    /// <summary>Runs of text between whitespace or ▁ (the word split of transformers' WhitespaceSplit + Metaspace).</summary>
    private static List<(int Start, int Length)> Words(string text)
    {
        var words = new List<(int, int)>();
        int start = -1;
        for (int i = 0; i <= text.Length; i++)
        {
            bool separator = i == text.Length || text[i] == WordMark || char.IsWhiteSpace(text[i]);
            if (separator)
            {
                if (start >= 0) words.Add((start, i - start));
                start = -1;
            }
            else if (start < 0)
                start = i;
        }
        return words;
    }

    private string DescribeCut(string text, List<(int Id, int Source)> tokens, int firstCut)
    {
        int source = tokens[firstCut].Source;
        if (source >= 0) return text[source..].Trim();
        return Decode(tokens.Skip(firstCut).Select(t => t.Id));
    }

    /// <summary>Readable text for ids (special tokens as written, unknown pieces as ⁇, as sentencepiece shows them).</summary>
    internal string Decode(IEnumerable<int> ids)
    {
        var parts = new List<string>();
        var run = new List<int>();
        void Flush()
        {
            if (run.Count == 0) return;
            parts.Add(_model.Decode(run).Trim());
            run.Clear();
        }
        foreach (int id in ids)
        {
            if (id == UnkId)
            {
                Flush();
                parts.Add("\u2047");
            }
            else if (_specialById.TryGetValue(id, out var special))
            {
                Flush();
                parts.Add(special);
            }
            else
                run.Add(id);
        }
        Flush();
        return string.Join(" ", parts.Where(p => p.Length > 0));
    }

    private static JsonElement? ReadJsonObject(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new WeightsException($"{path}: expected a JSON object");
            return doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new WeightsException($"{path}: not valid JSON ({e.Message})");
        }
    }

    /// <summary>A token as the JSON files write it: a string, or an AddedToken object with "content"; null for null.</summary>
    private static string? TokenText(JsonElement element, string path, string key)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Null:
                return null;
            case JsonValueKind.String:
                return element.GetString();
            case JsonValueKind.Object when element.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String:
                return content.GetString();
            default:
                throw new WeightsException($"{path}: {key} must be a token string or an object with \"content\"");
        }
    }
}
