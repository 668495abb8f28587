using CogVideoX.Media;

namespace CogVideoX.Lab;

/// <summary>Per-step progress of one render, for bars and estimates.</summary>
public readonly record struct RenderProgress(string Stage, int Step, int TotalSteps, TimeSpan Elapsed)
{
    /// <summary>The denoising step just done reused cached work (a step cache).</summary>
    public bool StepReused { get; init; }
}

/// <summary>Renders one video (pipeline → MP4 → sidecar, each written atomically).</summary>
public interface IVideoRenderer
{
    /// <summary>
    /// Makes the video and its sidecar for a job. On return both files exist under their final names; on failure
    /// or cancellation neither is left half-written. The returned frames are the decoded pipeline output.
    /// </summary>
    RenderResult Render(VideoJob job, IProgress<RenderProgress>? progress, CancellationToken cancellation);
}

/// <summary>What a render produced and measured.</summary>
public sealed record RenderResult(VideoSidecar Sidecar, VideoFrames Frames);
