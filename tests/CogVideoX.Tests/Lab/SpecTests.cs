using CogVideoX.Engine;
using CogVideoX.Lab;
using CogVideoX.Lab.Runs;
using CogVideoX.Lab.Specs;

namespace CogVideoX.Tests.Lab;

public class SpecTests
{
    private static readonly string[] s_studyPrompts =
        ["panda_guitar", "gatto_hacker", "samurai_pioggia", "astronauta_luna", "ronaldo_pizza", "persona_panino", "cane_parco", "citta_futuristica", "oceano_balena"];

    [Fact]
    public void TheStudySpecIsTheReferenceStudy()
    {
        var spec = SpecParser.Load(Path.Combine(Fixtures.RepoRoot, "experiments", "cogvideox_study.yaml"));
        var plan = StudyPlan.Expand(spec);
        var jobs = plan.Jobs.ToList();
        Assert.Equal(20, jobs.Count);
        Assert.Equal(Path.Combine(Fixtures.RepoRoot, "outputs"), spec.OutputDir);

        var expected = s_studyPrompts.Select(p => $"baseline/{p}.mp4")
            .Concat(["exp1_guidance_scale/guidance_1.mp4", "exp1_guidance_scale/guidance_6.mp4", "exp1_guidance_scale/guidance_12.mp4"])
            .Concat(["exp2_steps/steps_10.mp4", "exp2_steps/steps_25.mp4", "exp2_steps/steps_50.mp4"])
            .Concat(["exp3_seed/seed_42.mp4", "exp3_seed/seed_123.mp4", "exp3_seed/seed_999.mp4"])
            .Concat(["exp4_frames/frames_25.mp4", "exp4_frames/frames_49.mp4"]);
        Assert.Equal(expected, jobs.Select(j => j.Output));

        var defaults = new GenerationSettings { Model = "2b", Steps = 50, Guidance = 6, Seed = 42, Frames = 49, Fps = 8, Height = 480, Width = 720, Device = "auto" };
        foreach (var job in jobs)
        {
            // Every video is the defaults with its prompt and at most one setting changed.
            var prompt = File.ReadAllText(Path.Combine(Fixtures.RepoRoot, "prompts", job.Settings.PromptName + ".txt")).Trim();
            var expectedSettings = defaults with { PromptName = job.Settings.PromptName, Prompt = prompt };
            foreach (var (key, value) in job.Values)
                expectedSettings = SettingKey.Find(key)!.Apply(expectedSettings, SettingKeyValue(key, value));
            Assert.Equal(expectedSettings, job.Settings);
            if (job.Experiment != "baseline") Assert.Equal("panda_guitar", job.Settings.PromptName);
        }
        Assert.Equal([1.0, 6, 12], jobs.Where(j => j.Experiment == "exp1_guidance_scale").Select(j => j.Settings.Guidance));
        // panda_guitar at the defaults (job 0) is also each ablation's reference: those four get its file.
        Assert.Equal([10, 14, 15, 19], jobs.Where(j => j.SameAs == "baseline/panda_guitar.mp4").Select(j => j.Index));
        Assert.Equal(4, jobs.Count(j => j.SameAs is not null));
        Assert.Equal([10, 25, 50], jobs.Where(j => j.Experiment == "exp2_steps").Select(j => j.Settings.Steps));
        Assert.Equal([42L, 123, 999], jobs.Where(j => j.Experiment == "exp3_seed").Select(j => j.Settings.Seed));
        Assert.Equal([25, 49], jobs.Where(j => j.Experiment == "exp4_frames").Select(j => j.Settings.Frames));
        // References: the default value of each ablation.
        Assert.Equal(["guidance_6", "steps_50", "seed_42", "frames_49"], jobs.Where(j => j.IsReference).Select(j => j.Name));
        Assert.All(jobs.Where(j => j.Experiment != "baseline" && !j.IsReference), j => Assert.NotNull(j.ReferenceName));
    }

    private static SettingValue SettingKeyValue(string key, string text)
    {
        Assert.True(SettingKey.Find(key)!.TryParse(text, false, out var v, out var error), error);
        return v!;
    }

