using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Lora;

/// <summary>
/// One layer a LoRA file adapts: <c>W += scale · B·A</c> (and, with a LoRA bias, <c>b += scale · bias</c>), where
/// <see cref="Scale"/> is PEFT's <c>lora_alpha / r</c> (<c>/ √r</c> with rsLoRA) before the user's strength.
/// </summary>
/// <param name="Module">The layer's path in the transformer ("transformer_blocks.0.attn1.to_q").</param>
/// <param name="Rank">r: rows of A, columns of B.</param>
/// <param name="Scale">lora_alpha / r (or / √r), as PEFT computes it for this layer.</param>
/// <param name="A">lora_A, float32 [r, in], row-major.</param>
/// <param name="B">lora_B, float32 [out, r], row-major.</param>
/// <param name="Bias">lora_B's bias [out] (PEFT's lora_bias), or null.</param>
/// <param name="KeyA">The tensor name in the file (for messages).</param>
public sealed record LoraLayer(string Module, int Rank, double Scale, float[] A, int In, float[] B, int Out, float[]? Bias, string KeyA, string KeyB)
{
    public int[] ShapeA => [Rank, In];

    public int[] ShapeB => [Out, Rank];
}

/// <summary>
/// A LoRA file read the way diffusers' <c>CogVideoXLoraLoaderMixin.load_lora_weights</c> reads one: every key must
/// name a LoRA tensor (contain "lora"), the transformer's keys carry the <c>transformer.</c> prefix, a file whose first
/// key is not PEFT's <c>lora_A</c> is in the older attention-processor spelling and is converted
/// (<c>processor.to_q_lora.down</c> → <c>to_q.lora_A</c>, <c>lora.up</c> → <c>lora_B</c>, as
/// <c>convert_unet_state_dict_to_peft</c>), the rank comes from <c>lora_B</c>, and the scale from the file's
/// <c>lora_adapter_metadata</c> (PEFT's LoraConfig: r, lora_alpha, rank_pattern, alpha_pattern, use_rslora) or, without
/// it, lora_alpha = rank for every layer (scale 1: <c>get_peft_kwargs</c>). What diffusers would drop quietly — keys
/// of another component, tensors that are not LoRA weights — is refused here, naming the key.
/// </summary>
public sealed class LoraAdapter
{
    /// <summary>The safetensors metadata entry diffusers writes its adapter config into.</summary>
    public const string MetadataKey = "lora_adapter_metadata";

    /// <summary>The prefix of the transformer's keys in a pipeline LoRA file.</summary>
    public const string Prefix = "transformer.";

    // diffusers' KEYS_TO_ALWAYS_REPLACE, then UNET_TO_DIFFUSERS in its order (the first pattern found is replaced).
    private static readonly (string Pattern, string Replacement)[] OldSpellingPatterns =
    [
        (".to_out_lora.up", ".to_out.0.lora_B"),
        (".to_out_lora.down", ".to_out.0.lora_A"),
        (".to_q_lora.down", ".to_q.lora_A"),
        (".to_q_lora.up", ".to_q.lora_B"),
        (".to_k_lora.down", ".to_k.lora_A"),
        (".to_k_lora.up", ".to_k.lora_B"),
        (".to_v_lora.down", ".to_v.lora_A"),
        (".to_v_lora.up", ".to_v.lora_B"),
        (".lora.up", ".lora_B"),
        (".lora.down", ".lora_A"),
        (".to_out.lora_magnitude_vector", ".to_out.0.lora_magnitude_vector"),
    ];

    private LoraAdapter(string path, string sha256, IReadOnlyList<LoraLayer> layers, bool oldSpelling, bool hasMetadata)
    {
        Path = path;
        Sha256 = sha256;
        Layers = layers;
        OldSpelling = oldSpelling;
        HasMetadata = hasMetadata;
    }

    /// <summary>The file as given.</summary>
    public string Path { get; }

    /// <summary>SHA-256 of the file's bytes (lower-case hex), for the sidecar.</summary>
    public string Sha256 { get; }

    /// <summary>The layers it adapts, in ordinal order of their paths.</summary>
    public IReadOnlyList<LoraLayer> Layers { get; }

    /// <summary>Whether the keys were in the older spelling diffusers converts.</summary>
    public bool OldSpelling { get; }

