using System.Diagnostics;
using System.Runtime.InteropServices;
using CogVideoX.Diffusion;
using CogVideoX.Engine.Testing;
using CogVideoX.Media;

namespace CogVideoX.Lab;

/// <summary>
/// A renderer without a model, for rehearsing the workbench (<c>--renderer synthetic</c>) and for its tests: it
/// draws a deterministic moving pattern from the settings — the seed places it, the prompt picks its colours,
/// guidance raises contrast and saturation, fewer steps leave more noise, frames and size shape the clip — and
/// then does what the pipeline renderer does with real frames: an MP4 and a sidecar, written as a verified pair,
/// with timings and peak memory. Its videos say nothing about CogVideoX; everything around them is real.
/// </summary>
public sealed class SyntheticRenderer(TimeSpan stepDelay = default) : IVideoRenderer
{
    public const string Identity = "synthetic (no model: a test pattern drawn from the settings)";

    private static readonly Lazy<string?> s_ffmpegVersion = new(Ffmpeg.Version);

    public RenderResult Render(VideoJob job, IProgress<RenderProgress>? progress, CancellationToken cancellation)
    {
        var s = job.Settings;
        VideoOutput.Check(job); // before the steps, as the pipeline renderer checks before denoising
        var total = Stopwatch.StartNew();
        for (int step = 1; step <= s.Steps; step++)
        {
            cancellation.ThrowIfCancellationRequested();
            if (stepDelay > TimeSpan.Zero && cancellation.WaitHandle.WaitOne(stepDelay))
                cancellation.ThrowIfCancellationRequested();
            progress?.Report(new RenderProgress(PipelineStages.Denoise, step, s.Steps, total.Elapsed));
        }
        var frames = Draw(s);
        double denoise = total.Elapsed.TotalSeconds;
        cancellation.ThrowIfCancellationRequested();

        progress?.Report(new RenderProgress(PipelineStages.EncodeVideo, 0, frames.Count, total.Elapsed));
        var sidecar = VideoOutput.Write(job, frames, video =>
        {
            return new VideoSidecar
            {
                ToolVersion = typeof(SyntheticRenderer).Assembly.GetName().Version?.ToString() ?? "",
                CreatedUtc = DateTimeOffset.UtcNow,
                Settings = s,
                Resolved = new() { ["renderer"] = "synthetic", ["device"] = "cpu", ["frames_decoded"] = frames.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) },
                ModelIdentity = Identity,
                TimingsSeconds = new()
                {
                    [PipelineStages.Denoise] = denoise,
                    [PipelineStages.EncodeVideo] = video.EncodeSeconds,
                    ["total"] = total.Elapsed.TotalSeconds,
                },
                PeakMemoryBytes = Process.GetCurrentProcess().PeakWorkingSet64,
                PeakMemoryKind = "host",
                Device = "cpu", // drawn on the CPU, whatever device the settings name
                Software = new()
                {
                    [".net"] = RuntimeInformation.FrameworkDescription,
                    ["os"] = RuntimeInformation.OSDescription,
                    ["ffmpeg"] = s_ffmpegVersion.Value ?? "unknown",
                },
            };
        }, progress is null ? null : (done, all) => progress.Report(new RenderProgress(PipelineStages.EncodeVideo, done, all, total.Elapsed)));
        return new RenderResult(sidecar, frames);
    }

    /// <summary>The clip for a set of settings: same settings, same frames, on every machine.</summary>
    public static VideoFrames Draw(GenerationSettings s)
    {
        int f = s.Frames, h = s.Height, w = s.Width, plane = h * w;
        var rng = new SplitMix64((ulong)s.Seed);
        double phaseX = rng.NextDouble() * Math.Tau, phaseY = rng.NextDouble() * Math.Tau;
        double blobX = 0.2 + 0.6 * rng.NextDouble(), blobY = 0.2 + 0.6 * rng.NextDouble();
        double velocityX = (rng.NextDouble() - 0.5) * 0.02, velocityY = (rng.NextDouble() - 0.5) * 0.02;
        var prompt = new SplitMix64(Fnv1a(s.Prompt));
        double hue = prompt.NextDouble();
        double waves = 2 + 4 * prompt.NextDouble();
        double strength = Math.Clamp(0.25 + 0.06 * s.Guidance, 0.2, 1.0);
        double noise = 0.25 / Math.Sqrt(s.Steps);
        var (r0, g0, b0) = HueToRgb(hue);
        var (r1, g1, b1) = HueToRgb(hue + 0.45);

        var data = new float[f * 3 * plane];
        Parallel.For(0, f, t =>
        {
            double cx = blobX + velocityX * t, cy = blobY + velocityY * t;
            int frameBase = t * 3 * plane;
            var pixelNoise = new SplitMix64((ulong)s.Seed * 7919UL + (ulong)t * 104729UL);
            for (int y = 0; y < h; y++)
            {
                double v = (double)y / h;
                for (int x = 0; x < w; x++)
                {
                    double u = (double)x / w;
                    double wave = 0.5 + 0.5 * Math.Sin(waves * Math.Tau * u + phaseX + 0.15 * t) * Math.Cos(waves * Math.PI * v + phaseY);
                    double d2 = ((u - cx) * (u - cx) + (v - cy) * (v - cy)) * 18;
                    double blob = Math.Exp(-d2);
                    double mix = Math.Clamp(0.5 + strength * (wave * 0.7 + blob * 0.6 - 0.65), 0, 1);
                    double grain = noise * (pixelNoise.NextDouble() - 0.5);
                    int p = y * w + x;
                    data[frameBase + p] = Pixel(Lerp(r1, r0, mix), strength, mix, grain);
                    data[frameBase + plane + p] = Pixel(Lerp(g1, g0, mix), strength, mix, grain);
                    data[frameBase + 2 * plane + p] = Pixel(Lerp(b1, b0, mix), strength, mix, grain);
                }
            }
        });
        return new VideoFrames(data, f, h, w);
    }

    private static float Pixel(double colour, double saturation, double luma, double grain)
    {
        // Blend towards grey by (1 − saturation), so low guidance looks washed out, as CogVideoX does.
        double value = saturation * colour + (1 - saturation) * luma;
        return (float)Math.Clamp(value + grain, 0, 1);
    }

    private static double Lerp(double a, double b, double t) => a + (b - a) * t;

    private static (double R, double G, double B) HueToRgb(double hue)
    {
        hue -= Math.Floor(hue);
        double r = Math.Clamp(Math.Abs(hue * 6 - 3) - 1, 0, 1);
        double g = Math.Clamp(2 - Math.Abs(hue * 6 - 2), 0, 1);
        double b = Math.Clamp(2 - Math.Abs(hue * 6 - 4), 0, 1);
        return (r, g, b);
    }

    private static ulong Fnv1a(string text)
    {
        ulong hash = 14695981039346656037UL;
        foreach (char c in text)
        {
            hash ^= c;
            hash *= 1099511628211UL;
        }
        return hash;
    }
}