    [Fact]
    public void EverySpecInTheRepositoryIsValid()
    {
        var specs = Directory.GetFiles(Path.Combine(Fixtures.RepoRoot, "experiments"), "*.yaml");
        Assert.True(specs.Length >= 2);
        foreach (var path in specs)
        {
            var plan = StudyPlan.Expand(SpecParser.Load(path));
            Assert.NotEmpty(plan.Jobs);
            Assert.Equal(plan.Jobs.Count(), plan.Jobs.Select(j => j.Output).Distinct().Count());
        }
        var grid = StudyPlan.Expand(SpecParser.Load(Path.Combine(Fixtures.RepoRoot, "experiments", "guidance_steps_grid.yaml")));
        Assert.Equal(12, grid.Jobs.Count());
    }

    [Fact]
    public void AGridIsTheCartesianProductWithItsReference()
    {
        using var study = new StudyFolder("""
            prompt_dir: ../prompts
            defaults: { steps: 4, frames: 9, height: 32, width: 48, device: cpu }
            experiments:
              grid:
                prompts: [panda, whale]
                grid: { guidance: [1, 7.5], steps: [2, 4, 8] }
                reference: { guidance: 7.5, steps: 4 }
            """);
        var plan = StudyPlan.Expand(SpecParser.Load(study.SpecPath));
        var jobs = plan.Jobs.ToList();
        Assert.Equal(2 * 2 * 3, jobs.Count);
        Assert.Equal(Enumerable.Range(0, 12), jobs.Select(j => j.Index));
        Assert.Equal("panda_guidance_1_steps_2", jobs[0].Name);
        Assert.Equal("panda_guidance_1_steps_4", jobs[1].Name);
        Assert.Equal("whale_guidance_7.5_steps_8", jobs[^1].Name);
        Assert.Equal(7.5, jobs[^1].Settings.Guidance);
        Assert.Equal(8, jobs[^1].Settings.Steps);
        Assert.Equal(["panda_guidance_7.5_steps_4", "whale_guidance_7.5_steps_4"], jobs.Where(j => j.IsReference).Select(j => j.Name));
        Assert.All(jobs.Where(j => !j.IsReference), j => Assert.Equal($"{j.Settings.PromptName}_guidance_7.5_steps_4", j.ReferenceName));
        Assert.Equal(study.File("experiments", "outputs"), SpecParser.Load(study.SpecPath).OutputDir);
    }

    [Fact]
    public void ShardsPartitionThePlanDeterministically()
    {
        var plan = StudyPlan.Expand(SpecParser.Load(Path.Combine(Fixtures.RepoRoot, "experiments", "cogvideox_study.yaml")));
        var all = plan.Jobs.Select(j => j.Index).ToList();
        for (int n = 1; n <= 7; n++)
        {
            var parts = Enumerable.Range(0, n).Select(i => all.Where(k => new Shard(i, n).Contains(k)).ToList()).ToList();
            Assert.Equal(all, parts.SelectMany(p => p).Order());
            Assert.All(parts, p => Assert.InRange(p.Count, all.Count / n, all.Count / n + 1));
        }
        Assert.Equal(new Shard(2, 4), Shard.Parse("2/4"));
        Assert.Contains("form i/n", Assert.Throws<CogVideoXException>(() => Shard.Parse("2")).Message);
        Assert.Contains("0 … n−1", Assert.Throws<CogVideoXException>(() => Shard.Parse("4/4")).Message);
        Assert.Equal(["cuda:0", "cuda:1", "cuda:3"], DeviceList.Parse("0,1,cuda:3"));
        Assert.Equal(["cpu", "cpu"], DeviceList.Parse("cpu,cpu"));
        Assert.Contains("twice", Assert.Throws<CogVideoXException>(() => DeviceList.Parse("0,cuda:0")).Message);
        Assert.Contains("not a device", Assert.Throws<CogVideoXException>(() => DeviceList.Parse("gpu0")).Message);
    }

