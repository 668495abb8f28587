using System.CommandLine;
using CogVideoX.Cli;
using CogVideoX.Diffusion;
using CogVideoX.Lab;
using CogVideoX.Tests.Pipeline;
using CogVideoX.Weights;
using static CogVideoX.Tests.CliRun;

namespace CogVideoX.Tests.Cli;

/// <summary>CogVideoX 1.5 at the command line: inspect says what a folder is, the aliases, the model's defaults for left-out flags.</summary>
public class CogVideoX15CliTests
{
    [Fact]
    public void InspectSaysWhatEachFolderIs()
    {
        var cases = new (string Folder, string Kind)[]
        {
            (CogVideoX15Tests.TextToVideo, "CogVideoX 1.5 text-to-video (like THUDM/CogVideoX1.5-5B); defaults 81 frames, 768×1360, 16 fps"),
            (CogVideoX15Tests.ImageToVideo, "CogVideoX 1.5 image-to-video (like THUDM/CogVideoX1.5-5B-I2V); defaults 81 frames, 768×1360, 16 fps"),
            (Fixtures.GoldenFile("real_configs", "CogVideoX1.5-5B"), "CogVideoX 1.5 text-to-video (like THUDM/CogVideoX1.5-5B)"),
            (Fixtures.Path2b, "CogVideoX 1.0 text-to-video (like THUDM/CogVideoX-2b); defaults 49 frames, 480×720, 8 fps"),
            (Fixtures.Path5b, "CogVideoX 1.0 text-to-video (like THUDM/CogVideoX-5b)"),
        };
        foreach (var (folder, kind) in cases)
        {
            var (code, output, errors) = Run("inspect", folder);
            Assert.Equal((0, ""), (code, errors));
            var line = output.Split('\n').Select(l => l.TrimEnd('\r')).Single(l => l.StartsWith(Row("model", ""), StringComparison.Ordinal));
            Assert.StartsWith(Row("model", kind), line);
        }
        var (_, i2v, _) = Run("inspect", CogVideoX15Tests.ImageToVideo);
        Assert.Contains(Row("patch size", "2 × 2 × 2 frames"), i2v.Split('\n').Select(l => l.TrimEnd('\r')));
        var (_, json, _) = Run("inspect", "--json", CogVideoX15Tests.TextToVideo);
        Assert.Contains("\"kind\": \"CogVideoX 1.5 text-to-video", json.Replace("\":\"", "\": \""));
    }

    [Fact]
    public void AliasesName15Repos()
    {
        Assert.Equal("THUDM/CogVideoX1.5-5B", ModelLocator.Aliases["1.5"]);
        Assert.Equal("THUDM/CogVideoX1.5-5B", ModelLocator.Aliases["1.5-5B"]);
        Assert.Equal("THUDM/CogVideoX1.5-5B-I2V", ModelLocator.Aliases["1.5-i2v"]);
        Assert.Equal("THUDM/CogVideoX1.5-5B-I2V", ModelLocator.Aliases["1.5-5b-i2v"]);
        var reference = ModelLocator.ParseRepoReference("1.5@main");
        Assert.Equal(("THUDM/CogVideoX1.5-5B", "main", "1.5"), (reference.RepoId, reference.Revision, reference.Alias));
    }

