using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using CogVideoX.Media;

namespace CogVideoX.Lab;

/// <summary>
/// The JSON written next to every video: every setting (as given and as resolved), the model's identity and a
/// checksum of its weight headers, timings per stage, peak memory, and software versions — enough to reproduce
/// the video and to tell whether an existing output is complete.
/// </summary>
public sealed record VideoSidecar
{
    public int SchemaVersion { get; init; } = 1;

    public string Tool { get; init; } = "cogvideox";

    public string ToolVersion { get; init; } = "";

    public DateTimeOffset CreatedUtc { get; init; }

    public GenerationSettings Settings { get; init; } = new();

    /// <summary>Defaults resolved at run time: scheduler, dtype, dynamic CFG, memory mode, frame count decoded (numbers and true/false as JSON numbers and booleans).</summary>
    [JsonConverter(typeof(ResolvedValuesConverter))]
    public Dictionary<string, string> Resolved { get; init; } = new();

    /// <summary>Folder path, or `repo@revision`.</summary>
    public string ModelIdentity { get; init; } = "";

    /// <summary>SHA-256 over the weight files' safetensors headers and sizes.</summary>
    public string WeightsChecksum { get; init; } = "";

    /// <summary>Seconds per stage: text_encoder, denoise, vae_decode, encode_video, total.</summary>
    public Dictionary<string, double> TimingsSeconds { get; init; } = new();

    public long PeakMemoryBytes { get; init; }

    /// <summary>"device" (GPU allocator) or "host" (process peak working set).</summary>
    public string PeakMemoryKind { get; init; } = "host";

    public string Device { get; init; } = "";

    public Dictionary<string, string> Software { get; init; } = new();

    /// <summary>Output video facts, so completeness can be checked without trusting file presence.</summary>
    public string VideoFile { get; init; } = "";

    public long VideoBytes { get; init; }

    public string VideoSha256 { get; init; } = "";

    public int FrameCount { get; init; }

    public int Width { get; init; }

    public int Height { get; init; }

    public string? TruncatedPromptText { get; init; }

    /// <summary>The LoRA adapters fused into the transformer: each file's full path, SHA-256 and strength (absent without LoRA).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public List<SidecarLora>? Lora { get; init; }

    /// <summary>For a study's job with the same settings as another: that job's output, whose video this file is (linked or copied).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? SameAs { get; init; }

