using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace CogVideoX.Weights;

/// <summary>Reads a component's config.json into its typed record: unknown keys ignored, a wrong type named.</summary>
public static class ConfigFile
{
    public static T Load<T>(string path, JsonTypeInfo<T> type) where T : class
    {
        if (!File.Exists(path)) throw new WeightsException($"{path}: config file not found");
        byte[] bytes = File.ReadAllBytes(path);
        return Parse(bytes, path, type);
    }

    public static T Parse<T>(ReadOnlySpan<byte> json, string path, JsonTypeInfo<T> type) where T : class
    {
        try
        {
            return JsonSerializer.Deserialize(json, type)
                ?? throw new WeightsException($"{path}: the config is null; expected a JSON object");
        }
        catch (JsonException e)
        {
            var key = string.IsNullOrEmpty(e.Path) ? "" : $" at key '{e.Path.TrimStart('$', '.')}'";
            throw new WeightsException($"{path}: invalid config{key}: {Describe(e)}");
        }
    }

    private static string Describe(JsonException e)
    {
        // System.Text.Json's messages name CLR types; say what the file should hold instead.
        var m = e.Message;
        int cut = m.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? m[..cut] : m;
    }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    NumberHandling = JsonNumberHandling.Strict,
    AllowTrailingCommas = true,
    ReadCommentHandling = JsonCommentHandling.Skip,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip)]
[JsonSerializable(typeof(TransformerConfig))]
[JsonSerializable(typeof(VaeConfig))]
[JsonSerializable(typeof(SchedulerConfig))]
[JsonSerializable(typeof(T5Config))]
public sealed partial class ConfigJsonContext : JsonSerializerContext;
