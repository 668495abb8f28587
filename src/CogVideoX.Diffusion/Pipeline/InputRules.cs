using System.Globalization;
using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>
/// What a request's input image, video and strength must be for the model it runs on, checked before anything loads:
/// errors say what was wrong, what is allowed and which model or value fits (exit code 2, like other invalid arguments).
/// </summary>
public static class InputRules
{
    /// <summary>Throws the first error; returns warnings (a frame count off an image-to-video model's learned table).</summary>
    public static IReadOnlyList<string> Check(GenerationRequest request, PipelineTask modelTask, PipelineTask runTask, ModelFolder model)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(modelTask);
        ArgumentNullException.ThrowIfNull(runTask);
        ArgumentNullException.ThrowIfNull(model);
        var warnings = new List<string>();
        string name = System.IO.Path.GetFileName(System.IO.Path.TrimEndingDirectorySeparator(model.Path));
        if (request.Image is not null && request.Video is not null)
            throw Usage("give either an input image (image-to-video) or an input video (video-to-video), not both.");
        if (modelTask == PipelineTasks.ImageToVideo)
        {
            if (request.Video is not null)
                throw Usage($"{name} is an image-to-video model ({PipelineTasks.ImageToVideo.PipelineClass}) and takes an image, not a video; " +
                    "video-to-video runs on the text-to-video models: --model 2b or --model 5b with --video FILE.");
            if (request.Image is null)
                throw Usage($"{name} is an image-to-video model ({PipelineTasks.ImageToVideo.PipelineClass}): give the picture to animate " +
                    "with --image FILE (PNG, JPEG or WebP), or use a text-to-video model (--model 2b or --model 5b) for a video from the prompt alone.");
        }
        else if (request.Image is not null)
        {
            throw Usage($"{name} is a {modelTask.Name} model ({model.PipelineClass}) and cannot start from an image; " +
                "image-to-video needs an image-to-video model: --model 5b-i2v (THUDM/CogVideoX-5b-I2V) or --model 1.5-i2v (THUDM/CogVideoX1.5-5B-I2V).");
        }
        if (request.Strength is { } strength)
        {
            if (runTask != PipelineTasks.VideoToVideo)
                throw Usage($"strength {Format(strength)} applies to video-to-video only (how far the input video is noised); give --video FILE or leave strength out.");
            if (!(strength > 0 && strength <= 1))
                throw Usage($"strength: {Format(strength)} is outside (0, 1]: it is the part of the schedule that runs on the noised input video " +
                    $"(0.8 is diffusers' default; lower keeps more of the video, 1 keeps only its noise draw).");
        }
        if (runTask == PipelineTasks.VideoToVideo)
            CheckVideo(request, request.Video!);
        if (runTask == PipelineTasks.ImageToVideo)
            warnings.AddRange(CheckLearnedTable(request, model.Transformer, name));
        return warnings;
    }

    private static void CheckVideo(GenerationRequest request, InputMedia video)
    {
        double strength = request.Strength ?? VideoToVideoConditioning.DefaultStrength;
        int skipped = VideoToVideoConditioning.SkippedSteps(request.Steps, strength);
        if (skipped >= request.Steps)
        {
            int needed = (int)Math.Ceiling(1 / strength);
            throw Usage($"strength {Format(strength)} of {request.Steps} steps runs int({request.Steps} × {Format(strength)}) = 0 steps; " +
                $"raise the strength or use at least {needed} steps.");
        }
        int available = video.FramesInFile ?? video.FrameCount;
        if (available < request.Frames)
        {
            int usable = available < 1 ? 0 : (available - 1) / GenerationRules.TemporalCompression * GenerationRules.TemporalCompression + 1;
            throw Usage($"{video.Path}: the video has {available} frame{(available == 1 ? "" : "s")}, fewer than the {request.Frames} to restyle; " +
                (usable >= 1 ? $"use --frames {usable} (the most it allows: 4k + 1 frames) or a longer video." : "use a video with frames in it."));
        }
    }

    private static IEnumerable<string> CheckLearnedTable(GenerationRequest request, TransformerConfig c, string name)
    {
        if (!c.UseLearnedPositionalEmbeddings) yield break;
        int h = request.Height / 8, w = request.Width / 8;
        if (h != c.SampleHeight || w != c.SampleWidth)
            throw Usage($"{name}'s learned positional table covers one video size, {c.SampleHeight * 8} × {c.SampleWidth * 8} (height × width), " +
                $"and it cannot run at {request.Height} × {request.Width} (diffusers refuses it too); use --height {c.SampleHeight * 8} " +
                $"--width {c.SampleWidth * 8} (the input image is resized to it).");
        int latent = GenerationRules.LatentFrames(request.Frames, c.TemporalCompressionRatio);
        if ((latent - 1) * c.TemporalCompressionRatio + 1 != c.SampleFrames)
            yield return $"frames: {name} learned its positional table for {c.SampleFrames} frames; at {request.Frames} it uses the fixed sincos " +
                "table instead (as diffusers does), which it was not trained with.";
    }

    private static string Format(double v) => v.ToString("G", CultureInfo.InvariantCulture);

    private static CogVideoXException Usage(string message) => new(message, GenerationRules.UsageExitCode);
}