    [Fact]
    public void StepCacheSettingsAreCheckedAndCacheNoneWithExactStepsIsTheExactVideo()
    {
        SpecErrors.AssertMentions(SpecErrors.Of("""
            defaults:
              cache: turbo
              cache_threshold: -0.5
              exact_steps: -1
            experiments:
              a: { prompts: [panda] }
            """),
            "3 problems", "cache is 'turbo'; allowed: one of none, teacache, fbcache", "cache_threshold must be a finite number ≥ 0, got -0.5",
            "exact_steps must be ≥ 0, got -1");

        var exact = new GenerationSettings { Prompt = "p" };
        Assert.True(exact.DefinesSameVideoAs(exact with { ExactSteps = 2, CacheThreshold = 0.3 }));
        var tea = exact with { Cache = "teacache" };
        Assert.True(tea.DefinesSameVideoAs(tea with { ExactSteps = 1, CacheThreshold = 0.1 })); // the defaults written out
        Assert.False(tea.DefinesSameVideoAs(tea with { ExactSteps = 2 }));
        Assert.False(tea.DefinesSameVideoAs(exact));
        Assert.Equal(["cache none → teacache", "exact steps 0 → 2"], exact.Differences(tea with { ExactSteps = 2 }));
    }

    [Fact]
    public void TheLinearSettingIsCheckedAndFp8KeepsItsExactSteps()
    {
        Assert.Contains("linear is 'int8'; allowed: one of exact, fp8", SpecErrors.Of("defaults:\n  linear: int8\nexperiments:\n  a: { prompts: [panda] }\n"));

        var exact = new GenerationSettings { Prompt = "p" };
        Assert.Equal("exact", exact.Linear);
        var fp8 = exact with { Linear = "fp8" };
        Assert.False(fp8.DefinesSameVideoAs(exact));
        // Under fp8, 0 exact steps (every step fp8) and 1 (the first and last exact) are different videos, with a cache too.
        Assert.False(fp8.DefinesSameVideoAs(fp8 with { ExactSteps = 1 }));
        Assert.False((fp8 with { Cache = "teacache" }).DefinesSameVideoAs(fp8 with { Cache = "teacache", ExactSteps = 1 }));
        Assert.Equal(["linear exact → fp8"], exact.Differences(fp8));
    }

    [Theory]
    [InlineData("defaults:\n  stepz: 4\nexperiments:\n  a: { prompts: [panda] }\n",
        "small.yaml:2:3: unknown setting 'stepz' in defaults (did you mean 'steps'?)", "settings: model, steps, guidance")]
    [InlineData("experiment:\n  a: { prompts: [panda] }\n",
        ":1:1: unknown key 'experiment' in the spec (did you mean 'experiments'?); allowed: name, description, output_dir")]
    [InlineData("experiments:\n  a: { prompts: [panda], varry: { steps: [1, 2] } }\n",
        ":2:26: unknown key 'varry' in experiment 'a' (did you mean 'vary'?)")]
    public void UnknownKeysAreLocatedAndSuggested(string yaml, params string[] expected) =>
        SpecErrors.AssertMentions(SpecErrors.Of(yaml), expected);

    [Fact]
    public void ValuesAreCheckedWithWhatIsAllowed()
    {
        SpecErrors.AssertMentions(SpecErrors.Of("""
            defaults:
              steps: ten
              guidance: -1
              frames: 48
              height: 100
              scheduler: euler
            experiments:
              a:
                prompts: [panda]
                vary: { steps: [0, 2] }
            """),
            "7 problems",
            ":9:5: experiment 'a' needs a reference for steps",
            ":2:10: steps must be an integer ≥ 1 (denoising steps), got 'ten'",
            ":3:13: guidance must be a finite number ≥ 0, got -1",
            ":4:11: frames is 48, which is not of the form 4k+1 (nearest: 49)",
            ":5:11: height is 100; allowed: a multiple of 16",
            ":6:14: scheduler is 'euler'; allowed: one of ddim, dpm",
            ":10:21: steps must be at least 1, got 0");
    }