    /// <summary>Whether the file carried diffusers' adapter metadata (else every layer's scale is 1).</summary>
    public bool HasMetadata { get; }

    /// <summary>Reads and checks a LoRA file (errors name the file and the key, and say what to do).</summary>
    public static LoraAdapter Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path))
            throw Error($"lora: '{path}' is a folder; give the LoRA's .safetensors file itself (for example {System.IO.Path.Combine(path, "pytorch_lora_weights.safetensors")})");
        if (!File.Exists(path))
            throw Error($"lora: file '{path}' not found; give the path of a LoRA .safetensors file (diffusers/PEFT format)");
        if (SafetensorsFile.IsPickle(path))
            throw Error($"lora: '{path}' is a pickle checkpoint; only .safetensors LoRA files are read (pickle files can run code when loaded). Convert it with safetensors first.");
        SafetensorsFile file;
        try
        {
            file = SafetensorsFile.Open(path);
        }
        catch (WeightsException e)
        {
            throw new CogVideoXException($"lora: '{path}' is not a readable safetensors file: {e.Message}", e, LoraSpec.UsageExitCode);
        }
        using (file)
        {
            string sha = Sha256Of(path);
            return Read(path, sha, file);
        }
    }

    private static LoraAdapter Read(string path, string sha, SafetensorsFile file)
    {
        var keys = file.Entries.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        if (keys.Count == 0) throw Error($"lora: '{path}' holds no tensors; it is not a LoRA file");
        foreach (var key in keys)
        {
            if (key.Contains("dora_scale", StringComparison.Ordinal) || key.Contains("lora_magnitude_vector", StringComparison.Ordinal))
                throw Error($"lora: '{path}' is a DoRA adapter ('{key}'); DoRA is not supported here, only plain LoRA (lora_A/lora_B)");
            if (!key.Contains("lora", StringComparison.Ordinal))
                throw Error(key.EndsWith(".alpha", StringComparison.Ordinal)
                    ? $"lora: '{path}' holds '{key}', an alpha tensor (kohya spelling); diffusers' CogVideoX loader refuses those (\"all LoRA param names must contain 'lora'\"). " +
                      "Its scale must come from the file's lora_adapter_metadata (lora_alpha) — convert the file to the diffusers/PEFT format."
                    : $"lora: '{path}' holds '{key}', which is not a LoRA weight (diffusers' CogVideoX loader needs every tensor name to contain 'lora'); is this a model checkpoint rather than a LoRA?");
            if (!key.StartsWith(Prefix, StringComparison.Ordinal))
                throw Error($"lora: '{path}' holds '{key}' without the 'transformer.' prefix that CogVideoX LoRA files carry " +
                    "(diffusers' load_lora_weights reads only 'transformer.…' keys and would ignore it): this LoRA was made for another model or saved without the prefix. " +
                    $"Expected names like 'transformer.transformer_blocks.0.attn1.to_q.lora_A.weight'.");
        }
        var stripped = keys.Select(k => (Key: k, Name: k[Prefix.Length..])).ToList();
        bool old = !stripped[0].Name.Contains("lora_A", StringComparison.Ordinal);
        if (old) stripped = stripped.Select(k => (k.Key, ConvertOldSpelling(k.Name))).ToList();

        var a = new Dictionary<string, string>(StringComparer.Ordinal);
        var b = new Dictionary<string, string>(StringComparer.Ordinal);
        var bias = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, name) in stripped)
        {
            var (target, module) = name switch
            {
                _ when name.EndsWith(".lora_A.weight", StringComparison.Ordinal) => (a, name[..^".lora_A.weight".Length]),
                _ when name.EndsWith(".lora_B.weight", StringComparison.Ordinal) => (b, name[..^".lora_B.weight".Length]),
                _ when name.EndsWith(".lora_B.bias", StringComparison.Ordinal) => (bias, name[..^".lora_B.bias".Length]),
                _ => throw Error($"lora: '{path}' holds '{key}'{(old ? $" (read as '{name}' in the older spelling)" : "")}, which is not a LoRA weight name diffusers reads for CogVideoX; " +
                    "expected 'transformer.MODULE.lora_A.weight' and 'transformer.MODULE.lora_B.weight' (or the older 'MODULE.lora.down.weight' / 'lora.up.weight')"),
            };
            target[module] = key;
        }
        foreach (var module in a.Keys.Where(m => !b.ContainsKey(m)))
            throw Error($"lora: '{path}' has '{a[module]}' but no lora_B for the layer '{module}'; the file is incomplete");
        foreach (var module in b.Keys.Concat(bias.Keys).Where(m => !a.ContainsKey(m)).Distinct())
            throw Error($"lora: '{path}' has '{(b.TryGetValue(module, out var k) ? k : bias[module])}' but no lora_A for the layer '{module}'; the file is incomplete");

        var config = ReadConfig(path, file);
        var layers = new List<LoraLayer>();
        foreach (var module in a.Keys.OrderBy(m => m, StringComparer.Ordinal))
        {
            var entryA = file.Entry(a[module]);
            var entryB = file.Entry(b[module]);
            foreach (var (entry, kind) in new[] { (entryA, "lora_A"), (entryB, "lora_B") })
            {
                if (!entry.DType.IsFloat())
                    throw Error($"lora: '{path}': '{entry.Name}' is {entry.DType.Name()}; LoRA weights are float tensors (F32, F16 or BF16)");
                if (entry.Shape.Length == 4)
                    throw Error($"lora: '{path}': '{entry.Name}' is a convolution LoRA {Layout.Format(entry.Shape)}; only linear layers can be adapted here");
                if (entry.Shape.Length != 2)
                    throw Error($"lora: '{path}': '{entry.Name}' has shape {Layout.Format(entry.Shape)}; a {kind} weight is a matrix ({(kind == "lora_A" ? "[rank, in]" : "[out, rank]")})");
            }
            int rank = entryB.Shape[1];
            if (entryA.Shape[0] != rank)
                throw Error($"lora: '{path}': layer '{module}' has lora_A {Layout.Format(entryA.Shape)} and lora_B {Layout.Format(entryB.Shape)}: " +
                    $"their ranks differ ({entryA.Shape[0]} and {rank}); the file is damaged");
            var (configRank, alpha) = config.For(module, rank);
            if (configRank != rank)
                throw Error($"lora: '{path}': layer '{module}' has rank {rank} (lora_B {Layout.Format(entryB.Shape)}) but the file's {MetadataKey} gives it r = {configRank}; " +
                    "diffusers refuses such a file too (size mismatch); fix the metadata (rank_pattern) or re-save the LoRA");
            double scale = config.UseRsLora ? alpha / Math.Sqrt(rank) : alpha / rank;
            float[]? biasValues = null;
            if (bias.TryGetValue(module, out var biasKey))
            {
                var entry = file.Entry(biasKey);
                if (entry.Shape.Length != 1 || entry.Shape[0] != entryB.Shape[0])
                    throw Error($"lora: '{path}': '{biasKey}' has shape {Layout.Format(entry.Shape)}, expected [{entryB.Shape[0]}] (lora_B's outputs)");
                biasValues = Values(file, biasKey);
            }
            layers.Add(new LoraLayer(module, rank, scale, Values(file, a[module]), entryA.Shape[1], Values(file, b[module]), entryB.Shape[0], biasValues, a[module], b[module]));
        }
        return new LoraAdapter(path, sha, layers, old, config.FromMetadata);
    }

    /// <summary>diffusers' conversion of the older spelling (KEYS_TO_ALWAYS_REPLACE, then the first UNET_TO_DIFFUSERS pattern found).</summary>
    public static string ConvertOldSpelling(string key)
    {
        key = key.Replace(".processor.", ".", StringComparison.Ordinal);
        foreach (var (pattern, replacement) in OldSpellingPatterns)
        {
            if (!key.Contains(pattern, StringComparison.Ordinal)) continue;
            return key.Replace(pattern, replacement, StringComparison.Ordinal);
        }
        return key;
    }

    private static float[] Values(SafetensorsFile file, string key)
    {
        using var t = file.Load(key, CpuBackend.Instance, DType.F32);
        return t.ToFloatArray();
    }

    private static string Sha256Of(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private static CogVideoXException Error(string message) => new(message, LoraSpec.UsageExitCode);

    /// <summary>PEFT's LoraConfig as diffusers builds it for CogVideoX: from the metadata when the file has it, else alpha = rank.</summary>
    private sealed record AdapterConfig(bool FromMetadata, int R, double Alpha, IReadOnlyList<(string Pattern, double Value)> RankPattern,
        IReadOnlyList<(string Pattern, double Value)> AlphaPattern, bool UseRsLora)
    {
        /// <summary>(r, lora_alpha) of a layer whose tensors have rank <paramref name="tensorRank"/>.</summary>
        public (int R, double Alpha) For(string module, int tensorRank)
        {
            if (!FromMetadata) return (tensorRank, tensorRank);
            double r = Match(RankPattern, module) ?? R;
            double alpha = Match(AlphaPattern, module) ?? Alpha;
            return ((int)r, alpha);
        }

        // peft.utils.other.get_pattern_key: the first pattern p (in the config's order) with re.match(rf"(.*\.)?({p})$", name).
        private static double? Match(IReadOnlyList<(string Pattern, double Value)> patterns, string module)
        {
            foreach (var (pattern, value) in patterns)
                if (Regex.IsMatch(module, $@"^(.*\.)?({pattern})$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)))
                    return value;
            return null;
        }
    }

    private static AdapterConfig ReadConfig(string path, SafetensorsFile file)
    {
        if (!file.Metadata.TryGetValue(MetadataKey, out var json) || string.IsNullOrEmpty(json))
            return new AdapterConfig(false, 0, 0, [], [], false);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw Error($"lora: '{path}': the {MetadataKey} entry of its header is not valid JSON ({e.Message})");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw Error($"lora: '{path}': the {MetadataKey} entry of its header is not a JSON object");
            // diffusers keeps the entries under the transformer's prefix and strips it (load_lora_adapter, prefix "transformer").
            var values = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
            foreach (var p in doc.RootElement.EnumerateObject())
                if (p.Name.StartsWith(Prefix, StringComparison.Ordinal)) values[p.Name[Prefix.Length..]] = p.Value.Clone();
            if (values.TryGetValue("use_dora", out var dora) && dora.ValueKind == JsonValueKind.True)
                throw Error($"lora: '{path}' is a DoRA adapter (use_dora in its {MetadataKey}); DoRA is not supported here, only plain LoRA");
            // PEFT's LoraConfig defaults: r = 8, lora_alpha = 8.
            double r = Number(path, values, "r") ?? 8;
            double alpha = Number(path, values, "lora_alpha") ?? 8;
            bool rs = values.TryGetValue("use_rslora", out var rsValue) && rsValue.ValueKind == JsonValueKind.True;
            return new AdapterConfig(true, (int)r, alpha, Patterns(path, values, "rank_pattern"), Patterns(path, values, "alpha_pattern"), rs);
        }
    }

    private static double? Number(string path, Dictionary<string, JsonElement> values, string key)
    {
        if (!values.TryGetValue(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d) && double.IsFinite(d) && d > 0) return d;
        throw Error($"lora: '{path}': '{Prefix}{key}' in its {MetadataKey} is {v.GetRawText()}; expected a positive number");
    }

    private static List<(string, double)> Patterns(string path, Dictionary<string, JsonElement> values, string key)
    {
        var list = new List<(string, double)>();
        if (!values.TryGetValue(key, out var v) || v.ValueKind == JsonValueKind.Null) return list;
        if (v.ValueKind != JsonValueKind.Object)
            throw Error($"lora: '{path}': '{Prefix}{key}' in its {MetadataKey} is not an object of layer patterns");
        foreach (var p in v.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetDouble(out var d) || !double.IsFinite(d) || d <= 0)
                throw Error($"lora: '{path}': '{Prefix}{key}' gives '{p.Name}' the value {p.Value.GetRawText()}; expected a positive number");
            try
            {
                _ = new Regex(p.Name, RegexOptions.None, TimeSpan.FromSeconds(1));
            }
            catch (ArgumentException)
            {
                throw Error($"lora: '{path}': '{Prefix}{key}' has the pattern '{p.Name}', which is not a valid regular expression");
            }
            list.Add((p.Name, d));
        }
        return list;
    }

    /// <summary>A short description: "style.safetensors (12 layers, rank 4, old spelling)".</summary>
    public override string ToString()
    {
        var ranks = Layers.Select(l => l.Rank).Distinct().Order().Select(r => r.ToString(CultureInfo.InvariantCulture));
        return $"{System.IO.Path.GetFileName(Path)} ({Layers.Count} layers, rank {string.Join("/", ranks)}{(OldSpelling ? ", older key spelling" : "")})";
    }
}
