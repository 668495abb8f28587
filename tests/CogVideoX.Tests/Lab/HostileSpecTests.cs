using System.Diagnostics;
using System.Text.Json;
using CogVideoX.Lab.Runs;
using CogVideoX.Lab.Specs;

namespace CogVideoX.Tests.Lab;

/// <summary>
/// Specs and plan files written to do harm, or just far too big: values that would name folders or leave the output
/// folder, nesting deep enough to overflow the stack, grids of millions of videos, keys that are not names. Each
/// is a specific error before any work (or a safe file name), in bounded time and memory.
/// </summary>
public class HostileSpecTests
{
    private static string Quoted(string text) => "\"" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    [Fact]
    public void VariedValuesBecomeSafeDistinctFileNames()
    {
        var escape = "/../../../../../tmp/pwned_by_spec";
        var longValue = new string('w', 330);
        string[] values = ["x", escape, "a/b", longValue, "a b", "a-b", "..", "blurry, low quality"];
        using var study = new StudyFolder($"""
            prompt_dir: ../prompts
            output_dir: ../outputs
            experiments:
              a:
                prompts: [panda]
                vary: {"{"} negative_prompt: [{string.Join(", ", values.Select(Quoted))}] {"}"}
                reference: x
            """);
        var plan = StudyPlan.Expand(SpecParser.Load(study.SpecPath));
        var names = plan.Jobs.Select(j => j.Name).ToList();

        Assert.Equal(values.Length, names.Distinct().Count());
        // Ordinary values keep the names they always had.
        Assert.Equal("negative_prompt_x", names[0]);
        Assert.Equal("negative_prompt_a-b", names[5]);
        Assert.Matches("^negative_prompt_tmp-pwned_by_spec-[0-9a-f]{10}$", names[1]);
        Assert.Matches("^negative_prompt_a-b-[0-9a-f]{10}$", names[2]);
        Assert.Matches("^negative_prompt_a-b-[0-9a-f]{10}$", names[4]);
        Assert.Matches("^negative_prompt_blurry-low-quality-[0-9a-f]{10}$", names[7]);
        Assert.All(names, n =>
        {
            Assert.DoesNotContain("/", n);
            Assert.DoesNotContain("..", n);
            Assert.InRange(n.Length, 1, 160);
        });
        foreach (var job in plan.Jobs)
            Assert.Equal(Path.Combine(study.Outputs, "a"), Path.GetDirectoryName(Path.GetFullPath(job.ToVideoJob(study.Outputs).OutputPath)));
        // The values themselves are unchanged: only their file names are made safe.
        Assert.Equal(values, plan.Jobs.Select(j => j.Settings.NegativePrompt));
    }

    [Fact]
    public void AValueThatTriesToLeaveTheOutputFolderIsRenderedInsideIt()
    {
        var target = "pwned_" + Guid.NewGuid().ToString("N")[..8];
        using var study = new StudyFolder($"""
            prompt_dir: ../prompts
            output_dir: ../outputs
            defaults: {"{"} steps: 1, frames: 9, height: 32, width: 48, device: cpu {"}"}
            experiments:
              a:
                prompts: [panda]
                vary: {"{"} negative_prompt: ["x", "/../../../../../../../../tmp/{target}"] {"}"}
                reference: x
            """);
        var (code, _, stderr) = RunCli("experiment", "run", study.SpecPath, "--renderer", "synthetic", "--quiet");

        Assert.True(code == 0, stderr);
        Assert.False(File.Exists($"/tmp/{target}.mp4"));
        var videos = Directory.GetFiles(study.Outputs, "*.mp4", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(study.Outputs, f)).Order().ToList();
        Assert.Equal(2, videos.Count);
        Assert.Equal(Path.Combine("a", "negative_prompt_x.mp4"), videos[1]);
        Assert.Matches($"^a{Regex(Path.DirectorySeparatorChar)}negative_prompt_tmp-{target}-[0-9a-f]{{10}}\\.mp4$", videos[0]);
    }

    private static string Regex(char c) => System.Text.RegularExpressions.Regex.Escape(c.ToString());

    [Fact]
    public void OutputsThatWouldCollideAreAnError()
    {
        // Names join key_value pairs with '_': these two grid points spell the same name.
        var e = SpecErrors.Of("""
            experiments:
              a:
                prompts: [panda]
                grid: { model: [x_negative_prompt_y, x], negative_prompt: [z, y_negative_prompt_z] }
                reference: { model: x, negative_prompt: z }
            """);
        Assert.Contains("small.yaml:3:5: two videos of experiment 'a' would both be written to a/model_x_negative_prompt_y_negative_prompt_z.mp4", e);
    }

