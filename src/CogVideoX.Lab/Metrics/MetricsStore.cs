using System.Text.Json;
using CogVideoX.Lab.Runs;
using CogVideoX.Lab.Specs;
using CogVideoX.Media;

namespace CogVideoX.Lab.Metrics;

/// <summary>Metrics of every finished video of a plan, as stored in <c>&lt;spec&gt;.metrics.json</c>.</summary>
public sealed record MetricsFile
{
    public int SchemaVersion { get; init; } = 1;

    /// <summary>Output path (relative) → its metrics.</summary>
    public Dictionary<string, VideoMetricsEntry> Videos { get; init; } = new();
}

public sealed record VideoMetricsEntry
{
    public required string VideoSha256 { get; init; }

    public int Frames { get; init; }

    public int Width { get; init; }

    public int Height { get; init; }

    public required FrameMetrics Metrics { get; init; }

    /// <summary>The reference video compared against (relative output path), when the experiment has one.</summary>
    public string? Reference { get; init; }

    public string? ReferenceSha256 { get; init; }

    /// <summary>Null for the reference itself, or when the reference is missing or of another size.</summary>
    public ReferenceMetrics? Difference { get; init; }
}

/// <summary>
/// Computes metrics from the MP4s themselves (decoded with ffmpeg), so they can be recomputed for any finished run
/// and PSNR/SSIM compare like with like. Entries are kept while the video's (and its reference's) SHA-256 is
/// unchanged; <c>force</c> recomputes everything.
/// </summary>
public static class MetricsStore
{
    public static string PathFor(string outputDir, string specName) => Path.Combine(outputDir, specName + ".metrics.json");

    public static MetricsFile Load(string outputDir, string specName)
    {
        var path = PathFor(outputDir, specName);
        try
        {
            if (File.Exists(path))
                return JsonSerializer.Deserialize(File.ReadAllBytes(path), LabRunJsonContext.Default.MetricsFile) ?? new MetricsFile();
        }
        catch (JsonException)
        {
            // A cache: unreadable means recompute.
        }
        return new MetricsFile();
    }

    public static MetricsFile Refresh(StudyPlan plan, string outputDir, bool force = false, Action<string>? log = null)
    {
        var old = force ? new MetricsFile() : Load(outputDir, plan.SpecName);
        var result = new MetricsFile();
        // The same video against the same reference measures the same: a video linked into several places (the exact
        // video of a prompt in every experiment that compares with it) is decoded and measured once.
        var measured = new Dictionary<(string Sha, string? ReferenceSha), VideoMetricsEntry>();
        foreach (var exp in plan.Experiments)
        {
            // Sidecar checksums say which videos are finished and whether cached entries still describe them.
            var finished = new Dictionary<string, (PlannedJob Job, string Sha)>();
            foreach (var job in exp.Jobs)
            {
                var vj = job.ToVideoJob(outputDir);
                if (VideoSidecar.IsComplete(vj) && VideoSidecar.TryLoad(vj.SidecarPath) is { } s)
                    finished[job.Name] = (job, s.VideoSha256);
            }
            VideoFrames? referenceFrames = null;
            string? referenceFramesOf = null;
            foreach (var (job, sha) in finished.Values.OrderBy(j => j.Job.Index))
            {
                string? refOutput = null, refSha = null;
                if (job.ReferenceName is { } refName && finished.TryGetValue(refName, out var reference))
                    (refOutput, refSha) = (reference.Job.Output, reference.Sha);
                if (old.Videos.TryGetValue(job.Output, out var cached) && cached.VideoSha256 == sha && cached.ReferenceSha256 == refSha)
                {
                    result.Videos[job.Output] = cached;
                    measured.TryAdd((sha, refSha), cached);
                    continue;
                }
                if (measured.TryGetValue((sha, refSha), out var same))
                {
                    result.Videos[job.Output] = same with { Reference = refOutput };
                    continue;
                }
                log?.Invoke($"metrics: {job.Output}");
                var frames = VideoDecoder.Read(Path.Combine(outputDir, job.Output));
                ReferenceMetrics? difference = null;
                if (refOutput is not null)
                {
                    if (referenceFramesOf != refOutput)
                    {
                        referenceFrames = VideoDecoder.Read(Path.Combine(outputDir, refOutput));
                        referenceFramesOf = refOutput;
                    }
                    difference = VideoMetrics.Compare(frames, referenceFrames!);
                }
                result.Videos[job.Output] = measured[(sha, refSha)] = new VideoMetricsEntry
                {
                    VideoSha256 = sha,
                    Frames = frames.Count,
                    Width = frames.Width,
                    Height = frames.Height,
                    Metrics = VideoMetrics.Measure(frames),
                    Reference = refOutput,
                    ReferenceSha256 = refSha,
                    Difference = difference,
                };
            }
        }
        var json = JsonSerializer.Serialize(result, LabRunJsonContext.Readable.MetricsFile);
        var path = PathFor(outputDir, plan.SpecName);
        if (!File.Exists(path) || File.ReadAllText(path) != json) AtomicFile.WriteAllText(path, json);
        return result;
    }
}
