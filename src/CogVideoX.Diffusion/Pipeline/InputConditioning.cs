using CogVideoX.Engine;
using CogVideoX.Models.Vae;

namespace CogVideoX.Diffusion;

/// <summary>
/// Image to video (diffusers' <c>CogVideoXImageToVideoPipeline</c>): the image, resized to the video's size, is encoded
/// by the VAE as a one-frame video; its latents are sampled from the encoder's distribution with the run's generator
/// (first draw), scaled by the VAE's scaling factor (divided, for VAEs with <c>invert_scale_latents</c>) and padded
/// with zero frames to the latent frame count. The video latents are the generator's next draw. Each step the
/// transformer sees [video latents, image latents] along the channels (its <c>in_channels</c> is twice the VAE's).
/// </summary>
public sealed class ImageToVideoConditioning : VideoConditioning
{
    private Tensor? _imageLatents;

    /// <summary>The scaled, padded image latents [1, F, C, h, w] (null before <see cref="PrepareLatents"/>).</summary>
    public Tensor? ImageLatents => _imageLatents;

    public override Tensor PrepareLatents(ConditioningContext context, TorchGenerator generator, IScheduler scheduler)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(scheduler);
        var image = context.Request.Image ?? throw new CogVideoXException("image-to-video needs an input image");
        var shape = context.LatentShape.ToArray();
        int latentFrames = shape[1], channels = shape[2], h = shape[3], w = shape[4];
        var vaeConfig = context.Model.Vae;

        // [1, 3, 1, H, W] in [−1, 1] → latent distribution [1, C, 1, h, w] → sample (the generator's first draw).
        var pixels = VideoProcessor.Preprocess(image, context.Request.Height, context.Request.Width, 1);
        var sampled = InputEncoding.EncodeAndSample(context, pixels, 1, generator);
        // [1, C, 1, h, w] → [1, 1, C, h, w] (one frame: the same values), scaled; zero frames after it.
        float scale = (float)(vaeConfig.InvertScaleLatents ? 1.0 / vaeConfig.ScalingFactor : vaeConfig.ScalingFactor);
        var padded = new float[latentFrames * channels * h * w];
        for (int i = 0; i < channels * h * w; i++) padded[i] = scale * sampled[i];
        _imageLatents = Tensor.FromArray(padded, shape, context.Backend, context.DType);
        context.Observer?.Tensor("image_latents", _imageLatents);

        var initial = generator.Randn(shape);
        if (scheduler.InitNoiseSigma != 1f)
            for (int i = 0; i < initial.Length; i++) initial[i] *= scheduler.InitNoiseSigma;
        return Tensor.FromArray(initial, shape, context.Backend, context.DType);
    }

    /// <summary>[latents, image latents] along the channels, the image latents repeated for each batch item.</summary>
    public override Tensor TransformerInput(Tensor latents)
    {
        ArgumentNullException.ThrowIfNull(latents);
        var image = _imageLatents ?? throw new InvalidOperationException("PrepareLatents must run before TransformerInput");
        using var typed = image.DType == latents.DType ? image.Alias() : image.To(latents.DType);
        if (latents.Dim(0) == 1) return Ops.Concat(2, latents, typed);
        var copies = new Tensor[latents.Dim(0)];
        Array.Fill(copies, typed);
        using var batched = Ops.Concat(0, copies);
        return Ops.Concat(2, latents, batched);
    }

    protected override void ReleaseTensors()
    {
        _imageLatents?.Dispose();
        _imageLatents = null;
    }
}

/// <summary>
/// Video to video (diffusers' <c>CogVideoXVideoToVideoPipeline</c>) on a text-to-video model: the first
/// <c>frames</c> frames of the input video, resized, are encoded by the VAE and sampled from its distribution with the
/// run's generator (first draw), scaled by the VAE's scaling factor and noised to the first timestep of the schedule
/// that <c>strength</c> cut (<see cref="SkippedSteps"/>) with the generator's next draw:
/// √ᾱ_t · x + √(1 − ᾱ_t) · noise, in float32 as the scheduler's <c>add_noise</c> computes it.
/// </summary>
public sealed class VideoToVideoConditioning : VideoConditioning
{
    /// <summary>diffusers' default strength.</summary>
    public const double DefaultStrength = 0.8;

