using CogVideoX.Lab;
using CogVideoX.Lab.Specs;

namespace CogVideoX.Tests.Lab;

/// <summary>
/// A spec's paths are relative to the spec file (README), its model folder included: the study runs the same
/// model from any working directory, and its dry run says when a model cannot be found or fetched at all.
/// </summary>
public class SpecModelPathTests
{
    private static string SpecWithModel(string model) =>
        StudyFolder.SmallSpec.Replace("  device: cpu", $"  device: cpu\n  model: \"{model}\"");

    [Fact]
    public void AModelFolderNextToTheSpecIsFoundFromAnyWorkingDirectory()
    {
        using var study = new StudyFolder(SpecWithModel("../models/tiny"));
        Directory.CreateDirectory(study.File("models"));
        Directory.CreateSymbolicLink(study.File("models", "tiny"), Fixtures.Path2b);

        var plan = StudyPlan.Expand(SpecParser.Load(study.SpecPath));
        Assert.All(plan.Jobs, j => Assert.Equal(Path.GetFullPath(study.File("models", "tiny")), j.Settings.Model));
        Assert.True(Path.GetFullPath(Directory.GetCurrentDirectory()) != study.Root);
    }

    [Theory]
    [InlineData("2b")]
    [InlineData("THUDM/CogVideoX-5b")]
    [InlineData("not/a-folder-here")]
    public void AnAliasARepoIdOrAFolderThatIsNotNextToTheSpecKeepsItsText(string model)
    {
        using var study = new StudyFolder(SpecWithModel(model));
        Assert.All(StudyPlan.Expand(SpecParser.Load(study.SpecPath)).Jobs, j => Assert.Equal(model, j.Settings.Model));
    }

    [Fact]
    public void TheDryRunSaysAModelThatIsNeitherAFolderNorARepoIdCannotRun()
    {
        using var study = new StudyFolder(SpecWithModel("3b"));
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(["experiment", "run", study.SpecPath, "--dry-run"], stdout, stderr, null, () => GpuCheck.Missing("test"));
        Assert.True(code == 0, stderr.ToString());
        Assert.Contains("model 3b: NOT USABLE (3b: no such folder", stdout.ToString());
        Assert.Contains("the run would stop before its first video", stdout.ToString());
        Assert.DoesNotContain("downloads it", stdout.ToString());
    }
}
