using CogVideoX.Lab;

namespace CogVideoX.Tests.Lab;

/// <summary>
/// <c>experiment run --devices 0</c> where no GPU works: each worker stops after its first videos fail the same way,
/// and the parent says to fix that, not to "run the same command again to finish the rest" (which would only repeat it).
/// </summary>
public class WorkersWithoutAGpuTests
{
    [Fact]
    public void WorkersWhoseVideosAllFailSayWhyAndWhatToDo()
    {
        if (DeviceSelection.Probe().Works) return; // needs a machine without a working GPU (CI)
        using var study = new StudyFolder(StudyFolder.SmallSpec.Replace("  device: cpu", $"  device: auto\n  model: \"{Fixtures.Path2b}\""));
        using var p = new CliProcess(study.Root, "experiment", "run", study.SpecPath, "--devices", "0");
        Assert.Equal(1, p.Wait());
        Assert.Contains("stopped after the first 3 videos failed the same way", p.StdErr);
        Assert.DoesNotContain("..", p.StdErr.Replace("...", "", StringComparison.Ordinal));
        Assert.Contains("error: every worker stopped after its first videos failed (3 of 7 video(s) tried; the messages above say why). Fix that and run the same command again", p.StdErr);
        Assert.DoesNotContain("finish the rest", p.StdErr);
        Assert.DoesNotContain("   at ", p.StdErr);
    }
}
