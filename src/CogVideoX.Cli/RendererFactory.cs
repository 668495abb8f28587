using CogVideoX.Engine;
using CogVideoX.Lab;

namespace CogVideoX.Cli;

/// <summary>
/// The one place that decides which <see cref="IVideoRenderer"/> makes the videos of <c>experiment run</c>.
/// <c>pipeline</c> is CogVideoX itself (text encoder → transformer → VAE → MP4); <c>synthetic</c> draws a test
/// pattern from the settings (<see cref="SyntheticRenderer"/>) to rehearse a study or test the workbench.
/// </summary>
internal static class RendererFactory
{
    public const string Pipeline = "pipeline";
    public const string Synthetic = "synthetic";

    public static readonly string[] Kinds = [Pipeline, Synthetic];

    /// <summary>True now that the pipeline renderer exists; the end-to-end tests run CogVideoX itself.</summary>
    public static bool PipelineAvailable => true;

    public static IVideoRenderer Create(string kind, TimeSpan syntheticStepDelay) => kind switch
    {
        Pipeline => CreatePipeline(),
        Synthetic => new SyntheticRenderer(syntheticStepDelay),
        _ => throw new CogVideoXException($"unknown renderer '{kind}'; use one of: {string.Join(", ", Kinds)}", 2),
    };

    // One per process: it keeps the loaded models from one job to the next.
    private static IVideoRenderer CreatePipeline() => new PipelineRenderer();
}
