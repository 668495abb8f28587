using System.Globalization;
using CogVideoX.Engine;
using CogVideoX.Models.Lora;

namespace CogVideoX.Diffusion;

/// <summary>
/// The defaults of a video (THUDM's: 50 steps, guidance 6, 49 frames of 480×720 at 8 fps, seed 42) — the one place
/// they are written; requests, the experiment settings and the command line all take them from here.
/// </summary>
public static class GenerationDefaults
{
    public const int Steps = 50;
    public const double Guidance = 6.0;
    public const int Frames = 49;
    public const int Fps = 8;
    public const int Height = 480;
    public const int Width = 720;
    public const long Seed = 42;
}

/// <summary>
/// One video to generate, in diffusers' terms (<c>CogVideoXPipeline.__call__</c> with a CPU generator seeded with
/// <see cref="Seed"/>). Null scheduler and dynamic CFG mean the model's defaults.
/// </summary>
public sealed record GenerationRequest
{
    public string Prompt { get; init; } = "";

    /// <summary>What the video should not show; null is diffusers' <c>None</c>, encoded as "" when guidance is on.</summary>
    public string? NegativePrompt { get; init; }

    public int Steps { get; init; } = GenerationDefaults.Steps;

    /// <summary>Classifier-free guidance scale; above 1 the transformer runs on [negative; positive] each step.</summary>
    public double Guidance { get; init; } = GenerationDefaults.Guidance;

    /// <summary>Requested video frames (4k+1); the VAE may decode a few more (13 → 16), as diffusers does.</summary>
    public int Frames { get; init; } = GenerationDefaults.Frames;

    public int Height { get; init; } = GenerationDefaults.Height;

    public int Width { get; init; } = GenerationDefaults.Width;

    public long Seed { get; init; } = GenerationDefaults.Seed;

    /// <summary>null → the model's default (DDIM for 2b, DPM for the 5b family).</summary>
    public SchedulerKind? Scheduler { get; init; }

    /// <summary>null → on with the DPM scheduler, off with DDIM (THUDM's demo: dynamic CFG belongs to DPM).</summary>
    public bool? DynamicCfg { get; init; }

    public DynamicCfgSchedule DynamicCfgSchedule { get; init; } = DynamicCfgSchedule.DiffusersParity;

    /// <summary>
    /// LoRA adapters fused into the transformer, each at its strength (diffusers' <c>load_lora_weights</c> +
    /// <c>set_adapters</c>); empty for none. A request with other adapters or strengths than the loaded transformer's
    /// loads it again.
    /// </summary>
    public IReadOnlyList<LoraSpec> Lora { get; init; } = [];
    /// <summary>The picture an image-to-video model animates (required by those models, refused by the others).</summary>
    public InputMedia? Image { get; init; }

    /// <summary>The video a text-to-video model restyles (video-to-video); its first <see cref="Frames"/> frames are used.</summary>
    public InputMedia? Video { get; init; }

    /// <summary>Video-to-video: how much of the schedule runs, in (0, 1] (null: diffusers' 0.8); 1 ignores the video's content but not its noise draw.</summary>
    public double? Strength { get; init; }

    /// <summary>Step caching (a fast mode); <see cref="StepCacheMode.None"/>, the exact path, is the default.</summary>
    public StepCacheMode Cache { get; init; }

    /// <summary>The step cache's threshold; null → the mode's default (<see cref="StepCaching.DefaultThreshold"/>).</summary>
    public double? CacheThreshold { get; init; }

    /// <summary>
    /// TeaCache's rescale polynomial (highest power first); null → the one published for the model
    /// (<see cref="Models.Transformer.TeaCacheCoefficients.For"/>). For studies and mechanism tests.
    /// </summary>
    public IReadOnlyList<double>? TeaCacheCoefficients { get; init; }

    /// <summary>The first and last N steps computed exactly while a fast mode runs the rest (the first and last one always are).</summary>
    public int ExactSteps { get; init; }

    /// <summary>
    /// The transformer's self-attention: exact (the default) or 8-bit (<see cref="AttentionMode.Sage8"/>, a fast mode:
    /// every step but the first and last <see cref="ExactSteps"/>, all of them when that is 0).
    /// </summary>
    public AttentionMode Attention { get; init; }
    /// How the transformer blocks' attention and feed-forward projections run: exact (the default) or FP8
    /// (<see cref="LinearModes"/>; the first and last <see cref="ExactSteps"/> steps stay exact).
    /// </summary>
    public Models.Transformer.LinearMode Linears { get; init; }
}

