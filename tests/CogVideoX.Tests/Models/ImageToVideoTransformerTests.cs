using CogVideoX.Engine;
using CogVideoX.Models.Transformer;
using CogVideoX.Tests.Pipeline;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Models;

/// <summary>
/// The CogVideoX-5b-I2V-style transformer (in_channels twice the latent channels, learned positional table on top of
/// the rotary positions) against every transformer call of the image-to-video fixture runs: the stored table at the
/// config's frame count, diffusers' sincos fallback at others.
/// </summary>
public class ImageToVideoTransformerTests(ITestOutputHelper output)
{
    public static TheoryData<string> Tags() => FixtureRuns.Theory(InputPipelineTests.Runs().Where(r => r.Image is not null).Select(r => r.Tag));

    [Theory]
    [MemberData(nameof(Tags))]
    public void EveryCallMatchesDiffusers(string tag)
    {
        var run = FixtureRuns.Entries(Path.Combine(InputPipelineTests.Folder, "runs", "runs.json")).Single(r => r.GetProperty("tag").GetString() == tag);
        var golden = run.GetProperty("prompt_from").GetString()!.Split(' ')[1].Split('/');
        var prompts = Fixtures.LoadAll(Fixtures.GoldenFile(golden[0], "runs", golden[1] + ".safetensors"));
        var reference = Fixtures.LoadAll(Path.Combine(InputPipelineTests.Folder, "runs", tag + ".safetensors"));
        try
        {
            using var model = CogVideoXTransformer.Load(Path.Combine(InputPipelineTests.I2vModel, "transformer"), CpuBackend.Instance, DType.F32);
            Assert.True(model.Config.UseLearnedPositionalEmbeddings && model.Config.UseRotaryPositionalEmbeddings);
            bool cfg = run.GetProperty("guidance").GetDouble() > 1;
            using var text = cfg ? Ops.Concat(0, prompts["negative_embeds"], prompts["prompt_embeds"]) : prompts["prompt_embeds"].Alias();
            int steps = run.GetProperty("steps").GetInt32();
            double worst = 0;
            for (int i = 0; i < steps; i++)
            {
                var input = reference[$"transformer_in_step{i}"];
                Assert.Equal(8, input.Dim(2));
                using var rotary = model.BuildRotaryTables(input.Dim(1), input.Dim(3), input.Dim(4));
                float[] timesteps = Array.ConvertAll(reference[$"timestep_step{i}"].ToLongArray(), t => (float)t);
                using var actual = model.Forward(input, text, timesteps, rotary);
                worst = Math.Max(worst, Compare.AssertClose(reference[$"transformer_out_step{i}"], actual, 1e-4, $"{tag} step {i}"));
            }
            output.WriteLine($"{tag}: {steps} calls, largest max abs error {worst:E3}");
        }
        finally
        {
            foreach (var t in prompts.Values.Concat(reference.Values)) t.Dispose();
        }
    }

    [Fact]
    public void TheLearnedTableCoversOneSize()
    {
        using var model = CogVideoXTransformer.Load(Path.Combine(InputPipelineTests.I2vModel, "transformer"), CpuBackend.Instance, DType.F32);
        using var latents = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 3, 8, 6, 6);
        using var text = Tensor.Zeros(CpuBackend.Instance, DType.F32, 1, 226, 64);
        using var rotary = model.BuildRotaryTables(3, 6, 6);
        var e = Assert.ThrowsAny<CogVideoXException>(() => model.Forward(latents, text, [999f], rotary));
        Assert.Contains("covers one video size, 32 × 48", e.Message);
    }
}