    public static string Sha256Of(string path)
    {
        using var fs = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(fs));
    }

    public void Save(string path) =>
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, LabJsonContext.Readable.VideoSidecar));

    /// <summary>
    /// True when <paramref name="path"/> holds a sidecar this tool wrote (a JSON object naming the tool and its
    /// video), so replacing it loses nothing; any other file — model_index.json, a config — must not be replaced.
    /// </summary>
    public static bool IsSidecarFile(string path)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = doc.RootElement;
            return root.ValueKind == JsonValueKind.Object
                && root.TryGetProperty("tool", out var tool) && tool.ValueKind == JsonValueKind.String && tool.GetString() == "cogvideox"
                && root.TryGetProperty("video_file", out var video) && video.ValueKind == JsonValueKind.String;
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Reads a sidecar; null when missing or unreadable (an incomplete output).</summary>
    public static VideoSidecar? TryLoad(string path)
    {
        try
        {
            if (!File.Exists(path)) return null;
            return JsonSerializer.Deserialize(File.ReadAllBytes(path), LabJsonContext.Default.VideoSidecar);
        }
        catch (JsonException)
        {
            return null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>
    /// True when the sidecar exists, describes these settings (up to the GPU's ordinal), and the video next to it has the recorded size
    /// and SHA-256 — i.e. the job finished and nothing was truncated or replaced since.
    /// </summary>
    public static bool IsComplete(VideoJob job, bool verifyHash = true)
    {
        var s = TryLoad(job.SidecarPath);
        if (s is null || !s.Settings.DefinesSameVideoAs(job.Settings)) return false;
        var video = Path.Combine(Path.GetDirectoryName(job.SidecarPath)!, s.VideoFile);
        if (!File.Exists(video) || new FileInfo(video).Length != s.VideoBytes) return false;
        // A LoRA file replaced since (same name, other contents) makes another video.
        if (verifyHash && s.Lora is { } loras && loras.Any(l => !File.Exists(l.File) || CachedSha256(l.File) != l.Sha256)) return false;
        return !verifyHash || Sha256Of(video) == s.VideoSha256;
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, (long Length, DateTime Written, string Sha)> s_fileHashes = new(StringComparer.Ordinal);

    /// <summary>SHA-256 of a file, remembered while its size and modification time stay the same (LoRA files are large and shared by many jobs).</summary>
    private static string CachedSha256(string path)
    {
        var info = new FileInfo(path);
        if (s_fileHashes.TryGetValue(path, out var known) && known.Length == info.Length && known.Written == info.LastWriteTimeUtc) return known.Sha;
        var sha = Sha256Of(path);
        s_fileHashes[path] = (info.Length, info.LastWriteTimeUtc, sha);
        return sha;
    }
}

/// <summary>One LoRA file a video was made with.</summary>
public sealed record SidecarLora
{
    public string File { get; init; } = "";

    public string Sha256 { get; init; } = "";

    public double Strength { get; init; }

    /// <summary>Linear layers it adapts.</summary>
    public int Layers { get; init; }
}

[JsonSourceGenerationOptions(
    WriteIndented = true,
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(VideoSidecar))]
[JsonSerializable(typeof(GenerationSettings))]
[JsonSerializable(typeof(VideoJob))]
public sealed partial class LabJsonContext : JsonSerializerContext
{
    /// <summary>The same, writing text as people read it (`+`, quotes, apostrophes and accents unescaped).</summary>
    public static LabJsonContext Readable { get; } = new(new JsonSerializerOptions
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}

/// <summary>
/// The resolved values, kept as text in memory but written as what they are: whole numbers as JSON numbers,
/// true/false as booleans, the rest as strings (<c>"prompt_tokens": 220</c>, <c>"dynamic_cfg": false</c>). Reads either form.
/// </summary>
public sealed class ResolvedValuesConverter : JsonConverter<Dictionary<string, string>>
{
    public override Dictionary<string, string> Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException("resolved values: an object was expected");
        var values = new Dictionary<string, string>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            var key = reader.GetString()!;
            reader.Read();
            values[key] = reader.TokenType switch
            {
                JsonTokenType.String => reader.GetString()!,
                JsonTokenType.Number => System.Text.Encoding.UTF8.GetString(reader.HasValueSequence ? System.Buffers.BuffersExtensions.ToArray(reader.ValueSequence) : reader.ValueSpan),
                JsonTokenType.True => "true",
                JsonTokenType.False => "false",
                JsonTokenType.Null => "",
                _ => throw new JsonException($"resolved value {key}: a string, number or boolean was expected"),
            };
        }
        return values;
    }

    public override void Write(Utf8JsonWriter writer, Dictionary<string, string> value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        foreach (var (key, text) in value)
        {
            if (text is "true" or "false") writer.WriteBoolean(key, text == "true");
            else if (IsWholeNumber(text)) writer.WriteNumber(key, long.Parse(text, System.Globalization.CultureInfo.InvariantCulture));
            else writer.WriteString(key, text);
        }
        writer.WriteEndObject();
    }

    /// <summary>Digits with an optional minus and no leading zeros, so the number reads back as the same text.</summary>
    private static bool IsWholeNumber(string text)
    {
        var digits = text.StartsWith('-') ? text.AsSpan(1) : text.AsSpan();
        return digits.Length is > 0 and <= 18 && (digits.Length == 1 || digits[0] != '0') && !digits.ContainsAnyExceptInRange('0', '9');
    }
}