/// <summary>
/// What a request may ask for, with errors that say what is allowed and warnings for what works but is outside what
/// the models were trained on. The size rules depend on the model (VAE compression × transformer patch); the
/// defaults are those of every CogVideoX 1.0 model, so callers can check a request before loading anything.
/// </summary>
public static class GenerationRules
{
    /// <summary>Frames the 1.0 models were trained on (6 s at 8 fps, plus one).</summary>
    public const int TrainedFrames = 49;

    /// <summary>The VAE's temporal compression of every CogVideoX model.</summary>
    public const int TemporalCompression = 4;

    /// <summary>Height and width step: the VAE's 8× spatial compression times the transformer's 2×2 patches.</summary>
    public const int SizeMultiple = 16;

    /// <summary>Exit code of a request the user has to change (as for other invalid arguments).</summary>
    public const int UsageExitCode = 2;

    /// <summary>
    /// The largest height or width, in pixels: 8.5× and 5.7× the trained 480 × 720. Beyond it the VAE's full-resolution
    /// activations (128 channels per pixel) outgrow any machine, and every size computed from it stays far from int's range.
    /// </summary>
    public const int MaxSide = 4096;

    /// <summary>
    /// The most frames × height × width one video may have: 2²⁸, 16× the trained 49 × 480 × 720. The transformer's
    /// tokens ((frames/4)·(height/16)·(width/16)), its attention work (their square) and the decoded video all grow with it.
    /// </summary>
    public const long MaxVideoPixels = 1L << 28;

