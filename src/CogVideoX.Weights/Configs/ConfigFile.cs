using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace CogVideoX.Weights;

/// <summary>
/// Reads a component's config.json into its typed record: keys the record does not know are ignored, keys it does
/// know must have the right type (the error names the file, the key, what it must be and what was found), and
/// keys that are absent keep the record's defaults — diffusers' and transformers' constructor defaults.
/// </summary>
public static class ConfigFile
{
    public static T Load<T>(string path, JsonTypeInfo<T> type) where T : class, new() => Parse(ReadBytes(path), path, type);

    /// <summary>Loads a config and range-checks it (<paramref name="check"/>) before anything is sized from its values.</summary>
    internal static T Load<T>(string path, JsonTypeInfo<T> type, Action<T, ConfigLimits> check) where T : class, new()
    {
        var config = Load(path, type);
        check(config, new ConfigLimits(path));
        return config;
    }

    /// <summary>A config file's bytes, with the ways reading can fail turned into messages.</summary>
    public static byte[] ReadBytes(string path)
    {
        // A FIFO would block the read until something writes to it (see SafetensorsHeader.OpenRead).
        if (SafetensorsHeader.LengthBeforeOpening(path) == 0)
            throw new WeightsException($"{path}: the file is empty (0 bytes) or not a regular file (a FIFO, socket or device); expected a JSON config file (an incomplete download?)");
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (FileNotFoundException) when (new FileInfo(path).LinkTarget is { } target)
        {
            throw new WeightsException($"{path}: a link to '{target}', which does not exist (an incomplete download?)");
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new WeightsException($"{path}: config file not found; the model folder is incomplete (a diffusers pipeline folder has " +
                "model_index.json and a config.json in each component's folder): copy or download it again");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new WeightsException(Directory.Exists(path) ? $"{path}: is a folder, expected a JSON config file" : $"{path}: cannot be read ({e.Message})");
        }
    }

    public static T Parse<T>(ReadOnlySpan<byte> json, string path, JsonTypeInfo<T> type) where T : class, new()
    {
        using var file = ParseDocument(json, path);
        if (file.RootElement.ValueKind != JsonValueKind.Object)
            throw new WeightsException($"{path}: a config must be a JSON object, found {SafetensorsHeader.Describe(file.RootElement)}");
        var complete = WithDefaults(file.RootElement, type);
        try
        {
            return JsonSerializer.Deserialize(complete, type)
                ?? throw new WeightsException($"{path}: the config is null; expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new WeightsException(Explain(file.RootElement, path, type, e));
        }
    }

    internal static JsonDocument ParseDocument(ReadOnlySpan<byte> json, string path)
    {
        int invalid = Utf8Check.FirstInvalid(json);
        if (invalid >= 0)
            throw new WeightsException($"{path}: not valid UTF-8 text ({Utf8Check.Describe(json, invalid)}); a config is UTF-8 JSON, so the file is corrupt: use the one that came with the weights or download the model again");
        try
        {
            return JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new WeightsException($"{path}: not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1})");
        }
    }

    /// <summary>
    /// The file's object with every key it lacks filled in from the record's defaults. The source generator
    /// builds records with init-only properties through an object initializer that sets every property, so an
    /// absent key would otherwise become 0/null rather than the default (dotnet/runtime#84484); completing the
    /// JSON keeps the records immutable and their initializers the single source of the defaults.
    /// </summary>
    private static byte[] WithDefaults<T>(JsonElement file, JsonTypeInfo<T> type) where T : class, new()
    {
        var defaults = JsonSerializer.SerializeToElement(new T(), type);
        var present = new HashSet<string>(file.EnumerateObject().Select(p => p.Name), StringComparer.Ordinal);
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var p in defaults.EnumerateObject())
                if (!present.Contains(p.Name)) p.WriteTo(writer);
            foreach (var p in file.EnumerateObject())
                p.WriteTo(writer);
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Turns System.Text.Json's message (which names CLR types) into one about the file's keys.</summary>
    private static string Explain(JsonElement root, string path, JsonTypeInfo type, JsonException e)
    {
        var key = TopLevelKey(e.Path);
        if (key is null || !root.TryGetProperty(key, out var value))
            return $"{path}: invalid config ({e.Message})";
        var property = type.Properties.FirstOrDefault(p => p.Name == key);
        string expected = property is null ? "another type" : Expected(property);
        string found = value.ValueKind is JsonValueKind.Array or JsonValueKind.Object ? Truncate(value.GetRawText()) : SafetensorsHeader.Describe(value);
        return $"{path}: key '{key}' must be {expected}, found {found}";
    }

    /// <summary>"$.block_out_channels[1]" → "block_out_channels"; "$['odd.key']" → "odd.key".</summary>
    internal static string? TopLevelKey(string? jsonPath)
    {
        if (string.IsNullOrEmpty(jsonPath) || jsonPath == "$") return null;
        if (jsonPath.StartsWith("$['", StringComparison.Ordinal))
        {
            int end = jsonPath.IndexOf("']", 3, StringComparison.Ordinal);
            return end > 3 ? jsonPath[3..end] : null;
        }
        if (!jsonPath.StartsWith("$.", StringComparison.Ordinal)) return null;
        var rest = jsonPath[2..];
        int cut = rest.IndexOfAny(['.', '[']);
        return cut < 0 ? rest : rest[..cut];
    }

    private static string Expected(JsonPropertyInfo p)
    {
        var t = p.PropertyType;
        var underlying = Nullable.GetUnderlyingType(t);
        bool nullable = underlying is not null || p.IsSetNullable;
        t = underlying ?? t;
        string what =
            t == typeof(int) || t == typeof(long) ? "an integer" :
            t == typeof(double) || t == typeof(float) ? "a number" :
            t == typeof(bool) ? "true or false" :
            t == typeof(string) ? "a string" :
            t == typeof(int[]) ? "a list of integers" :
            t == typeof(double[]) ? "a list of numbers" :
            t == typeof(string[]) ? "a list of strings" :
            "a value of another type";
        return nullable ? what + " or null" : what;
    }

    private static string Truncate(string s)
    {
        s = string.Join(' ', s.Split((char[])['\n', '\r', '\t', ' '], StringSplitOptions.RemoveEmptyEntries));
        return s.Length <= 60 ? s : s[..57] + "...";
    }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    NumberHandling = JsonNumberHandling.Strict,
    AllowTrailingCommas = true,
    ReadCommentHandling = JsonCommentHandling.Skip,
    RespectNullableAnnotations = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip)]
[JsonSerializable(typeof(TransformerConfig))]
[JsonSerializable(typeof(VaeConfig))]
[JsonSerializable(typeof(SchedulerConfig))]
[JsonSerializable(typeof(T5Config))]
public sealed partial class ConfigJsonContext : JsonSerializerContext;
