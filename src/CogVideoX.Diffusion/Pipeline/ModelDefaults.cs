using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>
/// What a model generation was made for, told apart by its transformer config: CogVideoX 1.0 (2b, 5b: 49 frames of
/// 480×720 at 8 fps) and CogVideoX 1.5 (<c>patch_size_t</c> set: 81 frames of 768×1360 at 16 fps, as THUDM's demo
/// runs it, with DPM and dynamic CFG). The defaults of a request, the frame counts it was trained on, and the largest
/// size its positions reach.
/// </summary>
/// <param name="Name">"CogVideoX 1.0" or "CogVideoX 1.5".</param>
/// <param name="Frames">Default frame count.</param>
/// <param name="Height">Default height in pixels.</param>
/// <param name="Width">Default width in pixels.</param>
/// <param name="Fps">Frames per second the model was trained at (the MP4's default).</param>
/// <param name="TrainedFrames">The longest video it was trained on.</param>
/// <param name="RecommendedFrames">The counts its makers recommend.</param>
/// <param name="MaxHeight">The largest height its rotary positions cover (1.5: sample_height × 8); null: no bound but the tool's.</param>
/// <param name="MaxWidth">The same for the width.</param>
/// <param name="LatentFramePatch">Latent frames per temporal patch (1.5: patch_size_t; 1.0: 1). The pipeline pads the latents to a multiple.</param>
public sealed record ModelDefaults(
    string Name,
    int Frames,
    int Height,
    int Width,
    int Fps,
    int TrainedFrames,
    IReadOnlyList<int> RecommendedFrames,
    int? MaxHeight,
    int? MaxWidth,
    int LatentFramePatch)
{
    /// <summary>CogVideoX-2b and -5b (and -5b-I2V): THUDM's demo defaults, the ones <see cref="GenerationDefaults"/> holds.</summary>
    public static ModelDefaults Version10 { get; } = new("CogVideoX 1.0", GenerationDefaults.Frames, GenerationDefaults.Height,
        GenerationDefaults.Width, GenerationDefaults.Fps, GenerationRules.TrainedFrames, [GenerationRules.TrainedFrames], null, null, 1);

    /// <summary>
    /// CogVideoX1.5-5B (and -I2V) with THUDM's defaults: 81 frames of 768×1360 (the T2V model's training size), 16 fps;
    /// 81 and 161 frames work best (diffusers' CogVideoX docs). The rotary grid of the published config (sample 300×300
    /// latent pixels) bounds each side at 2400 pixels. The image-to-video model takes the same size: THUDM's demo
    /// (<c>RESOLUTION_MAP</c>) gives it 768×1360 when none is given, where diffusers' pipelines would take
    /// <c>sample_height × 8</c> by <c>sample_width × 8</c>, i.e. that 2400×2400 bound, no size either model was trained at.
    /// </summary>
    public static ModelDefaults Version15 { get; } = new("CogVideoX 1.5", 81, 768, 1360, 16, 161, [81, 161], 2400, 2400, 2);

    /// <summary>The defaults of the model a transformer config describes.</summary>
    public static ModelDefaults For(TransformerConfig transformer)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        if (transformer.PatchSizeT is not { } pt) return Version10;
        return Version15 with
        {
            MaxHeight = transformer.SampleHeight / transformer.PatchSize * transformer.PatchSize * 8,
            MaxWidth = transformer.SampleWidth / transformer.PatchSize * transformer.PatchSize * 8,
            LatentFramePatch = pt,
        };
    }

    /// <summary>
    /// What a model folder is, in words: "CogVideoX 1.5 text-to-video (like THUDM/CogVideoX1.5-5B); defaults 81 frames,
    /// 768×1360, 16 fps". Null when its transformer config cannot be read (the folder checks say why).
    /// </summary>
    public static string? Describe(ModelFolder folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        TransformerConfig t;
        try
        {
            t = folder.Transformer;
        }
        catch (CogVideoXException)
        {
            return null;
        }
        var d = For(t);
        var task = PipelineTasks.All.FirstOrDefault(k => k.PipelineClass == folder.PipelineClass);
        string like = (t.HasTemporalPatches, t.OfsEmbedDim is > 0, t.PositionalEmbedding, t.NumLayers) switch
        {
            (true, true, _, _) => "THUDM/CogVideoX1.5-5B-I2V",
            (true, false, _, _) => "THUDM/CogVideoX1.5-5B",
            (false, _, "rotary+learned", _) => "THUDM/CogVideoX-5b-I2V",
            (false, _, "rotary", _) => "THUDM/CogVideoX-5b",
            _ => "THUDM/CogVideoX-2b",
        };
        return $"{d.Name} {task?.Name ?? "(pipeline " + folder.PipelineClass + ")"} (like {like}); defaults {d.Frames} frames, {d.Height}×{d.Width}, {d.Fps} fps" +
            (task is { IsSupported: false } ? $"; {task.Name} is not implemented yet" : "");
    }

    /// <summary>Latent frames the pipeline adds in front (1.5: to a multiple of the temporal patch) and trims before decoding.</summary>
    public int LatentPadding(int latentFrames) =>
        latentFrames % LatentFramePatch == 0 ? 0 : LatentFramePatch - latentFrames % LatentFramePatch;
}

/// <summary>The frame counts a CogVideoX 1.5 request may ask for, with errors that list the ones that fit.</summary>
internal static class CogVideoX15Frames
{
    /// <summary>Frames: r·k + 1 for the VAE's temporal compression r; returns the warnings for valid counts.</summary>
    public static IReadOnlyList<string> Check(int frames, int temporalCompression, ModelDefaults model)
    {
        int r = temporalCompression;
        string recommended = string.Join(" and ", model.RecommendedFrames);
        if (frames < 1 || (frames - 1) % r != 0)
        {
            int lower = frames < 1 ? 1 : (frames - 1) / r * r + 1;
            string nearest = frames < 1 ? "1" : $"{lower} and {lower + r}";
            throw new CogVideoXException(
                $"frames: {frames} is not a valid frame count for {model.Name}: the VAE turns k + 1 latent frames into {r}k + 1 video frames, " +
                $"so the count must be {r}k + 1 (1, {1 + r}, {1 + 2 * r}, …, {model.Frames}, …, {model.TrainedFrames}); the nearest valid " +
                $"value{(frames < 1 ? " is" : "s are")} {nearest}. {model.Name} works best with {recommended} frames.",
                GenerationRules.UsageExitCode);
        }
        var warnings = new List<string>();
        if (frames > model.TrainedFrames)
            warnings.Add($"frames: {frames} is more than the {model.TrainedFrames} frames {model.Name} was made for ({recommended} work best); longer videos tend to lose coherence or repeat.");
        int latent = GenerationRules.LatentFrames(frames, r);
        // An odd latent count is padded to whole temporal patches and the padding trimmed before decoding (81 → 21
        // latent frames → 22 → 81 frames); an even one is not padded, and the VAE decodes it into r·L frames.
        if (latent % 2 == 0)
            warnings.Add($"frames: {frames} makes {latent} latent frames, an even number, which the VAE decodes into " +
                $"{GenerationRules.DecodedFrames(latent, r)} frames (as diffusers does); {model.Name} works best with {recommended} frames ({2 * r}N + 1 counts decode to exactly the count asked for).");
        return warnings;
    }
}
