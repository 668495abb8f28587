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
        var dpm = SchedulerSelection.Resolve(scheduler2b with { TimestepSpacing = "leading" }, transformer2b, SchedulerRegistry.Parse("DPM"));
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
        foreach (var name in SchedulerRegistry.Names)
            Assert.Equal(name, SchedulerRegistry.Name(SchedulerRegistry.Parse(name)));
        foreach (SchedulerKind kind in Enum.GetValues<SchedulerKind>())
            Assert.Equal(kind, SchedulerRegistry.KindOfClassName(SchedulerRegistry.Get(kind).ClassName));
        Assert.Null(SchedulerRegistry.KindOfClassName("EulerDiscreteScheduler"));

        var e = Assert.Throws<CogVideoXException>(() => SchedulerRegistry.Parse("euler"));
        Assert.Contains("euler", e.Message);
        Assert.Contains("ddim, dpm", e.Message);
    }

    [Fact]
    public void TheRegistryHasOneEntryPerKindThatBuildsThatKind()
    {
        // Every kind is registered once, under a unique name and class name, and its factory builds that kind.
        var config = SchedulerCaseTests.ConfigOf("ddim");
        Assert.Equal(Enum.GetValues<SchedulerKind>().Order(), SchedulerRegistry.All.Select(s => s.Kind).Order());
        Assert.Equal(SchedulerRegistry.All.Count, SchedulerRegistry.Names.Distinct().Count());
        Assert.Equal(SchedulerRegistry.All.Count, SchedulerRegistry.All.Select(s => s.ClassName).Distinct().Count());
        foreach (var info in SchedulerRegistry.All)
        {
            using var scheduler = SchedulerRegistry.Create(info.Kind, config);
            Assert.Equal(info.Kind, scheduler.Kind);
            Assert.Equal(info.Kind, SchedulerRegistry.Parse($"  {info.Name.ToUpperInvariant()} "));
            Assert.Same(info, new SchedulerChoice(info.Kind, config).Info);
        }
        // THUDM's demo: dynamic CFG with DPM only.
        Assert.True(SchedulerRegistry.Get(SchedulerKind.Dpm).DynamicCfgByDefault);
        Assert.False(SchedulerRegistry.Get(SchedulerKind.Ddim).DynamicCfgByDefault);
        var e = Assert.Throws<CogVideoXException>(() => SchedulerRegistry.Parse(""));
        Assert.Contains("deterministic", e.Message);
    }
}
