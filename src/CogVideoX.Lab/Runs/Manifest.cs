using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using CogVideoX.Lab.Metrics;
using CogVideoX.Lab.Specs;

namespace CogVideoX.Lab.Runs;

/// <summary>One line of a run manifest: a video rendered (or found complete but unrecorded), or a failure.</summary>
public sealed record ManifestRecord
{
    /// <summary>
    /// <c>done</c> (rendered by this run), <c>linked</c> (the same settings as <see cref="SameAs"/>: its file, linked or
    /// copied), <c>recovered</c> (found complete, recorded from its sidecar), <c>failed</c>.
    /// </summary>
    public required string Event { get; init; }

    public required string Spec { get; init; }

    public required string RunId { get; init; }

    public int Index { get; init; }

    public required string Experiment { get; init; }

    public required string Name { get; init; }

    /// <summary>Relative to the output folder.</summary>
    public required string Output { get; init; }

    public string Sidecar { get; init; } = "";

    public GenerationSettings Settings { get; init; } = new();

    /// <summary>The renderer's stages (from the sidecar): text_encoder, denoise, vae_decode, encode_video, total.</summary>
    public Dictionary<string, double> TimingsSeconds { get; init; } = new();

    /// <summary>The whole job as the runner saw it, claim to manifest.</summary>
    public double WallSeconds { get; init; }

    public long PeakMemoryBytes { get; init; }

    public string PeakMemoryKind { get; init; } = "";

    public string Device { get; init; } = "";

    public int Worker { get; init; }

    public string Host { get; init; } = "";

    public int Pid { get; init; }

    public DateTimeOffset StartedUtc { get; init; }

    public DateTimeOffset FinishedUtc { get; init; }

    public string? VideoSha256 { get; init; }

    public int FrameCount { get; init; }

    /// <summary>Measured on the renderer's frames (before encoding); the report recomputes them from the MP4s.</summary>
    public FrameMetrics? Metrics { get; init; }

    public string? Error { get; init; }

    /// <summary>For <c>linked</c>: the output (relative) rendered with the same settings, whose file this is.</summary>
    public string? SameAs { get; init; }

    /// <summary>For <c>linked</c>: <c>hard link</c> or <c>copy</c>.</summary>
    public string? Linked { get; init; }
}

/// <summary>
/// The run log: JSON lines appended one whole line at a time under an exclusive lock, so workers and shards can
/// share it; a line torn by a kill is skipped when read and sealed off by the next append.
/// </summary>
public sealed class Manifest(string path)
{
    public string Path { get; } = path;

    public static Manifest For(string outputDir, string specName) => new(System.IO.Path.Combine(outputDir, StudyPlan.ManifestFileName(specName)));

    public void Append(ManifestRecord record)
    {
        var line = JsonSerializer.Serialize(record, LabLineJsonContext.Readable.ManifestRecord);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!);
        WithRetry(() =>
        {
            // FileShare.None takes an exclusive lock (flock on Unix): appenders from other processes wait their turn.
            using var fs = new FileStream(Path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            bool sealTornLine = false;
            if (fs.Length > 0)
            {
                fs.Seek(-1, SeekOrigin.End);
                sealTornLine = fs.ReadByte() != '\n';
            }
            fs.Seek(0, SeekOrigin.End);
            fs.Write(Encoding.UTF8.GetBytes((sealTornLine ? "\n" : "") + line + "\n"));
            fs.Flush(flushToDisk: true);
        });
    }

    /// <summary>All whole records in order; lines that do not parse (a torn last line) are counted, not fatal.</summary>
    public (List<ManifestRecord> Records, int Unreadable) Read()
    {
        var records = new List<ManifestRecord>();
        int bad = 0;
        if (!File.Exists(Path)) return (records, 0);
        byte[] bytes = [];
        WithRetry(() =>
        {
            using var fs = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read);
            bytes = new byte[fs.Length];
            fs.ReadExactly(bytes);
        });
        foreach (var raw in Encoding.UTF8.GetString(bytes).Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0) continue;
            try
            {
                if (JsonSerializer.Deserialize(line, LabLineJsonContext.Default.ManifestRecord) is { } r) records.Add(r);
                else bad++;
            }
            catch (JsonException)
            {
                bad++;
            }
        }
        return (records, bad);
    }

    private static void WithRetry(Action action)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                action();
                return;
            }
            catch (IOException) when (attempt < 200)
            {
                // Another process holds the lock for its one-line write.
                Thread.Sleep(10 + Random.Shared.Next(20));
            }
        }
    }
}

/// <summary>Left next to an output when its render failed, so the other workers of the same run do not retry it.</summary>
public sealed record FailureMarker(string RunId, string Error);

[JsonSourceGenerationOptions(
    WriteIndented = false,
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ManifestRecord))]
[JsonSerializable(typeof(ClaimRecord))]
[JsonSerializable(typeof(RunEvent))]
[JsonSerializable(typeof(FailureMarker))]
public sealed partial class LabLineJsonContext : JsonSerializerContext
{
    /// <summary>The same, writing text as people read it (`+`, quotes, apostrophes and accents unescaped).</summary>
    public static LabLineJsonContext Readable { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}

[JsonSourceGenerationOptions(
    WriteIndented = true,
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(StudyPlan))]
[JsonSerializable(typeof(RunSummary))]
[JsonSerializable(typeof(List<DryRunRow>))]
[JsonSerializable(typeof(MetricsFile))]
public sealed partial class LabRunJsonContext : JsonSerializerContext
{
    /// <summary>The same, writing text as people read it (`+`, quotes, apostrophes and accents unescaped).</summary>
    public static LabRunJsonContext Readable { get; } = new(new JsonSerializerOptions
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