    [Fact]
    public void LeftOutFlagsTakeTheModelsDefaults()
    {
        Func<string, string?> noCache = name => name == "HF_HUB_CACHE" ? Path.Combine(Path.GetTempPath(), "cogvideox-no-cache") : null;
        Assert.Same(ModelDefaults.Version15, ModelDefaultsFlags.For("1.5", noCache));          // not cached: by the name
        Assert.Same(ModelDefaults.Version15, ModelDefaultsFlags.For("THUDM/CogVideoX1.5-5B-I2V@main", noCache));
        Assert.Null(ModelDefaultsFlags.For("2b", noCache));
        Assert.Equal("CogVideoX 1.5", ModelDefaultsFlags.For(CogVideoX15Tests.TextToVideo, noCache)!.Name); // a folder: by its config
        Assert.Same(ModelDefaults.Version10, ModelDefaultsFlags.For(Fixtures.Path5b, noCache));

        // As generate declares them: no default of their own (ValueOr gives the 1.0 one until Apply knows the model).
        var frames = new Option<int>("--frames");
        var height = new Option<int>("--height");
        var width = new Option<int>("--width");
        var fps = new Option<int>("--fps");
        var command = new RootCommand { frames, height, width, fps };
        GenerationSettings Settings(ParseResult p) => new()
        {
            Model = "1.5",
            Prompt = "a cat",
            Frames = ModelDefaultsFlags.ValueOr(p, frames, GenerationDefaults.Frames),
            Height = ModelDefaultsFlags.ValueOr(p, height, GenerationDefaults.Height),
            Width = ModelDefaultsFlags.ValueOr(p, width, GenerationDefaults.Width),
            Fps = ModelDefaultsFlags.ValueOr(p, fps, GenerationDefaults.Fps),
        };
        var implicitParse = command.Parse([]);
        var applied = ModelDefaultsFlags.Apply(implicitParse, Settings(implicitParse), noCache, frames, height, width, fps);
        Assert.Equal((81, 768, 1360, 16), (applied.Frames, applied.Height, applied.Width, applied.Fps));
        var given = command.Parse(["--frames", "161", "--width", "1024"]);
        applied = ModelDefaultsFlags.Apply(given, Settings(given), noCache, frames, height, width, fps);
        Assert.Equal((161, 768, 1024, 16), (applied.Frames, applied.Height, applied.Width, applied.Fps));
        // 1.0 models keep the flags' own defaults.
        var twoB = ModelDefaultsFlags.Apply(implicitParse, Settings(implicitParse) with { Model = "2b" }, noCache, frames, height, width, fps);
        Assert.Equal((49, 480, 720, 8), (twoB.Frames, twoB.Height, twoB.Width, twoB.Fps));
    }

    [Fact]
    public void HelpStatesTheModelsDefaultsNotOneFixedNumber()
    {
        var (code, help, _) = Run("generate", "--help");
        Assert.Equal(0, code);
        foreach (var flag in new[] { "--frames", "--height", "--width", "--fps" })
        {
            var line = help.Split('\n').Single(l => l.TrimStart().StartsWith(flag + " ", StringComparison.Ordinal));
            Assert.Contains("(default: the model's;", line);
            Assert.DoesNotContain("[default:", line);
        }
    }
}

/// <summary>`bench` on the tiny 1.5 folders on the CPU: the transformer step on padded latents (with ofs for I2V), the three decodes.</summary>
public class CogVideoX15BenchTests
{
    private static readonly string[] Tiny = TinyBench(frames: 17);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TransformerStepRunsOnPaddedLatents(bool imageToVideo)
    {
        var folder = imageToVideo ? CogVideoX15Tests.ImageToVideo : CogVideoX15Tests.TextToVideo;
        var (code, o, err) = Run(["bench", "transformer", "--model-config", folder, .. Tiny]);
        Assert.True(code == 0, err);
        // 17 frames → 5 latent frames, padded to 6 → 3 temporal patches × 2 × 3.
        Assert.Contains("latents 6×4×6, 18 video + 226 text tokens", o);
    }

    [Fact]
    public void VaeTiledRunsWholeFramesFittedColumnsAndDefaultTiles()
    {
        var (code, o, err) = Run(["bench", "vae-tiled", "--model-config", CogVideoX15Tests.TextToVideo, .. Tiny]);
        Assert.True(code == 0, err);
        var lines = o.Split('\n');
        foreach (var stage in new[] { "vae ", "vae-fit ", "vae-tiled " })
            Assert.Contains(lines, line => line.StartsWith(stage, StringComparison.Ordinal) && line.Contains(" s   peak"));
        Assert.Contains("5 latent frames → 17 frames 32×48", o);
    }
}
