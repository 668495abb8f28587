using System.Diagnostics;
using System.Text;
using CogVideoX.Lab.Runs;
using CogVideoX.Lab.Specs;

namespace CogVideoX.Tests.Lab;

/// <summary>Tests that start CLI processes or a browser share the two cores one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class WorkbenchProcesses
{
    public const string Name = "workbench processes";
}

/// <summary>A study folder in a temp dir: prompts/, experiments/&lt;name&gt;.yaml, outputs/ (deleted with the dir).</summary>
public sealed class StudyFolder : IDisposable
{
    private readonly TempDir _dir = new();

    public StudyFolder(string yaml, IReadOnlyDictionary<string, string>? prompts = null, string specName = "small")
    {
        Directory.CreateDirectory(File("prompts"));
        Directory.CreateDirectory(File("experiments"));
        prompts ??= DefaultPrompts;
        foreach (var (name, text) in prompts) System.IO.File.WriteAllText(File("prompts", name + ".txt"), text);
        SpecPath = File("experiments", specName + ".yaml");
        System.IO.File.WriteAllText(SpecPath, yaml);
    }

    public static readonly IReadOnlyDictionary<string, string> DefaultPrompts = new Dictionary<string, string>
    {
        ["panda"] = "A panda plays a small guitar in a bamboo forest.",
        ["whale"] = "A whale glides through deep blue water, sunlight from above.",
        ["tricky"] = "A <script>window.__pwned = 1</script> & \"quoted\" 'prompt' <b>bold</b>",
    };

    public string Root => _dir.Path;

    public string SpecPath { get; }

    public string Outputs => File("outputs");

    public string File(params string[] parts) => _dir.File(parts);

    public void Dispose() => _dir.Dispose();

    /// <summary>
    /// A small study: 2 baseline prompts, guidance 1/6/12, steps 1/2 — 7 videos of 9 frames at 48×32 on the CPU. Each
    /// experiment has its own seed so no two jobs share settings (<see cref="SharedSpec"/> tests jobs that do).
    /// </summary>
    public const string SmallSpec = """
        name: small
        description: A reduced study for tests.
        output_dir: ../outputs
        prompt_dir: ../prompts
        defaults:
          steps: 2
          guidance: 6
          seed: 42
          frames: 9
          fps: 8
          height: 32
          width: 48
          device: cpu
        experiments:
          baseline:
            prompts: [panda, tricky]
          guidance:
            prompts: [panda]
            vary: { guidance: [1, 6, 12] }
            reference: 6
            settings: { seed: 1 }
          steps:
            prompts: [panda]
            vary: { steps: [1, 2] }
            reference: 2
            settings: { seed: 2 }
        """;

    /// <summary>
    /// The reference study's shape in small: panda at the defaults is the baseline and the reference of both
    /// ablations (jobs 0, 3 and 5 share settings) — 6 jobs, 4 renders.
    /// </summary>
    public const string SharedSpec = """
        name: small
        output_dir: ../outputs
        prompt_dir: ../prompts
        defaults: { steps: 2, guidance: 6, seed: 42, frames: 9, fps: 8, height: 32, width: 48 }
        experiments:
          baseline:
            prompts: [panda]
          guidance:
            prompts: [panda]
            vary: { guidance: [1, 6, 12] }
            reference: 6
          steps:
            prompts: [panda]
            vary: { steps: [1, 2] }
            reference: 2
        """;
}

/// <summary>What a spec that cannot be used says: its error, and checks that the error names each expected part.</summary>
public static class SpecErrors
{
    /// <summary>
    /// The error of <paramref name="yaml"/> written as small.yaml in a <see cref="StudyFolder"/>; prompt_dir goes last
    /// (so line numbers are those of the YAML as written), unless the YAML is a list, which takes no keys.
    /// </summary>
    public static string Of(string yaml) => OfSpec(yaml).Error;

