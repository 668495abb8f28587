using CogVideoX.Weights;

namespace CogVideoX.Tests.Weights;

public class ConfigSmokeTests
{
    [Fact]
    public void RealConfigsParseWithPublishedValues()
    {
        var t2 = TransformerConfig.Load(Fixtures.GoldenFile("real_configs", "CogVideoX-2b", "transformer", "config.json"));
        Assert.Equal(30, t2.NumAttentionHeads);
        Assert.False(t2.UseRotaryPositionalEmbeddings);
        var t5 = TransformerConfig.Load(Fixtures.GoldenFile("real_configs", "CogVideoX-5b", "transformer", "config.json"));
        Assert.Equal(48, t5.NumAttentionHeads);
        Assert.Equal(42, t5.NumLayers);
        Assert.True(t5.UseRotaryPositionalEmbeddings);
        var vae = VaeConfig.Load(Fixtures.GoldenFile("real_configs", "CogVideoX-5b", "vae", "config.json"));
        Assert.Equal(0.7, vae.ScalingFactor);
        var s = SchedulerConfig.Load(Fixtures.GoldenFile("pipeline_5b_style", "scheduler", "scheduler_config.json"));
        Assert.Equal("CogVideoXDPMScheduler", s.ClassName);
        Assert.Equal("v_prediction", s.PredictionType);
        var enc = T5Config.Load(Fixtures.GoldenFile("real_configs", "CogVideoX-2b", "text_encoder", "config.json"));
        Assert.Equal(4096, enc.DModel);
        Assert.True(enc.Gated);
        Assert.Equal("gelu_new", enc.Activation);
    }

    [Fact]
    public void WrongTypeNamesKeyAndFile()
    {
        var e = Assert.Throws<WeightsException>(() =>
            ConfigFile.Parse("{\"num_layers\": \"thirty\"}"u8, "x/config.json", ConfigJsonContext.Default.TransformerConfig));
        Assert.Contains("x/config.json", e.Message);
        Assert.Contains("num_layers", e.Message);
    }
}