    [Theory]
    [InlineData("[")]
    [InlineData("{a: ")]
    [InlineData("- ")]
    public void DeeplyNestedYamlIsRefusedWithoutOverflowingTheStack(string level)
    {
        var e = SpecErrors.Of(string.Concat(Enumerable.Repeat(level, 100_000)) + "\n");
        Assert.Matches(@"small\.yaml:1:\d+: the YAML nests lists and mappings more than 32 deep; a spec needs 4 levels", e);
    }

    [Fact]
    public void ACircularAliasIsRefused()
    {
        var e = SpecErrors.Of("defaults: &d { model: *d }\nexperiments:\n  x: { prompts: [panda] }\n");
        Assert.Contains("small.yaml:1:23: the alias *d refers to a list or mapping that contains it; a spec cannot be circular", e);

        // Aliases of finished nodes are ordinary YAML.
        using var study = new StudyFolder("prompt_dir: ../prompts\nexperiments:\n  x: { prompts: &p [panda] }\n  y: { prompts: *p }\n");
        Assert.Equal(2, StudyPlan.Expand(SpecParser.Load(study.SpecPath)).Jobs.Count());
    }

    [Fact]
    public void AGridOfTooManyVideosIsRefusedBeforeItIsExpanded()
    {
        var values = string.Join(", ", Enumerable.Range(1, 10_000));
        var clock = Stopwatch.StartNew();
        var e = SpecErrors.Of($"""
            experiments:
              a:
                prompts: [panda]
                grid: {"{"} seed: [{values}], steps: [{values}] {"}"}
            """);
        Assert.Contains("small.yaml:3:5: experiment 'a' makes 100000000 videos (1 prompt(s) × 10000 seed × 10000 steps); a spec may plan at most 100000 videos; vary fewer values, or split the study into several specs", e);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");

        e = SpecErrors.Of($"""
            experiments:
              a: {"{"} prompts: [panda, whale], vary: {"{"} seed: [{string.Join(", ", Enumerable.Range(0, 60_000))}] {"}"}, reference: 42 {"}"}
              b: {"{"} prompts: [panda], vary: {"{"} seed: [{string.Join(", ", Enumerable.Range(0, 60_000))}] {"}"}, reference: 42 {"}"}
            """);
        Assert.Contains("experiment 'a' makes 120000 videos (2 prompt(s) × 60000 seed)", e);
        Assert.Contains("experiment 'b' makes 60000 videos (1 prompt(s) × 60000 seed), 180000 with the experiments before it", e);
    }

    [Fact]
    public void ALongVaryListIsReadInLinearTime()
    {
        var values = string.Join(", ", Enumerable.Range(0, (int)SpecParser.MaxJobs));
        using var study = new StudyFolder($"prompt_dir: ../prompts\nexperiments:\n  a: {{ prompts: [panda], vary: {{ seed: [{values}] }} }}\n");
        var clock = Stopwatch.StartNew();
        var plan = StudyPlan.Expand(SpecParser.Load(study.SpecPath));
        Assert.Equal(SpecParser.MaxJobs, plan.Jobs.Count());
        // Quadratic duplicate checks took minutes at this size.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");

        var e = SpecErrors.Of($"experiments:\n  a: {{ prompts: [panda], vary: {{ seed: [{string.Join(", ", Enumerable.Range(0, 150_000))}] }} }}\n");
        Assert.Contains("small.yaml:2:40: experiment 'a' vary: seed lists 150000 values; a spec may plan at most 100000 videos", e);
    }

    [Theory]
    [InlineData("? [a, b]\n: c\nexperiments:\n  x: { prompts: [panda] }\n",
        "small.yaml:1:3: keys in the spec must be plain names, not a list; allowed: name, description")]
    [InlineData("experiments:\n  ? [x]\n  : { prompts: [panda] }\n",
        "small.yaml:2:5: experiment names must be plain names (letters, digits, '_', '.', '-'), not a list")]
    [InlineData("defaults: { ? { a: 1 } : 2 }\nexperiments:\n  x: { prompts: [panda] }\n",
        "small.yaml:1:15: settings in defaults are named by plain keys, not a mapping; settings: model, steps")]
    [InlineData("experiments:\n  x: { prompts: [panda], vary: { steps: [1, 2] }, reference: { ? [steps] : 1 } }\n",
        "small.yaml:2:66: reference is keyed by setting names, not a list; experiment 'x' varies steps")]
    [InlineData("description: [a, b]\nexperiments:\n  x: { prompts: [panda], description: { a: 1 } }\n",
        "small.yaml:1:14: 'description' must be a single value (text), not a list", "small.yaml:3:39: 'description' must be a single value (text), not a mapping")]
    public void ComplexKeysAndListDescriptionsAreErrors(string yaml, params string[] expected) =>
        SpecErrors.AssertMentions(SpecErrors.Of(yaml), expected);