    /// <summary>
    /// Steps <paramref name="strength"/> skips from the start of a <paramref name="steps"/>-step schedule (diffusers'
    /// <c>get_timesteps</c>): <c>steps − min(int(steps · strength), steps)</c>.
    /// </summary>
    public static int SkippedSteps(int steps, double strength)
    {
        int init = Math.Min((int)(steps * strength), steps);
        return Math.Max(steps - init, 0);
    }

    public override Tensor PrepareLatents(ConditioningContext context, TorchGenerator generator, IScheduler scheduler)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(scheduler);
        var video = context.Request.Video ?? throw new CogVideoXException("video-to-video needs an input video");
        var shape = context.LatentShape.ToArray();
        int frames = context.Request.Frames;

        var pixels = VideoProcessor.Preprocess(video, context.Request.Height, context.Request.Width, frames);
        var sampled = InputEncoding.EncodeAndSample(context, pixels, frames, generator);
        int latentFrames = shape[1], channels = shape[2], plane = shape[3] * shape[4];
        if (sampled.Length != latentFrames * channels * plane)
            throw new CogVideoXException($"the VAE encoded {frames} frames into {sampled.Length / (channels * plane)} latent frames, expected {latentFrames}");

        var noise = generator.Randn(shape);
        int t = scheduler.Timesteps[0];
        // add_noise: ᾱ (float64) cast to the latents' float32, then the square roots in float32.
        float alpha = (float)scheduler.AlphasCumprod[t];
        float sqrtAlpha = MathF.Sqrt(alpha), sqrtOneMinus = MathF.Sqrt(1f - alpha);
        float scale = (float)context.Model.Vae.ScalingFactor;
        var latents = new float[noise.Length];
        // The encoder's [1, C, F, h, w] read as [1, F, C, h, w].
        for (int f = 0; f < latentFrames; f++)
            for (int c = 0; c < channels; c++)
                for (int p = 0; p < plane; p++)
                {
                    int i = (f * channels + c) * plane + p;
                    float x = scale * sampled[(c * latentFrames + f) * plane + p];
                    latents[i] = sqrtAlpha * x + sqrtOneMinus * noise[i];
                }
        if (scheduler.InitNoiseSigma != 1f)
            for (int i = 0; i < latents.Length; i++) latents[i] *= scheduler.InitNoiseSigma;
        return Tensor.FromArray(latents, shape, context.Backend, context.DType);
    }
}

/// <summary>The VAE encoder's stage for the input tasks: pixels → latent distribution → one sample from the generator.</summary>
internal static class InputEncoding
{
    /// <summary>
    /// Encodes <paramref name="pixels"/> [3, frames, H, W] (batch 1) and samples the distribution with noise drawn from
    /// <paramref name="generator"/> in the mean's shape; returns the sample [1, C, F', h, w] in float32 on the host.
    /// </summary>
    public static float[] EncodeAndSample(ConditioningContext context, float[] pixels, int frames, TorchGenerator generator)
    {
        var request = context.Request;
        var vae = context.Components.VaeEncoder(context.Clock);
        var watch = context.Clock.Begin(PipelineStages.VaeEncode);
        float[] sampled;
        using (var input = Tensor.FromArray(pixels, [1, 3, frames, request.Height, request.Width], context.Backend, context.DType))
        {
            context.Observer?.Tensor("vae_encode_input", input);
            using var typed = input.To(vae.DType);
            using var distribution = vae.Encode(typed, new VaeEncodeOptions
            {
                Tiling = context.Components.VaeTilingFor(context.Policy),
                Slicing = context.Components.Options.VaeSlicing,
                Cancellation = context.Cancellation,
                Progress = (done, total) => context.Clock.Part(PipelineStages.VaeEncode, watch, done, total),
            });
            context.Observer?.Tensor("encoder_mean", distribution.Mean);
            context.Observer?.Tensor("encoder_logvar", distribution.LogVar);
            var noise = generator.Randn(distribution.Mean.ShapeArray());
            using var standardNormal = Tensor.FromArray(noise, distribution.Mean.ShapeArray(), distribution.Mean.Backend, distribution.Mean.DType);
            using var sample = distribution.Sample(standardNormal);
            sampled = sample.ToFloatArray();
        }
        context.Clock.Timings = context.Clock.Timings with { VaeEncode = context.Clock.End(PipelineStages.VaeEncode, watch) };
        context.Components.AfterStage(ModelComponent.Vae, context.Policy);
        return sampled;
    }
}
