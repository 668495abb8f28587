using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Weights;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Pipeline;

/// <summary>
/// The whole pipeline on every golden run, from the prompt text and settings in runs.json (nothing taken from the
/// stored tensors): the output frames within the README's 2e-3, and on the way every intermediate the run stored
/// (embeddings, initial latents, each transformer output and step, the VAE's input and output), so a failure says
/// where the difference starts.
/// </summary>
public class GoldenPipelineTests(ITestOutputHelper output)
{
    private const double FramesTolerance = 2e-3; // README: pipeline frames ≤ 2e-3 absolute (CPU float32)

    public sealed record GoldenRun(string Folder, string Tag, GenerationRequest Request);

    public static IEnumerable<GoldenRun> Runs() =>
        FixtureRuns.Golden().Select(g => new GoldenRun(g.Folder, FixtureRuns.Tag(g.Entry), FixtureRuns.Request(g.Entry)));

    public static TheoryData<string> Tags() => FixtureRuns.Theory(Runs().Select(r => r.Tag));

    [Theory]
    [MemberData(nameof(Tags))]
    public void FramesMatchDiffusers(string tag)
    {
        var run = Runs().Single(r => r.Tag == tag);
        var reference = Fixtures.LoadAll(Path.Combine(run.Folder, "runs", tag + ".safetensors"));
        try
        {
            using var pipeline = new CogVideoXPipeline(ModelFolder.Open(run.Folder), new PipelineOptions { Backend = CpuBackend.Instance, DType = DType.F32 });
            var observer = new ReferenceObserver(reference, output, tag);
            var result = pipeline.Generate(run.Request, observer: observer);

            // Every stored intermediate was seen and compared. Without guidance diffusers never encodes a negative
            // prompt (the fixture stores one anyway, made apart from the run); the pipeline must not spend time on it.
            var stored = reference.Keys.Where(k => ReferenceObserver.Compared(k))
                .Where(k => run.Request.Guidance > 1 || k != "negative_embeds").ToHashSet();
            Assert.Equal(stored.Order(), observer.Seen.Order());

            var expected = reference["frames"];
            Assert.Equal(expected.ShapeArray(), result.FramesShape);
            double error = Compare.AssertAbs(expected.ToFloatArray(), result.Frames, FramesTolerance, $"{tag} frames");
            output.WriteLine($"{tag}: frames {string.Join("×", result.FramesShape)}, max abs error {error:E3} (tolerance {FramesTolerance:E0})");

            // The final latents are the last step's.
            int steps = run.Request.Steps;
            Compare.AssertAbs(reference[$"latents_after_step{steps - 1}"].ToFloatArray(), result.Latents, 1e-4, $"{tag} final latents");
            Assert.Equal(reference["initial_latents"].ShapeArray(), result.LatentShape);
            Assert.Equal(reference["timesteps"].ToLongArray().Select(v => (int)v), result.Resolved.Timesteps);
            Assert.Equal(run.Folder == Fixtures.Path5b ? SchedulerKind.Dpm : SchedulerKind.Ddim, result.Resolved.Scheduler);
            Assert.Equal(run.Request.Guidance > 1, result.Resolved.ClassifierFreeGuidance);
            Assert.Equal(expected.Dim(0), result.Resolved.DecodedFrames);
            Assert.Equal(steps, result.Timings.Steps.Count);
            Assert.True(result.PeakMemoryBytes > 0);
        }
        finally
        {
            foreach (var t in reference.Values) t.Dispose();
        }
    }
}
