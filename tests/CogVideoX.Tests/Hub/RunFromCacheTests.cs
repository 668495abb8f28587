using CogVideoX.Engine;
using CogVideoX.Models.Text;
using CogVideoX.Models.Transformer;
using CogVideoX.Tests.Models;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Hub;

/// <summary>A pipeline downloaded from the loopback Hub runs from the cache and gives the golden numbers.</summary>
public sealed class RunFromCacheTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>The fixture README's CPU float32 bound for model outputs.</summary>
    private const double Tolerance = 1e-4;

    private readonly HubTestBed _bed = new();

    public void Dispose() => _bed.Dispose();

    /// <summary>
    /// Tokenizer, T5 encoder and transformer, each loaded from the downloaded snapshot (symbolic links into
    /// blobs/), reproduce the golden run panda_s42: the prompt's ids exactly, its embeddings and the first
    /// denoising step's transformer output within the README's tolerance.
    /// </summary>
    [Fact]
    public async Task TheDownloadedModelsReproduceTheGoldenRun()
    {
        _bed.AddTiny2b();
        var folder = await ModelHub.ResolveAsync(HubTestBed.Repo, _bed.Settings());
        var run = TextFixtures.RunByTag("panda_s42");
        var golden = Fixtures.LoadAll(run.TensorsPath);
        try
        {
            var tokenizer = T5Tokenizer.Load(folder.ComponentPath(PipelineComponents.Tokenizer));
            var prompt = tokenizer.Tokenize(run.Prompt, 226);
            Assert.Equal(golden["prompt_ids"].ToLongArray(), prompt.Ids);

            using var encoder = T5Encoder.Load(folder.ComponentPath(PipelineComponents.TextEncoder), CpuBackend.Instance, DType.F32);
            using var embeddings = encoder.Encode(prompt);
            double textError = Compare.AssertClose(golden["prompt_embeds"], embeddings, Tolerance, "prompt_embeds from the cache");

            using var transformer = CogVideoXTransformer.Load(folder.ComponentPath(PipelineComponents.Transformer), CpuBackend.Instance, DType.F32);
            using var text = Ops.Concat(0, golden["negative_embeds"], golden["prompt_embeds"]);
            float[] timesteps = Array.ConvertAll(golden["timestep_step0"].ToLongArray(), t => (float)t);
            using var step0 = transformer.Forward(golden["transformer_in_step0"], text, timesteps);
            double stepError = Compare.AssertClose(golden["transformer_out_step0"], step0, Tolerance, "transformer step 0 from the cache");
            output.WriteLine($"from {folder.Identity}: prompt_embeds max abs error {textError:E3}, transformer step 0 {stepError:E3}");
        }
        finally
        {
            foreach (var t in golden.Values) t.Dispose();
        }
    }

    /// <summary>
    /// The whole pipeline from the cache, as a user runs it: `generate --model test/tiny-2b` downloads the pipeline
    /// from the loopback Hub into an empty cache, generates panda_s42, and its frames equal the golden run's
    /// (README: ≤ 2e-3 absolute). A second run uses the cache without one request to the Hub.
    /// </summary>
    [Fact]
    public void GenerateDownloadsThenRunsFromTheCache()
    {
        _bed.AddTiny2b();
        var run = TextFixtures.RunByTag("panda_s42");
        using var dir = new TempDir();
        string? Environment(string name) => name switch { "HF_ENDPOINT" => _bed.Hub.Endpoint, "HF_HUB_CACHE" => _bed.Cache, _ => null };
        int Generate(string name)
        {
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            int code = CogVideoX.Cli.Cli.Run(
                ["generate", "--model", HubTestBed.Repo, "--prompt", run.Prompt, "--seed", "42", "--steps", "4", "--guidance", "6",
                 "--frames", "9", "--height", "32", "--width", "48", "--quiet", "--device", "cpu",
                 "--output", dir.File(name + ".mp4"), "--save-tensors", dir.File(name + ".safetensors")],
                stdout, stderr, Environment);
            output.WriteLine(stderr.ToString());
            return code;
        }

        Assert.Equal(0, Generate("first"));
        int requests = _bed.Hub.Requests.Count;
        Assert.Equal(0, Generate("second"));
        Assert.Equal(requests, _bed.Hub.Requests.Count);

        var golden = Fixtures.LoadAll(run.TensorsPath);
        var made = Fixtures.LoadAll(dir.File("second.safetensors"));
        try
        {
            double error = Compare.AssertAbs(golden["frames"].ToFloatArray(), made["frames"].ToFloatArray(), 2e-3, "frames generated from the cache");
            output.WriteLine($"frames max abs error {error:E3}");
        }
        finally
        {
            foreach (var t in golden.Values.Concat(made.Values)) t.Dispose();
        }
    }
}
