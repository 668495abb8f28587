using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Weights;

public class ConfigTests
{
    /// <summary>Every config the fixtures hold: model_index.json, scheduler_config.json and each config.json.</summary>
    public static TheoryData<string> FixtureConfigs() => new(FixtureConfigPaths());

    private static List<string> FixtureConfigPaths() =>
        Directory.GetFiles(Fixtures.Golden, "*.json", SearchOption.AllDirectories)
            .Where(f => Path.GetFileName(f) is "config.json" or "scheduler_config.json" or "model_index.json")
            .Select(f => Path.GetRelativePath(Fixtures.Golden, f))
            .Order(StringComparer.Ordinal)
            .ToList();

    [Fact]
    public void FixturesHoldTheExpectedConfigs()
    {
        var files = FixtureConfigPaths();
        Assert.Equal(37, files.Count); // 7 model indexes, 7 scheduler configs, 23 component configs (1.0, 5b-I2V and 1.5 real configs included)
        Assert.Contains(Path.Combine("real_configs", "CogVideoX-5b-I2V", "transformer", "config.json"), files);
        Assert.Contains(Path.Combine("real_configs", "CogVideoX-5b", "transformer", "config.json"), files);
    }

    /// <summary>
    /// Each file parses into its record, and every key of the file that the record knows comes back out of the
    /// record with the same value — so nothing is dropped or mis-mapped; the keys it does not know are ignored.
    /// </summary>
    [Theory]
    [MemberData(nameof(FixtureConfigs))]
    public void FixtureConfigParsesAndKeepsEveryKnownKey(string relative)
    {
        var path = Path.Combine(Fixtures.Golden, relative);
        using var file = JsonDocument.Parse(File.ReadAllBytes(path));
        if (Path.GetFileName(path) == "model_index.json")
        {
            var index = ModelIndex.Load(path);
            Assert.Equal(file.RootElement.GetProperty("_class_name").GetString(), index.PipelineClass);
            var lists = file.RootElement.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.Array).ToList();
            Assert.Equal(lists.Select(p => p.Name), index.Components.Select(c => c.Name));
            foreach (var c in index.Components)
            {
                var pair = file.RootElement.GetProperty(c.Name);
                Assert.Equal(pair[0].GetString(), c.Library);
                Assert.Equal(pair[1].GetString(), c.ClassName);
            }
            Assert.Equal(PipelineComponents.All.Order(), index.Components.Select(c => c.Name).Order());
            return;
        }
        var component = Path.GetFileName(Path.GetDirectoryName(path))!;
        JsonElement parsed = component switch
        {
            "transformer" => Roundtrip(TransformerConfig.Load(path), ConfigJsonContext.Default.TransformerConfig),
            "vae" => Roundtrip(VaeConfig.Load(path), ConfigJsonContext.Default.VaeConfig),
            "text_encoder" => Roundtrip(T5Config.Load(path), ConfigJsonContext.Default.T5Config),
            "scheduler" => Roundtrip(SchedulerConfig.Load(path), ConfigJsonContext.Default.SchedulerConfig),
            _ => throw new InvalidOperationException($"{relative}: no config record for a '{component}' folder"),
        };
        int known = 0;
        foreach (var key in file.RootElement.EnumerateObject())
        {
            if (!parsed.TryGetProperty(key.Name, out var value)) continue;
            known++;
            Assert.True(JsonElement.DeepEquals(key.Value, value), $"{relative}: '{key.Name}' is {key.Value.GetRawText()} in the file but {value.GetRawText()} in the record");
        }
        Assert.True(known >= 12, $"{relative}: only {known} keys map to the record");
    }

    private static JsonElement Roundtrip<T>(T config, JsonTypeInfo<T> type) => JsonSerializer.SerializeToElement(config, type);

    [Fact]
    public void PublishedConfigsHaveTheirDocumentedValues()
    {
        var t2 = TransformerConfig.Load(Fixtures.GoldenFile("real_configs", "CogVideoX-2b", "transformer", "config.json"));
        Assert.Equal((30, 30, 64, "sincos"), (t2.NumAttentionHeads, t2.NumLayers, t2.AttentionHeadDim, t2.PositionalEmbedding));
        var t5 = TransformerConfig.Load(Fixtures.GoldenFile("real_configs", "CogVideoX-5b", "transformer", "config.json"));
        Assert.Equal((48, 42, 3072, "rotary"), (t5.NumAttentionHeads, t5.NumLayers, t5.InnerDim, t5.PositionalEmbedding));
        Assert.Null(t5.PatchSizeT);
        Assert.Null(t5.OfsEmbedDim);
        Assert.Equal(0.7, VaeConfig.Load(Fixtures.GoldenFile("real_configs", "CogVideoX-5b", "vae", "config.json")).ScalingFactor);
        var vae2 = VaeConfig.Load(Fixtures.GoldenFile("real_configs", "CogVideoX-2b", "vae", "config.json"));
        Assert.Equal((1.15258426, 8, 4), (vae2.ScalingFactor, vae2.SpatialCompressionRatio, vae2.TemporalCompressionRatio));
        Assert.Equal(3.0, SchedulerConfig.Load(Fixtures.GoldenFile("real_configs", "CogVideoX-2b", "scheduler", "scheduler_config.json")).SnrShiftScale);
        var dpm = SchedulerConfig.Load(Fixtures.GoldenFile("pipeline_5b_style", "scheduler", "scheduler_config.json"));
        Assert.Equal(("CogVideoXDPMScheduler", "v_prediction", "trailing", 1.0, true), (dpm.ClassName, dpm.PredictionType, dpm.TimestepSpacing, dpm.SnrShiftScale, dpm.RescaleBetasZeroSnr));
        var enc = T5Config.Load(Fixtures.GoldenFile("real_configs", "CogVideoX-2b", "text_encoder", "config.json"));
        Assert.Equal((4096, 24, 64, 10240, true, "gelu_new"), (enc.DModel, enc.NumLayers, enc.NumHeads, enc.DFf, enc.Gated, enc.Activation));
    }

    /// <summary>Absent keys take diffusers'/transformers' constructor defaults (transcribed from their sources).</summary>
    [Fact]
    public void AbsentKeysTakeLibraryDefaults()
    {
        var t = Parse("{}", ConfigJsonContext.Default.TransformerConfig);
        Assert.Equal((30, 64, 16, 16, 30, 512, 4096, 226, 2), (t.NumAttentionHeads, t.AttentionHeadDim, t.InChannels, t.OutChannels, t.NumLayers, t.TimeEmbedDim, t.TextEmbedDim, t.MaxTextSeqLength, t.PatchSize));
        Assert.Equal((1e-5, 1.875, 1.0, "gelu-approximate", false, false), (t.NormEps, t.SpatialInterpolationScale, t.TemporalInterpolationScale, t.ActivationFn, t.UseRotaryPositionalEmbeddings, t.UseLearnedPositionalEmbeddings));
        var v = Parse("{}", ConfigJsonContext.Default.VaeConfig);
        Assert.Equal([128, 256, 256, 512], v.BlockOutChannels);
        Assert.Equal((16, 3, 32, 1e-6, 1.15258426, 4, 480, 720), (v.LatentChannels, v.LayersPerBlock, v.NormNumGroups, v.NormEps, v.ScalingFactor, v.TemporalCompressionRatio, v.SampleHeight, v.SampleWidth));
        var s = Parse("{}", ConfigJsonContext.Default.SchedulerConfig);
        Assert.Equal((1000, 0.00085, 0.012, "scaled_linear", true, true, "epsilon", "leading", false, 3.0), (s.NumTrainTimesteps, s.BetaStart, s.BetaEnd, s.BetaSchedule, s.ClipSample, s.SetAlphaToOne, s.PredictionType, s.TimestepSpacing, s.RescaleBetasZeroSnr, s.SnrShiftScale));
        var e = Parse("{}", ConfigJsonContext.Default.T5Config);
        Assert.Equal((32128, 512, 64, 2048, 6, 8, 32, 128, 1e-6, "relu", false, "relu"), (e.VocabSize, e.DModel, e.DKv, e.DFf, e.NumLayers, e.NumHeads, e.RelativeAttentionNumBuckets, e.RelativeAttentionMaxDistance, e.LayerNormEpsilon, e.FeedForwardProj, e.Gated, e.Activation));
        Assert.Equal(("gelu_new", true), (Parse("{\"feed_forward_proj\": \"gated-gelu\"}", ConfigJsonContext.Default.T5Config).Activation, Parse("{\"feed_forward_proj\": \"gated-gelu\"}", ConfigJsonContext.Default.T5Config).Gated));
    }

    [Fact]
    public void UnknownKeysAreIgnored()
    {
        var t = Parse("{\"num_layers\": 3, \"some_future_key\": {\"nested\": [1, \"x\"]}, \"_class_name\": \"Other\", \"num_layers_typo\": \"x\"}", ConfigJsonContext.Default.TransformerConfig);
        Assert.Equal(3, t.NumLayers);
    }

    [Theory]
    [InlineData("{\"num_layers\": \"thirty\"}", "key 'num_layers' must be an integer, found the string \"thirty\"")]
    [InlineData("{\"num_layers\": 30.5}", "key 'num_layers' must be an integer, found the number 30.5")]
    [InlineData("{\"num_layers\": null}", "key 'num_layers' must be an integer, found null")]
    [InlineData("{\"out_channels\": \"16\"}", "key 'out_channels' must be an integer or null, found the string \"16\"")]
    [InlineData("{\"norm_eps\": \"small\"}", "key 'norm_eps' must be a number, found the string \"small\"")]
    [InlineData("{\"use_rotary_positional_embeddings\": 1}", "key 'use_rotary_positional_embeddings' must be true or false, found the number 1")]
    [InlineData("{\"activation_fn\": 5}", "key 'activation_fn' must be a string, found the number 5")]
    [InlineData("{\"activation_fn\": null}", "key 'activation_fn' must be a string, found null")]
    [InlineData("{\"patch_size\": [2, 2]}", "key 'patch_size' must be an integer, found [2, 2]")]
    public void WrongTypeNamesFileKeyExpectedAndFound(string json, string expected)
    {
        var e = Assert.Throws<WeightsException>(() => Parse(json, ConfigJsonContext.Default.TransformerConfig));
        Assert.Equal($"x/transformer/config.json: {expected}", e.Message);
    }

    [Fact]
    public void WrongTypeInsideAListNamesTheKey()
    {
        var e = Assert.Throws<WeightsException>(() => Parse("{\"block_out_channels\": [128, \"x\"]}", ConfigJsonContext.Default.VaeConfig));
        Assert.Equal("x/transformer/config.json: key 'block_out_channels' must be a list of integers, found [128, \"x\"]", e.Message);
        var s = Assert.Throws<WeightsException>(() => Parse("{\"trained_betas\": \"none\"}", ConfigJsonContext.Default.SchedulerConfig));
        Assert.Contains("key 'trained_betas' must be a list of numbers or null, found the string \"none\"", s.Message);
    }

    [Theory]
    [InlineData("[1, 2]", "a config must be a JSON object, found a list")]
    [InlineData("{\"num_layers\": 3,,}", "not valid JSON (line 1, byte 18)")]
    [InlineData("{\"num_layers\": 3", "not valid JSON (line 1")]
    [InlineData("", "not valid JSON")]
    [InlineData("null", "a config must be a JSON object, found null")]
    public void MalformedFileIsAClearError(string json, string expected)
    {
        var e = Assert.Throws<WeightsException>(() => Parse(json, ConfigJsonContext.Default.TransformerConfig));
        Assert.StartsWith("x/transformer/config.json: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void MissingFileIsAClearError()
    {
        using var dir = new TempFolder();
        var path = Path.Combine(dir.Path, "vae", "config.json");
        var missing = $"{path}: config file not found; the model folder is incomplete (a diffusers pipeline folder has model_index.json and a " +
            "config.json in each component's folder): copy or download it again";
        Assert.Equal(missing, Assert.Throws<WeightsException>(() => VaeConfig.Load(path)).Message);
        Assert.Equal(missing, Assert.Throws<WeightsException>(() => ModelIndex.Load(path)).Message);
        Directory.CreateDirectory(path);
        Assert.Equal($"{path}: is a folder, expected a JSON config file", Assert.Throws<WeightsException>(() => VaeConfig.Load(path)).Message);
    }

    [Fact]
    public void ModelIndexReadsComponentsAndSkipsOptions()
    {
        var index = ModelIndex.Parse(Encoding.UTF8.GetBytes("""
            { "_class_name": "CogVideoXPipeline", "_diffusers_version": "0.30.0", "_name_or_path": "x",
              "vae": ["diffusers", "AutoencoderKLCogVideoX"], "safety_checker": [null, null], "requires_safety_checker": false }
            """), "m/model_index.json");
        Assert.Equal(("CogVideoXPipeline", "0.30.0"), (index.PipelineClass, index.DiffusersVersion));
        Assert.Equal(["vae", "safety_checker"], index.Components.Select(c => c.Name));
        Assert.True(index.Component("vae")!.IsPresent);
        Assert.False(index.Component("safety_checker")!.IsPresent);
        Assert.Null(index.Component("transformer"));
    }

    [Theory]
    [InlineData("{\"vae\": [\"diffusers\", \"AutoencoderKLCogVideoX\"]}", "no '_class_name' (the pipeline class")]
    [InlineData("{\"_class_name\": 3}", "key '_class_name' must be a string (the pipeline class), found the number 3")]
    [InlineData("{\"_class_name\": \"P\", \"vae\": [\"diffusers\"]}", "key 'vae' must be [library, class name]")]
    [InlineData("{\"_class_name\": \"P\", \"vae\": [\"diffusers\", 7]}", "key 'vae' must be [library, class name] (e.g. [\"diffusers\", \"AutoencoderKLCogVideoX\"]) or [null, null], found [\"diffusers\", 7]")]
    [InlineData("[]", "model_index.json must be a JSON object, found a list")]
    [InlineData("{", "not valid JSON")]
    public void ModelIndexErrorsNameFileAndKey(string json, string expected)
    {
        var e = Assert.Throws<WeightsException>(() => ModelIndex.Parse(Encoding.UTF8.GetBytes(json), "m/model_index.json"));
        Assert.StartsWith("m/model_index.json: ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    private static T Parse<T>(string json, JsonTypeInfo<T> type) where T : class, new() =>
        ConfigFile.Parse(Encoding.UTF8.GetBytes(json), "x/transformer/config.json", type);
}