    /// <summary>
    /// Checks every field; throws the first error, returns the warnings. <paramref name="model"/> says which model
    /// generation the frame counts and sizes are judged for (null: CogVideoX 1.0).
    /// </summary>
    public static IReadOnlyList<string> Check(GenerationRequest request, int temporalCompression = TemporalCompression, int sizeMultiple = SizeMultiple,
        ModelDefaults? model = null)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckSteps(request.Steps);
        CheckGuidance(request.Guidance);
        CheckSize("height", request.Height, sizeMultiple);
        CheckSize("width", request.Width, sizeMultiple);
        if (model is not null && model != ModelDefaults.Version10)
        {
            CheckModelSize("height", request.Height, model.MaxHeight, model, sizeMultiple);
            CheckModelSize("width", request.Width, model.MaxWidth, model, sizeMultiple);
            var modelWarnings = CogVideoX15Frames.Check(request.Frames, temporalCompression, model);
            CheckVideoSize(request.Frames, request.Height, request.Width);
            return modelWarnings;
        }
        var warnings = CheckFrames(request.Frames, temporalCompression);
        CheckVideoSize(request.Frames, request.Height, request.Width);
        return warnings;
    }

    /// <summary>frames × height × width within <see cref="MaxVideoPixels"/> (computed in 64 bits: each factor is an int).</summary>
    public static void CheckVideoSize(int frames, int height, int width)
    {
        long pixels = (long)frames * height * width;
        if (pixels <= MaxVideoPixels) return;
        throw Usage($"frames × height × width = {frames} × {height} × {width} = {pixels.ToString("#,0", CultureInfo.InvariantCulture)} pixels is more than one video may have here " +
            $"({MaxVideoPixels.ToString("#,0", CultureInfo.InvariantCulture)}, 16× the {TrainedFrames} × 480 × 720 the models were trained on): the transformer's attention work grows " +
            "with the square of it and the VAE's memory with it; use fewer frames or a smaller height and width.");
    }

    /// <summary>A side within what the model's positions cover (CogVideoX 1.5's rotary grid).</summary>
    private static void CheckModelSize(string what, int pixels, int? max, ModelDefaults model, int multiple)
    {
        if (max is not { } limit || pixels <= limit) return;
        throw Usage($"{what}: {pixels} pixels is more than {model.Name} has positions for: its rotary embeddings cover a grid of " +
            $"{limit / multiple} patches of {multiple} pixels, so the {what} may be at most {limit} (it was trained at {model.Height} × {model.Width}).");
    }

    public static void CheckSteps(int steps)
    {
        if (steps < 1)
            throw Usage($"steps: {steps} is not a valid number of denoising steps; use 1 or more (50 is the reference, fewer is faster and rougher).");
    }

    public static void CheckGuidance(double guidance)
    {
        if (!(guidance >= 0) || double.IsInfinity(guidance))
            throw Usage($"guidance: {Format(guidance)} is not a valid guidance scale; use a finite number ≥ 0 (6 is the reference; 1 or less turns classifier-free guidance off).");
    }

    public static void CheckFps(int fps)
    {
        if (fps < 1 || fps > 240)
            throw Usage($"fps: {fps} is out of range; use 1 to 240 frames per second (CogVideoX 1.0 was trained at 8).");
    }

    /// <summary>Height or width: a positive multiple of <paramref name="multiple"/>.</summary>
    public static void CheckSize(string what, int pixels, int multiple = SizeMultiple)
    {
        if (multiple < 1) throw new ArgumentOutOfRangeException(nameof(multiple), multiple, "the size multiple must be positive");
        if (pixels > MaxSide)
            throw Usage($"{what}: {pixels} pixels is larger than the {MaxSide} this tool accepts (the models were trained at 480 × 720; " +
                $"the VAE decodes every pixel with 128 channels and the attention spans every 16 × 16 patch of every frame, so memory " +
                $"and time outgrow any machine); use at most {MaxSide / multiple * multiple}.");
        if (pixels >= multiple && pixels % multiple == 0) return;
        int lower = pixels / multiple * multiple;
        string nearest = lower < multiple ? $"{multiple}" : $"{lower} or {lower + multiple}";
        throw Usage($"{what}: {pixels} is not a multiple of {multiple}: the VAE compresses each side 8× into latents and the " +
            $"transformer groups 2×2 latent pixels into one patch, so the video's height and width must be multiples of {multiple} " +
            $"(the models were trained at 480 × 720); the nearest valid value{(lower < multiple ? " is" : "s are")} {nearest}.");
    }

    /// <summary>Frames: r·k + 1 for the VAE's temporal compression r. Returns the warnings for valid counts.</summary>
    public static IReadOnlyList<string> CheckFrames(int frames, int temporalCompression = TemporalCompression)
    {
        int r = temporalCompression;
        if (frames < 1 || (frames - 1) % r != 0)
        {
            int lower = frames < 1 ? 1 : (frames - 1) / r * r + 1;
            string nearest = frames < 1 ? "1" : $"{lower} and {lower + r}";
            throw Usage($"frames: {frames} is not a valid frame count: the VAE turns k + 1 latent frames into {r}k + 1 video frames, " +
                $"so the count must be {r}k + 1 (1, {1 + r}, {1 + 2 * r}, …, {TrainedFrames}); the nearest valid value{(frames < 1 ? " is" : "s are")} {nearest}.");
        }
        var warnings = new List<string>();
        if (frames > TrainedFrames)
            warnings.Add($"frames: {frames} is more than the {TrainedFrames} frames CogVideoX 1.0 was trained on; longer videos tend to lose coherence or repeat.");
        int latent = LatentFrames(frames, r);
        if ((frames - 1) % (2 * r) != 0)
        {
            warnings.Add($"frames: {frames} is not one of the counts CogVideoX 1.0 was trained on ({2 * r}N + 1: {1 + 2 * r}, {1 + 4 * r}, …, {TrainedFrames}); " +
                $"it makes {latent} latent frames, an even number, which the VAE decodes into {DecodedFrames(latent, r)} frames (as diffusers does).");
        }
        return warnings;
    }

    /// <summary>Latent frames for a frame count: (frames − 1) / r + 1.</summary>
    public static int LatentFrames(int frames, int temporalCompression = TemporalCompression) => (frames - 1) / temporalCompression + 1;

    /// <summary>
    /// Frames the VAE returns for <paramref name="latentFrames"/>: it decodes batches of two latent frames (the first
    /// batch takes the odd one); within a batch the first frame of an odd count stays one frame and every other frame
    /// becomes r. So an odd count gives r·(L − 1) + 1 and an even one r·L (4 → 16).
    /// </summary>
    public static int DecodedFrames(int latentFrames, int temporalCompression = TemporalCompression) =>
        latentFrames % 2 == 1 ? temporalCompression * (latentFrames - 1) + 1 : temporalCompression * latentFrames;

    private static string Format(double v) => v.ToString("G", CultureInfo.InvariantCulture);

    private static CogVideoXException Usage(string message) => new(message, UsageExitCode);
}
