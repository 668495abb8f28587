using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Pipeline;

/// <summary>
/// The pipeline family's seams: model_index.json's class picks the task, and a task's conditioning (here a fake)
/// prepares the latents and what the transformer sees, inside the denoising loop every task shares.
/// </summary>
public class PipelineTaskTests
{
    private static readonly GenerationRequest Small = TinyRequest.Panda(steps: 3, seed: 3);

    /// <summary>A copy of the 2b-style fixture whose model_index.json names <paramref name="pipelineClass"/>.</summary>
    private static string FolderNaming(TempDir dir, string pipelineClass)
    {
        var target = dir.File("model");
        foreach (var file in Directory.EnumerateFiles(Fixtures.Path2b, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(Fixtures.Path2b, file);
            if (relative.StartsWith("runs", StringComparison.Ordinal)) continue;
            var destination = Path.Combine(target, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
        }
        var index = Path.Combine(target, "model_index.json");
        File.WriteAllText(index, File.ReadAllText(index).Replace("\"CogVideoXPipeline\"", $"\"{pipelineClass}\"", StringComparison.Ordinal));
        return target;
    }

    [Fact]
    public void ThePipelineClassPicksTheTask()
    {
        using var pipeline = new CogVideoXPipeline(ModelFolder.Open(Fixtures.Path2b));
        Assert.Same(PipelineTasks.TextToVideo, pipeline.Task);
        Assert.Same(PipelineTasks.TextToVideo, PipelineTasks.ForModel(ModelFolder.Open(Fixtures.Path5b)));
        Assert.Equal(PipelineTasks.All.Count, PipelineTasks.All.Select(t => t.PipelineClass).Distinct().Count());
    }

    [Fact]
    public void AnImageToVideoClassOverATextToVideoTransformerIsRefused()
    {
        // The class names image-to-video, but the 2b transformer takes the VAE's latent channels once, not twice.
        using var dir = new TempDir();
        var model = ModelFolder.Open(FolderNaming(dir, "CogVideoXImageToVideoPipeline"));
        Assert.Same(PipelineTasks.ImageToVideo, PipelineTasks.ForModel(model));
        var e = Assert.Throws<WeightsException>(() => new CogVideoXPipeline(model));
        Assert.Contains("(8 in for image-to-video)", e.Message);
        Assert.Contains("the components come from different models", e.Message);
    }

    [Fact]
    public void AnUnknownPipelineClassIsRefusedWithWhatRuns()
    {
        using var dir = new TempDir();
        var model = ModelFolder.Open(FolderNaming(dir, "StableDiffusionPipeline"));
        var e = Assert.Throws<CogVideoXException>(() => PipelineTasks.ForModel(model));
        Assert.Contains("names StableDiffusionPipeline, which is not a CogVideoX pipeline", e.Message);
        Assert.Contains("THUDM/CogVideoX-2b", e.Message);
        // A task given for another class is refused too.
        var task = PipelineTasks.TextToVideo with { PipelineClass = "OtherPipeline" };
        var mismatch = Assert.Throws<CogVideoXException>(() => new CogVideoXPipeline(ModelFolder.Open(Fixtures.Path2b), task: task));
        Assert.Contains("the text-to-video pipeline runs OtherPipeline models", mismatch.Message);
    }

    [Fact]
    public void AnImageToVideoShapedModelIsCheckedForTwiceTheLatentChannels()
    {
        // A task that concatenates its own latents wants a transformer taking twice the VAE's latent channels; the 2b fixture takes them once.
        var task = PipelineTasks.TextToVideo with { TransformerInputGroups = 2 };
        var e = Assert.Throws<WeightsException>(() => new CogVideoXPipeline(ModelFolder.Open(Fixtures.Path2b), task: task));
        Assert.Contains("in for text-to-video", e.Message);
    }

    /// <summary>A fake task: text-to-video's latents, recorded; a transformer input that it sees every step.</summary>
    private sealed class RecordingConditioning(bool zeros) : VideoConditioning
    {
        private readonly TextToVideoConditioning _inner = new();

        public List<int[]> Inputs { get; } = [];

        public int Prepared { get; private set; }

        public bool Released { get; private set; }

        public override Tensor PrepareLatents(ConditioningContext context, TorchGenerator generator, IScheduler scheduler)
        {
            Prepared++;
            Assert.Equal(Small.Steps, scheduler.NumInferenceSteps); // the timesteps are set before the latents
            Assert.Equal(new[] { 1, 3, 4, 4, 6 }, context.LatentShape);
            return zeros ? Tensor.Zeros(context.Backend, context.DType, context.LatentShape.ToArray()) : _inner.PrepareLatents(context, generator, scheduler);
        }

        public override Tensor TransformerInput(Tensor latents)
        {
            Inputs.Add(latents.ShapeArray());
            return base.TransformerInput(latents);
        }

        protected override void ReleaseTensors() => Released = true;
    }

    [Fact]
    public void AFakeTaskPreparesTheLatentsAndSeesEveryTransformerInput()
    {
        using var reference = new CogVideoXPipeline(ModelFolder.Open(Fixtures.Path2b));
        var expected = reference.Generate(Small);

        RecordingConditioning? same = null;
        var task = PipelineTasks.TextToVideo with { Conditioning = _ => same = new RecordingConditioning(zeros: false) };
        using var pipeline = new CogVideoXPipeline(ModelFolder.Open(Fixtures.Path2b), task: task);
        var result = pipeline.Generate(Small);
        Assert.NotNull(same);
        Assert.Equal(1, same.Prepared);
        Assert.Equal(Small.Steps, same.Inputs.Count);
        Assert.All(same.Inputs, shape => Assert.Equal([2, 3, 4, 4, 6], shape)); // [uncond; cond] under guidance
        Assert.True(same.Released);
        Assert.Equal(expected.Frames, result.Frames); // the seam costs nothing: the same bits

        RecordingConditioning? zeros = null;
        var zeroTask = PipelineTasks.TextToVideo with { Conditioning = _ => zeros = new RecordingConditioning(zeros: true) };
        using var zeroPipeline = new CogVideoXPipeline(ModelFolder.Open(Fixtures.Path2b), task: zeroTask);
        var observer = new FirstLatents();
        var fromZeros = zeroPipeline.Generate(Small with { Guidance = 1 }, observer: observer);
        Assert.All(observer.Initial!, v => Assert.Equal(0f, v));
        Assert.All(zeros!.Inputs, shape => Assert.Equal([1, 3, 4, 4, 6], shape)); // no guidance: the latents alone
        Assert.NotEqual(expected.Latents, fromZeros.Latents);
    }

    private sealed class FirstLatents : IPipelineObserver
    {
        public float[]? Initial { get; private set; }

        public void Tensor(string name, Tensor value)
        {
            if (name == "initial_latents") Initial = value.ToFloatArray();
        }
    }
}
