using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Lab;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Pipeline;

/// <summary>
/// Image-to-video and video-to-video against diffusers (tests/fixtures/reference/i2v, made by
/// scripts/reference/fixtures_i2v.py): each run from its prompt text, input file and settings, every intermediate the
/// run stored compared as the pipeline produces it — the encoder's input and distribution, the image latents, the
/// initial (noised) latents, each transformer call's input and output, each step, the VAE's input and output — and
/// the frames within the golden README's 2e-3.
/// </summary>
public class InputPipelineTests(ITestOutputHelper output)
{
    private const double FramesTolerance = 2e-3; // golden README: pipeline frames ≤ 2e-3 absolute (CPU float32)
    private const double ModelTolerance = 1e-4;  // golden README: model outputs ≤ 1e-4 × max(1, max |reference|)

    public static string Folder => Path.Combine(Fixtures.RepoRoot, "tests", "fixtures", "reference", "i2v");

    public static string I2vModel => Path.Combine(Folder, "pipeline_5b_i2v_style");

    public sealed record InputRun(string Tag, string Model, GenerationRequest Request, string? Image, string? Video);

    public static IEnumerable<InputRun> Runs()
    {
        foreach (var r in FixtureRuns.Entries(Path.Combine(Folder, "runs", "runs.json")))
        {
            string model = r.GetProperty("model").GetString()!;
            var request = FixtureRuns.Request(r) with { Strength = r.TryGetProperty("strength", out var s) ? s.GetDouble() : null };
            string? image = r.TryGetProperty("image", out var i) ? Path.Combine(Folder, i.GetString()!) : null;
            string? video = r.TryGetProperty("video", out var v) ? Path.Combine(Folder, v.GetString()!) : null;
            string folder = model == "pipeline_5b_i2v_style" ? I2vModel : Path.Combine(Fixtures.Golden, model);
            yield return new InputRun(r.GetProperty("tag").GetString()!, folder, request, image, video);
        }
    }

    public static TheoryData<string> Tags() => FixtureRuns.Theory(Runs().Select(r => r.Tag));

    /// <summary>The request with its input file read as the CLI reads it.</summary>
    public static GenerationRequest WithInputs(InputRun run) => run.Request with
    {
        Image = run.Image is null ? null : InputFiles.LoadImage(run.Image),
        Video = run.Video is null ? null : InputFiles.LoadVideo(run.Video, run.Request.Frames),
    };

    [Theory]
    [MemberData(nameof(Tags))]
    public void FramesMatchDiffusers(string tag)
    {
        var run = Runs().Single(r => r.Tag == tag);
        var reference = Fixtures.LoadAll(Path.Combine(Folder, "runs", tag + ".safetensors"));
        try
        {
            using var pipeline = new CogVideoXPipeline(ModelFolder.Open(run.Model), new PipelineOptions { Backend = CpuBackend.Instance, DType = DType.F32 });
            var observer = new ReferenceObserver(reference, output, tag);
            var result = pipeline.Generate(WithInputs(run), observer: observer);

            var expectedNames = reference.Keys.Where(ReferenceObserver.Compared).Order().ToList();
            Assert.Equal(expectedNames, observer.Seen.Order());

            var expected = reference["frames"];
            Assert.Equal(expected.ShapeArray(), result.FramesShape);
            double error = Compare.AssertAbs(expected.ToFloatArray(), result.Frames, FramesTolerance, $"{tag} frames");
            output.WriteLine($"{tag}: frames {string.Join("×", result.FramesShape)}, max abs error {error:E3} (tolerance {FramesTolerance:E0}); " +
                $"largest intermediate error {observer.Largest.Error:E3} ({observer.Largest.Name})");
            Assert.Equal(reference["timesteps"].ToLongArray().Select(v => (int)v), result.Resolved.Timesteps);
            Assert.Equal(result.Resolved.Timesteps.Count, result.Timings.Steps.Count);
            Assert.Equal(run.Image is not null ? "image-to-video" : "video-to-video", result.Resolved.Task);
            Assert.True(result.Timings.VaeEncode > TimeSpan.Zero);
        }
        finally
        {
            foreach (var t in reference.Values) t.Dispose();
        }
    }

    /// <summary>Compares each intermediate with the stored one as the pipeline produces it.</summary>
    private sealed class ReferenceObserver(Dictionary<string, Tensor> reference, ITestOutputHelper output, string tag) : IPipelineObserver
    {
        public List<string> Seen { get; } = [];

        public (string Name, double Error) Largest { get; private set; } = ("", 0);

        public static bool Compared(string name) =>
            name is "vae_encode_input" or "encoder_mean" or "encoder_logvar" or "image_latents" or "initial_latents" or "vae_input" or "vae_decoded"
            || name.StartsWith("transformer_in_step", StringComparison.Ordinal)
            || name.StartsWith("transformer_out_step", StringComparison.Ordinal)
            || name.StartsWith("latents_after_step", StringComparison.Ordinal);

        public void Tensor(string name, Tensor value)
        {
            if (!Compared(name)) return; // prompt embeddings: the golden runs' (checked by the golden tests)
            Assert.True(reference.TryGetValue(name, out var expected), $"{tag}: the pipeline produced {name}, which the reference run did not store");
            Seen.Add(name);
            double err = Compare.AssertClose(expected!, value, ModelTolerance, $"{tag} {name}");
            if (err >= Largest.Error) Largest = (name, err);
            output.WriteLine($"{tag} {name}: max abs error {err:E2}");
        }
    }
}
