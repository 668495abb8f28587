using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Diffusion;

/// <summary>Per-model scheduler defaults (as THUDM's demo recommends) and the user's override.</summary>
public class SchedulerSelectionTests
{
    private static (SchedulerConfig Scheduler, TransformerConfig Transformer) Real(string model) => (
        SchedulerConfig.Load(Fixtures.GoldenFile("real_configs", model, "scheduler", "scheduler_config.json")),
        TransformerConfig.Load(Fixtures.GoldenFile("real_configs", model, "transformer", "config.json")));

    [Fact]
    public void TwoBDefaultsToDdimWithItsFolderConfig()
    {
        var (scheduler, transformer) = Real("CogVideoX-2b");
        var choice = SchedulerSelection.Resolve(scheduler, transformer);
        Assert.Equal(SchedulerKind.Ddim, choice.Kind);
        Assert.Same(scheduler, choice.Config);
        Assert.IsType<CogVideoXDdimScheduler>(choice.Create());
    }

    [Fact]
    public void FiveBDefaultsToDpmWithTrailingSpacingAndTheFolderValues()
    {
        var (scheduler, transformer) = Real("CogVideoX-5b");
        Assert.Equal("CogVideoXDDIMScheduler", scheduler.ClassName); // the published folder names DDIM
        var choice = SchedulerSelection.Resolve(scheduler, transformer);
        Assert.Equal(SchedulerKind.Dpm, choice.Kind);
        Assert.Equal(scheduler with { ClassName = "CogVideoXDPMScheduler", TimestepSpacing = "trailing" }, choice.Config);
        Assert.Equal(1.0, choice.Config.SnrShiftScale);
        Assert.IsType<CogVideoXDpmScheduler>(choice.Create());
    }

    [Fact]
    public void UserChoiceOverridesTheDefault()
    {
        var (scheduler5b, transformer5b) = Real("CogVideoX-5b");
        var ddim = SchedulerSelection.Resolve(scheduler5b, transformer5b, SchedulerKind.Ddim);
        Assert.Equal(SchedulerKind.Ddim, ddim.Kind);
        Assert.Same(scheduler5b, ddim.Config); // the scheduler the folder names: its config as published

        var (scheduler2b, transformer2b) = Real("CogVideoX-2b");
        var dpm = SchedulerSelection.Resolve(scheduler2b with { TimestepSpacing = "leading" }, transformer2b, SchedulerSelection.Parse("DPM"));
        Assert.Equal(SchedulerKind.Dpm, dpm.Kind);
        Assert.Equal("trailing", dpm.Config.TimestepSpacing);
        Assert.Equal(3.0, dpm.Config.SnrShiftScale);
    }

    [Fact]
    public void FixtureFolderNamingDpmKeepsItsConfig()
    {
        var scheduler = SchedulerConfig.Load(Path.Combine(Fixtures.Path5b, "scheduler", "scheduler_config.json"));
        var transformer = TransformerConfig.Load(Path.Combine(Fixtures.Path5b, "transformer", "config.json"));
        var choice = SchedulerSelection.Resolve(scheduler, transformer);
        Assert.Equal(SchedulerKind.Dpm, choice.Kind);
        Assert.Same(scheduler, choice.Config);
    }

    [Fact]
    public void NamesRoundTripAndUnknownNamesAreRefused()
    {
        foreach (var name in SchedulerSelection.Names)
            Assert.Equal(name, SchedulerSelection.Name(SchedulerSelection.Parse(name)));
        foreach (SchedulerKind kind in Enum.GetValues<SchedulerKind>())
            Assert.Equal(kind, SchedulerSelection.KindOfClassName(SchedulerSelection.ClassName(kind)));
        Assert.Null(SchedulerSelection.KindOfClassName("EulerDiscreteScheduler"));

        var e = Assert.Throws<CogVideoXException>(() => SchedulerSelection.Parse("euler"));
        Assert.Contains("euler", e.Message);
        Assert.Contains("ddim, dpm", e.Message);
    }
}