    [Fact]
    public void ALongExperimentNameIsAnError() =>
        Assert.Contains($"small.yaml:2:3: experiment name '{new string('x', 57)}…' is 300 characters long; at most 100 are allowed (it names files)",
            SpecErrors.Of($"experiments:\n  {new string('x', 300)}: {{ prompts: [panda] }}\n"));

    [Fact]
    public void OversizedSpecAndPromptFilesAreRefusedBeforeReading()
    {
        using var study = new StudyFolder("prompt_dir: ../prompts\nexperiments:\n  x: { prompts: [huge] }\n");
        File.WriteAllBytes(study.File("prompts", "huge.txt"), new byte[SpecParser.MaxPromptBytes + 1]);
        var e = Assert.Throws<SpecException>(() => SpecParser.Load(study.SpecPath)).Message;
        Assert.Contains($"small.yaml:3:18: prompt file {study.File("prompts", "huge.txt")} is 1048577 bytes; a prompt file may be at most 1048576 bytes", e);

        using (var spec = File.OpenWrite(study.SpecPath)) spec.SetLength(SpecParser.MaxFileBytes + 1);
        e = Assert.Throws<SpecException>(() => SpecParser.Load(study.SpecPath)).Message;
        Assert.Equal($"{study.SpecPath}: the spec file is 33554433 bytes; a spec may be at most 33554432 bytes (a study of 100000 videos fits in a few megabytes)", e);
    }

    [Fact]
    public void AnOutputOptionNamingAFileIsAnError()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var file = study.File("not-a-folder.txt");
        File.WriteAllText(file, "x");

        var (code, _, stderr) = RunCli("experiment", "run", study.SpecPath, "-o", file, "--renderer", "synthetic");
        Assert.Equal(2, code);
        Assert.Equal($"error: --output names {file}, which is a file; give a folder (it holds <experiment>/<video>.mp4 and the study's plan, manifest and report)", stderr.Trim());

        (code, _, stderr) = RunCli("report", study.SpecPath, "-o", file);
        Assert.Equal(2, code);
        Assert.Contains($"--output names {file}, which is a file; give a folder", stderr);
        Assert.Equal("x", File.ReadAllText(file));
    }

    [Fact]
    public void AReportFolderDoesNotTrustItsPlanFileForPaths()
    {
        using var study = new StudyFolder(StudyFolder.SmallSpec);
        var plan = StudyPlan.Expand(SpecParser.Load(study.SpecPath));
        Directory.CreateDirectory(study.Outputs);
        var planFile = Path.Combine(study.Outputs, "small.plan.json");
        var escape = "../../../tmp/pwned_by_plan_" + Guid.NewGuid().ToString("N");

        File.WriteAllText(planFile, JsonSerializer.Serialize(plan with { SpecName = escape }, LabRunJsonContext.Default.StudyPlan));
        var (code, _, stderr) = RunCli("report", study.Outputs);
        Assert.Equal(2, code);
        Assert.Equal($"error: {planFile}: not a plan file `experiment run` writes: its spec name '{escape}' is not a plain file name; run `experiment run SPEC --dry-run` to write it again", stderr.Trim());

        var experiments = plan.Experiments.ToList();
        var jobs = experiments[0].Jobs.ToList();
        jobs[0] = jobs[0] with { Output = "../../outside.mp4" };
        experiments[0] = experiments[0] with { Jobs = jobs };
        File.WriteAllText(planFile, JsonSerializer.Serialize(plan with { Experiments = experiments }, LabRunJsonContext.Default.StudyPlan));
        (code, _, stderr) = RunCli("report", study.Outputs);
        Assert.Equal(2, code);
        Assert.Contains("its video path '../../outside.mp4' is not <experiment>/<name>.mp4 inside the folder", stderr);

        Assert.Equal(["small.plan.json"], Directory.GetFileSystemEntries(study.Outputs).Select(Path.GetFileName));
        Assert.Empty(Directory.GetFiles(study.Root, "*.html", SearchOption.AllDirectories));
    }

    private static (int Code, string StdOut, string StdErr) RunCli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }
}