    /// <summary>As <see cref="Of"/>, with the spec's path (its folder is deleted by then: for the paths the error names).</summary>
    public static (string Error, string SpecPath) OfSpec(string yaml)
    {
        using var study = new StudyFolder(yaml.TrimStart().StartsWith('-') ? yaml : yaml.TrimEnd() + "\nprompt_dir: ../prompts\n");
        return (Assert.Throws<SpecException>(() => SpecParser.Load(study.SpecPath)).Message, study.SpecPath);
    }

    /// <summary>Fails unless <paramref name="error"/> contains every one of <paramref name="parts"/>.</summary>
    public static void AssertMentions(string error, params string[] parts) => Assert.All(parts, part => Assert.Contains(part, error));
}

/// <summary>Runs the real CLI (cogvideox.dll from the test's build output) as a child process.</summary>
public sealed class CliProcess : IDisposable
{
    private readonly StringBuilder _stdout = new(), _stderr = new();

    public CliProcess(string workingDirectory, params string[] args)
        : this(workingDirectory, null, args)
    {
    }

    /// <summary>With <paramref name="environment"/> added to (or replacing in) the child's environment.</summary>
    public CliProcess(string workingDirectory, IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "cogvideox.dll");
        Assert.True(File.Exists(dll), $"{dll} missing: the test project references the CLI so its build output includes it");
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) psi.Environment[name] = value;
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process = Process.Start(psi)!;
        Process.OutputDataReceived += (_, e) => { lock (_stdout) if (e.Data is not null) _stdout.AppendLine(e.Data); };
        Process.ErrorDataReceived += (_, e) => { lock (_stderr) if (e.Data is not null) _stderr.AppendLine(e.Data); };
        Process.BeginOutputReadLine();
        Process.BeginErrorReadLine();
    }

    public Process Process { get; }

    public string StdOut { get { lock (_stdout) return _stdout.ToString(); } }

    public string StdErr { get { lock (_stderr) return _stderr.ToString(); } }

    /// <summary>Waits for the exit and returns the exit code (fails the test on a hang).</summary>
    public int Wait(TimeSpan? timeout = null)
    {
        if (!Process.WaitForExit(timeout ?? TimeSpan.FromMinutes(2)))
        {
            Process.Kill(entireProcessTree: true);
            Assert.Fail($"cogvideox did not finish in time; stdout:\n{StdOut}\nstderr:\n{StdErr}");
        }
        Process.WaitForExit();
        return Process.ExitCode;
    }

    /// <summary>Runs to the end and asserts exit code 0.</summary>
    public static CliProcess RunOk(string workingDirectory, params string[] args)
    {
        var p = new CliProcess(workingDirectory, args);
        int code = p.Wait();
        Assert.True(code == 0, $"cogvideox {string.Join(' ', args)} exited {code}\nstdout:\n{p.StdOut}\nstderr:\n{p.StdErr}");
        return p;
    }

    public void Dispose()
    {
        if (!Process.HasExited) Process.Kill(entireProcessTree: true);
        Process.Dispose();
    }
}

public static class Processes
{
    /// <summary>A pid that surely belongs to no running process: one that just exited (and was reaped).</summary>
    public static int DeadPid()
    {
        using var p = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        p.WaitForExit();
        return p.Id;
    }
}

public static class LabAssert
{
    /// <summary>The manifest's done/recovered lines, grouped by output.</summary>
    public static Dictionary<string, List<ManifestRecord>> Finished(string outputs, string spec = "small")
    {
        var (records, unreadable) = Manifest.For(outputs, spec).Read();
        Assert.True(unreadable <= 1, $"{unreadable} unreadable manifest lines (at most one torn line per kill is expected, and appends seal it)");
        return records.Where(r => r.Event is "done" or "recovered" or "linked").GroupBy(r => r.Output).ToDictionary(g => g.Key, g => g.ToList());
    }

    /// <summary>No temporary files or claims left anywhere under the outputs.</summary>
    public static void Clean(string outputs)
    {
        var leftovers = Directory.GetFiles(outputs, "*", SearchOption.AllDirectories)
            .Where(f => Path.GetFileName(f).Contains(".partial-") || Path.GetFileName(f).Contains(".claim.")).ToList();
        Assert.True(leftovers.Count == 0, "left over: " + string.Join(", ", leftovers));
    }
}
