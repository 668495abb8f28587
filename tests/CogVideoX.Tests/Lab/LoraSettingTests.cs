using CogVideoX.Lab;
using CogVideoX.Lab.Specs;

namespace CogVideoX.Tests.Lab;

/// <summary>The <c>lora</c> setting: a study can vary the adapters and their strengths; bad values are located.</summary>
public class LoraSettingTests
{
    [Fact]
    public void AStudyVariesTheStrengthAndEqualListsCompareEqual()
    {
        using var study = new StudyFolder("""
            defaults: { lora: "styles/a.safetensors" }
            experiments:
              strength:
                prompts: [panda]
                vary: { lora: [none, "styles/a.safetensors:0.5", "styles/a.safetensors:1; styles/b.safetensors:0.25"] }
                reference: none
            prompt_dir: ../prompts
            """);
        // Relative to the spec file, as its images and videos are.
        Directory.CreateDirectory(study.File("experiments", "styles"));
        string fileA = study.File("experiments", "styles", "a.safetensors"), fileB = study.File("experiments", "styles", "b.safetensors");
        File.WriteAllText(fileA, "");
        File.WriteAllText(fileB, "");
        var jobs = StudyPlan.Expand(SpecParser.Load(study.SpecPath)).Jobs.ToList();
        Assert.Equal([null, $"{fileA}:0.5", $"{fileA}:1; {fileB}:0.25"], jobs.Select(j => j.Settings.Lora));
        // Output names stay plain file names (the value's separators become a slug and a hash).
        Assert.All(jobs, j => Assert.DoesNotContain("styles/", j.Output, StringComparison.Ordinal));
        Assert.Equal(3, jobs.Select(j => j.Output).Distinct().Count());

        // Written in another way, the same adapters are the same video.
        var a = new GenerationSettings { Lora = "styles/a.safetensors:1" };
        Assert.True(SettingKey.Find("lora")!.TryParse(" styles/a.safetensors ", false, out var value, out _));
        var b = SettingKey.Find("lora")!.Apply(new GenerationSettings(), value!);
        Assert.True(a.DefinesSameVideoAs(b));
        Assert.Equal(["lora styles/a.safetensors:1 → styles/a.safetensors:0.5"], a.Differences(a with { Lora = "styles/a.safetensors:0.5" }));
    }

    [Fact]
    public void LoraFilesAreRelativeToTheSpecAndAbsolutePathsStay()
    {
        using var study = new StudyFolder("""
            defaults: { lora: "../loras/style.safetensors:0.8" }
            experiments:
              base: { prompts: [panda] }
              both: { prompts: [panda], settings: { lora: "LORA_ABSOLUTE; ../loras/style.safetensors" } }
              implicit_reference:
                prompts: [panda]
                vary: { lora: [none, "../loras/style.safetensors:0.8"] }
            prompt_dir: ../prompts
            """);
        Directory.CreateDirectory(study.File("loras"));
        var style = study.File("loras", "style.safetensors");
        var absolute = study.File("elsewhere.safetensors");
        File.WriteAllText(style, "");
        File.WriteAllText(absolute, "");
        File.WriteAllText(study.SpecPath, File.ReadAllText(study.SpecPath).Replace("LORA_ABSOLUTE", absolute, StringComparison.Ordinal));
        // The current directory (the test runner's) is not the spec's folder: the spec's folder decides.
        var plan = StudyPlan.Expand(SpecParser.Load(study.SpecPath));
        var jobs = plan.Jobs.ToDictionary(j => j.Output);
        Assert.Equal($"{style}:0.8", jobs["base/panda.mp4"].Settings.Lora);
        Assert.Equal($"{absolute}:1; {style}:1", jobs["both/panda.mp4"].Settings.Lora);
        // The names keep the text as written; the spec's own setting is the reference it matches.
        var experiment = plan.Experiments.Single(e => e.Name == "implicit_reference");
        Assert.Equal("../loras/style.safetensors:0.8", experiment.Reference["lora"]);
        Assert.Equal(jobs["base/panda.mp4"].Settings.Lora, experiment.Jobs.Single(j => j.IsReference).Settings.Lora);
    }

    /// <summary>A bad <c>lora</c> value is located in the spec; {spec} and {folder} stand for the spec file and its folder.</summary>
    [Theory]
    [InlineData("loras/missing.safetensors:0.5",
        "{spec}:1:19: lora: no LoRA file {folder}/loras/missing.safetensors ('loras/missing.safetensors' relative to the spec's folder {folder})",
        "relative to the spec file or absolute")]
    [InlineData("a.safetensors:strong", ":1:19: lora: the strength 'strong' in 'a.safetensors:strong' is not a number")]
    public void ABadLoraValueIsLocatedAndSaysWhatIsAllowed(string lora, params string[] expected)
    {
        var (error, specPath) = SpecErrors.OfSpec($"defaults: {{ lora: \"{lora}\" }}\nexperiments:\n  a: {{ prompts: [panda] }}\n");
        var folder = Path.GetDirectoryName(specPath)!;
        SpecErrors.AssertMentions(error, [.. expected.Select(x => x.Replace("{spec}", specPath, StringComparison.Ordinal).Replace("{folder}", folder, StringComparison.Ordinal))]);
    }

    [Fact]
    public void SidecarsWithoutLoraReadAsBeforeAndRecordEachFile()
    {
        var settings = new GenerationSettings { Prompt = "p" };
        var sidecar = new VideoSidecar { Settings = settings };
        var json = System.Text.Json.JsonSerializer.Serialize(sidecar, LabJsonContext.Readable.VideoSidecar);
        Assert.DoesNotContain("\"lora\"", json);
        var withLora = sidecar with
        {
            Settings = settings with { Lora = "a.safetensors:0.7" },
            Lora = [new SidecarLora { File = "/x/a.safetensors", Sha256 = "ab", Strength = 0.7, Layers = 8 }],
        };
        json = System.Text.Json.JsonSerializer.Serialize(withLora, LabJsonContext.Readable.VideoSidecar);
        var back = System.Text.Json.JsonSerializer.Deserialize(json, LabJsonContext.Default.VideoSidecar)!;
        Assert.Equal("a.safetensors:0.7", back.Settings.Lora);
        Assert.Equal(("/x/a.safetensors", "ab", 0.7, 8), (back.Lora![0].File, back.Lora[0].Sha256, back.Lora[0].Strength, back.Lora[0].Layers));
        Assert.True(back.Settings.DefinesSameVideoAs(withLora.Settings));
    }
}
