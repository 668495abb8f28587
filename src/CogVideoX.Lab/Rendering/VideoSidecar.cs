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

    /// <summary>Defaults resolved at run time: scheduler, dtype, dynamic CFG, memory mode, frame count decoded.</summary>
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

    public static string Sha256Of(string path)
    {
        using var fs = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(fs));
    }

    public void Save(string path) =>
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, LabJsonContext.Default.VideoSidecar));

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
        return !verifyHash || Sha256Of(video) == s.VideoSha256;
    }
}

[JsonSourceGenerationOptions(
    WriteIndented = true,
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(VideoSidecar))]
[JsonSerializable(typeof(GenerationSettings))]
[JsonSerializable(typeof(VideoJob))]
public sealed partial class LabJsonContext : JsonSerializerContext;
