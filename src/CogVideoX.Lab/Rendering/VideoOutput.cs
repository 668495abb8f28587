using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Lab.Runs;
using CogVideoX.Media;

namespace CogVideoX.Lab;

/// <summary>
/// How every renderer puts a video on disk: the destination checked before any work, stale temporary files of
/// killed runs removed, the MP4 encoded and verified under a temporary name, its sidecar written under one too,
/// and both renamed into place only when both are complete — so a full disk, a kill or a failed write never
/// leaves a broken video, a video without its sidecar, or a good earlier pair replaced by a bad one.
/// </summary>
public static class VideoOutput
{
    /// <summary>
    /// Before any work: the video is an .mp4, its folder exists or can be made and written to (not read-only, not
    /// full, no file in the way), and its sidecar path holds nothing but an earlier sidecar of ours.
    /// <paramref name="label"/> prefixes the path in messages (e.g. "--output ").
    /// </summary>
    public static void Check(VideoJob job, string label = "")
    {
        if (!string.Equals(Path.GetExtension(job.OutputPath), ".mp4", StringComparison.OrdinalIgnoreCase))
            throw new CogVideoXException($"{label}{job.OutputPath}: the output must be an .mp4 file (the sidecar goes next to it as .json)", GenerationRules.UsageExitCode);
        var sidecar = job.SidecarPath;
        if (Directory.Exists(sidecar))
            throw new CogVideoXException($"{label}{job.OutputPath}: its sidecar would be written to {sidecar}, which is a folder; choose another name for the video", GenerationRules.UsageExitCode);
        if (File.Exists(sidecar) && !VideoSidecar.IsSidecarFile(sidecar))
            throw new CogVideoXException(
                $"{label}{job.OutputPath}: its sidecar would be written to {sidecar}, which exists and is not a cogvideox sidecar — writing it would destroy that file; " +
                "choose another name or folder for the video", GenerationRules.UsageExitCode);
        AtomicFile.CheckWritable(job.OutputPath, label.Length > 0 ? label.TrimEnd() : "the video");
    }

    /// <summary>
    /// Encodes <paramref name="frames"/> to the job's MP4 and writes its sidecar, as a verified pair.
    /// <paramref name="describe"/> makes the sidecar (it may use the encoding time); the video's own facts — file name,
    /// size, SHA-256, frame count and size — are filled in here, the same for every renderer.
    /// </summary>
    /// <param name="progress">Hears (frames handed to the encoder, all frames), for progress bars.</param>
    public static VideoSidecar Write(VideoJob job, VideoFrames frames, Func<EncodedVideo, VideoSidecar> describe, Action<int, int>? progress = null)
    {
        Check(job);
        CleanTemporaryFiles(job.OutputPath, onlyDeadOwners: true);
        var encoding = new VideoEncoding { Fps = job.Settings.Fps, Progress = progress };
        var watch = Stopwatch.StartNew();
        VideoSidecar? sidecar = null;
        AtomicFile.WritePair(
            job.OutputPath, "the video", tmp => VideoEncoder.Encode(frames, tmp, encoding, job.OutputPath),
            job.SidecarPath, "the sidecar", tmp =>
            {
                var encoded = new EncodedVideo(Path.GetFileName(job.OutputPath), new FileInfo(tmp).Length, VideoSidecar.Sha256Of(tmp), watch.Elapsed.TotalSeconds);
                sidecar = describe(encoded) with
                {
                    VideoFile = encoded.FileName,
                    VideoBytes = encoded.Bytes,
                    VideoSha256 = encoded.Sha256,
                    FrameCount = frames.Count,
                    Width = frames.Width,
                    Height = frames.Height,
                };
                return JsonSerializer.Serialize(sidecar, LabJsonContext.Readable.VideoSidecar);
            });
        return sidecar!;
    }

    /// <summary>
    /// Removes the temporary files (<c>.NAME.partial-PID-…</c>, as <see cref="AtomicFile"/> names them) that runs
    /// writing <paramref name="outputPath"/> left behind. With <paramref name="onlyDeadOwners"/>, only those whose
    /// process is gone from this host — a live writer's file is never touched; without, all of them (for a caller
    /// that holds the job's claim, so every one is a dead holder's).
    /// </summary>
    public static int CleanTemporaryFiles(string outputPath, bool onlyDeadOwners)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(outputPath))!;
        if (!Directory.Exists(dir)) return 0;
        var prefix = $".{Path.GetFileNameWithoutExtension(outputPath)}.partial-";
        int n = 0;
        foreach (var file in Directory.EnumerateFiles(dir, prefix + "*"))
        {
            if (onlyDeadOwners)
            {
                var rest = Path.GetFileName(file)[prefix.Length..];
                var dash = rest.IndexOf('-');
                if (dash <= 0 || !int.TryParse(rest[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out var pid)) continue;
                if (pid == Environment.ProcessId || ProcessIdentity.StartTicksOf(pid) is not null) continue;
            }
            if (AtomicFile.TryDelete(file)) n++;
        }
        return n;
    }
}

/// <summary>An encoded video's facts for its sidecar: final file name, size, SHA-256 and the seconds encoding took.</summary>
public sealed record EncodedVideo(string FileName, long Bytes, string Sha256, double EncodeSeconds);
