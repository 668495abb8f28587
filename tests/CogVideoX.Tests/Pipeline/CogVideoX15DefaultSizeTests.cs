using CogVideoX.Diffusion;
using CogVideoX.Lab;
using CogVideoX.Lab.Specs;
using CogVideoX.Tests.Lab;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Pipeline;

/// <summary>
/// The size CogVideoX1.5-5B-I2V makes when none is given. diffusers' <c>CogVideoXImageToVideoPipeline.__call__</c>
/// (58eb52c) takes <c>sample_height × vae_scale_factor_spatial</c> by <c>sample_width × …</c>: 2400×2400 for the
/// published config (sample 300×300), the largest size its rotary grid covers and no size the model was trained at.
/// THUDM's <c>inference/cli_demo.py</c> gives 1.5-I2V 768×1360 (its <c>RESOLUTION_MAP</c>) when no size is given, as
/// for 1.5 text-to-video, and so do we: the demo is what people run, and 2400×2400 would cost about 5.5× the pixels.
/// </summary>
public class CogVideoX15DefaultSizeTests
{
    private static string RealI2v => Fixtures.GoldenFile("real_configs", "CogVideoX1.5-5B-I2V");

    [Fact]
    public void ImageToVideoDefaultsToThudmsSizeNotDiffusersSampleSize()
    {
        var folder = ModelFolder.Open(RealI2v);
        var transformer = folder.Transformer;
        Assert.Equal("CogVideoXImageToVideoPipeline", folder.PipelineClass);
        // What diffusers' pipeline would take: sample_height/width × the VAE's spatial factor (2^(blocks−1) = 8).
        int spatial = folder.Vae.SpatialCompressionRatio;
        Assert.Equal((2400, 2400), (transformer.SampleHeight * spatial, transformer.SampleWidth * spatial));

        var defaults = ModelDefaults.For(transformer);
        Assert.Equal((81, 768, 1360, 16), (defaults.Frames, defaults.Height, defaults.Width, defaults.Fps));
        // diffusers' default is the bound of the rotary grid, which we keep as the largest size allowed.
        Assert.Equal((2400, 2400), (defaults.MaxHeight, defaults.MaxWidth));
        Assert.Contains("defaults 81 frames, 768×1360, 16 fps", ModelDefaults.Describe(folder));

        // generate (flags left out) and a spec (settings left out) both take it.
        Assert.Equal(defaults, ModelDefaultsLookup.For(RealI2v));
        using var study = new StudyFolder($$"""
            defaults: { model: "{{RealI2v}}", image: "../prompts/panda.txt" }
            experiments:
              animate: { prompts: [panda] }
            prompt_dir: ../prompts
            """);
        var job = StudyPlan.Expand(SpecParser.Load(study.SpecPath)).Jobs.Single();
        Assert.Equal((81, 768, 1360, 16), (job.Settings.Frames, job.Settings.Height, job.Settings.Width, job.Settings.Fps));
    }
}