    [Fact]
    public void GpuChoicesAreSettingsWithTheirAllowedValues()
    {
        using var study = new StudyFolder("""
            defaults: { attention: cudnn, cudnn: conv }
            experiments:
              a: { prompts: [panda], vary: { cudnn_sdpa: [unified, composite] }, reference: unified }
            prompt_dir: ../prompts
            """);
        var jobs = StudyPlan.Expand(SpecParser.Load(study.SpecPath)).Jobs.ToList();
        Assert.Equal([("cudnn", "conv", "unified"), ("cudnn", "conv", "composite")],
            jobs.Select(j => (j.Settings.Attention, j.Settings.Cudnn, j.Settings.CudnnSdpa)));

        Assert.Contains(":2:14: attention is 'flash'; allowed: one of own, cudnn, sage8",
            SpecErrors.Of("defaults:\n  attention: flash\nexperiments:\n  a: { prompts: [panda] }\n"));
    }

    [Fact]
    public void UnknownPromptsListTheAvailableOnes() =>
        SpecErrors.AssertMentions(SpecErrors.Of("experiments:\n  a:\n    prompts: [panda, dragon]\n"),
            ":3:22: unknown prompt 'dragon' (no file ", "available: panda, tricky, whale");

    [Theory]
    [InlineData("experiments:\n  a:\n    prompts: [panda]\n    vary: { guidance: [6, 6.0, 7] }\n    reference: 7\n",
        ":4:27: guidance value 6 is listed twice in experiment 'a' vary: both would be written to guidance_6.mp4")]
    [InlineData("experiments:\n  a:\n    prompts: [panda, panda]\n", ":3:22: prompt 'panda' is listed twice")]
    [InlineData("experiments:\n  a:\n    prompts: [panda]\n    vary: { guidance: [1, 6], steps: [2, 4] }\n",
        "`vary` takes one setting, this one has 2 (guidance, steps); use `grid:`")]
    [InlineData("experiments:\n  a:\n    prompts: [panda]\n    vary: { guidance: [1, 12] }\n", "needs a reference for guidance", "X one of 1, 12")]
    [InlineData("experiments:\n  a:\n    prompts: [panda]\n    vary: { guidance: [1, 12] }\n    reference: 6\n",
        ":5:16: reference guidance 6 is not one of the values it varies over (1, 12)")]
    [InlineData("experiments:\n  a:\n    prompts: [panda]\n    vary: { device: [cpu, cuda] }\n", "device cannot be varied")]
    [InlineData("experiments:\n  bad name:\n    prompts: [panda]\n", ":2:3: experiment name 'bad name' must start with a letter or digit")]
    public void CollidingOutputsAndAmbiguousExperimentsAreErrors(string yaml, params string[] expected) =>
        SpecErrors.AssertMentions(SpecErrors.Of(yaml), expected);

    [Theory]
    [InlineData("experiments:\n  a: { prompts: [panda\n", "small.yaml:4:1: YAML syntax error: the file ends inside an unclosed [ … ] or { … }")]
    [InlineData("- just\n- a list\n", "a spec is a YAML mapping")]
    [InlineData("defaults: { steps: 2 }\n", "the spec has no `experiments:`")]
    public void BrokenYamlIsAClearError(string yaml, params string[] expected) =>
        SpecErrors.AssertMentions(SpecErrors.Of(yaml), expected);

    [Fact]
    public void AMissingSpecFileIsAClearError() =>
        Assert.Contains("no such spec file", Assert.Throws<SpecException>(() => SpecParser.Load("/nonexistent/spec.yaml")).Message);

    [Fact]
    public void SettingsThatOnlyDifferInTheGpuOrdinalOrWrittenOutGpuDefaultsMakeTheSameVideo()
    {
        var a = new GenerationSettings { Device = "cuda" };
        Assert.True(a.DefinesSameVideoAs(a with { Device = "cuda:1" }));
        // attention own, cudnn on and cudnn-sdpa auto are what null means: a spec that writes them out links to the default video.
        Assert.True(a.DefinesSameVideoAs(a with { Attention = "own", Cudnn = "on", CudnnSdpa = "auto" }));
        Assert.False(a.DefinesSameVideoAs(a with { Attention = "cudnn" }));
        Assert.False(a.DefinesSameVideoAs(a with { Attention = "sage8" }));
        Assert.False(a.DefinesSameVideoAs(a with { Cudnn = "off" }));
        Assert.False(a.DefinesSameVideoAs(a with { Device = "cpu" }));
        Assert.False(a.DefinesSameVideoAs(a with { Device = "cuda:1", Seed = 1 }));
    }
}
