using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>
/// A kind of CogVideoX pipeline: the task's name, the class model_index.json names for it, example models, how many
/// latent-channel groups its transformer takes (image-to-video concatenates the image latents: 2), and how a run's
/// conditioning is made (null: known but not implemented yet).
/// </summary>
public sealed record PipelineTask(
    string Name,
    string PipelineClass,
    string Models,
    int TransformerInputGroups,
    Func<GenerationRequest, VideoConditioning>? Conditioning)
{
    public bool IsSupported => Conditioning is not null;

    /// <summary>A run's conditioning for <paramref name="request"/> (caller disposes).</summary>
    public VideoConditioning CreateConditioning(GenerationRequest request) =>
        Conditioning?.Invoke(request) ?? throw new CogVideoXException($"{Name} ({PipelineClass}) is not implemented yet");
}

/// <summary>
/// The tasks, by the pipeline class model_index.json's <c>_class_name</c> names. Adding one is a
/// <see cref="VideoConditioning"/> subclass and a row here.
/// </summary>
public static class PipelineTasks
{
    public static PipelineTask TextToVideo { get; } =
        new("text-to-video", "CogVideoXPipeline", "THUDM/CogVideoX-2b, THUDM/CogVideoX-5b", 1, _ => new TextToVideoConditioning());

    public static PipelineTask ImageToVideo { get; } =
        new("image-to-video", "CogVideoXImageToVideoPipeline", "THUDM/CogVideoX-5b-I2V", 2, _ => new ImageToVideoConditioning());

    /// <summary>Runs on the text-to-video models (their folders name CogVideoXPipeline) when a request gives a video.</summary>
    public static PipelineTask VideoToVideo { get; } =
        new("video-to-video", "CogVideoXVideoToVideoPipeline", "THUDM/CogVideoX-2b or -5b with an input video", 1, _ => new VideoToVideoConditioning());

    public static IReadOnlyList<PipelineTask> All { get; } = [TextToVideo, ImageToVideo, VideoToVideo];

    /// <summary>
    /// What a folder does, in words, for <c>inspect</c>: the task its model_index.json class names, or — for a class
    /// this program does not know — the one its transformer's input channels suggest (twice the VAE's latent channels:
    /// image latents concatenated, image-to-video), and what a run of it needs.
    /// </summary>
    public static string Describe(ModelFolder model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var task = All.FirstOrDefault(t => t.PipelineClass == model.PipelineClass);
        string how = "from model_index.json";
        if (task is null)
        {
            int groups = model.Vae.LatentChannels > 0 && model.Transformer.InChannels % model.Vae.LatentChannels == 0
                ? model.Transformer.InChannels / model.Vae.LatentChannels : 0;
            task = All.FirstOrDefault(t => t.TransformerInputGroups == groups && t != VideoToVideo);
            how = $"by its transformer's in_channels {model.Transformer.InChannels} (VAE latents: {model.Vae.LatentChannels}); its class {model.PipelineClass} is not one this program knows";
            if (task is null) return $"unknown ({how})";
        }
        string needs = task == ImageToVideo
            ? "generate needs --image FILE (the picture to animate)"
            : "generate from a prompt; with --video FILE it restyles a video (video-to-video)";
        return $"{task.Name} ({how}); {needs}";
    }

    /// <summary>The task a model folder's pipeline class names; an error says what is supported when it cannot run.</summary>
    public static PipelineTask ForModel(ModelFolder model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var supported = string.Join("; ", All.Where(t => t.IsSupported).Select(t => $"{t.Name}: {t.PipelineClass}, e.g. {t.Models}"));
        var task = All.FirstOrDefault(t => t.PipelineClass == model.PipelineClass)
            ?? throw new CogVideoXException($"{model.Path}: model_index.json names {model.PipelineClass}, which is not a CogVideoX pipeline this program knows; it runs {supported}");
        if (!task.IsSupported)
            throw new CogVideoXException($"{model.Path}: model_index.json names {model.PipelineClass}, a CogVideoX {task.Name} model ({task.Models}), " +
                $"which this version cannot run yet; it runs {supported}");
        return task;
    }
}
