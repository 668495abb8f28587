using System.Diagnostics;
using CogVideoX.Engine.Cuda;

namespace CogVideoX.Tests.Cuda;

/// <summary>
/// Every kernel module compiled, without a GPU, for each target NVRTC would build it for: clang in CUDA mode over the
/// same text (scripts/kernels/clang-check.sh). A type error, a misspelt name or an argument struct whose
/// static_assert no longer matches KernelArgs.cs fails here instead of at a GPU session's first compile. Inline PTX
/// is not checked here (clang passes it through); NvrtcCompileTests has ptxas check it, and selftest on the GPU
/// machine checks what the kernels compute.
/// </summary>
public class KernelSourceCompileTests
{
    /// <summary>Each embedded module with the architectures it is built for: the portable modules at the oldest
    /// architecture they serve (sm_80) and at Hopper's; sm_XYa modules at their own; lazy modules at their minimum
    /// and at Hopper's; any other module (compiled at first use on any GPU) at Hopper's.</summary>
    public static TheoryData<string, string> Targets()
    {
        var data = new TheoryData<string, string>();
        foreach (var module in EmbeddedModules())
        {
            if (KernelCompiler.ArchitectureModules.TryGetValue(module, out var cc))
                data.Add(module, $"sm_{cc.Major}{cc.Minor}a");
            else if (KernelCompiler.LazyModules.TryGetValue(module, out var min))
            {
                data.Add(module, $"sm_{min.Major}{min.Minor}");
                if (min != (9, 0)) data.Add(module, "sm_90");
            }
            else if (KernelCompiler.Modules.Contains(module))
            {
                data.Add(module, "sm_80");
                data.Add(module, "sm_90");
            }
            else data.Add(module, "sm_90");
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void TheModuleCompilesForItsTarget(string module, string arch)
    {
        var (code, output) = Check(module, arch);
        Assert.True(code == 0, $"{module}.cu for {arch}:\n{output}");
    }

    [Fact]
    public void EveryModuleInTheSourceTreeIsEmbeddedAndSoChecked()
    {
        var onDisk = Directory.GetFiles(Path.Combine(Fixtures.RepoRoot, "src", "CogVideoX.Engine.Cuda", "Kernels"), "*.cu")
            .Select(f => Path.GetFileNameWithoutExtension(f)!).Order();
        Assert.Equal(onDisk, EmbeddedModules().Order());
    }

    [Fact]
    public void TheCheckRejectsAModuleThatDoesNotCompile()
    {
        var dir = Directory.CreateTempSubdirectory("clang-check-");
        try
        {
            // A common.cuh argument struct used with a field it does not have.
            var file = Path.Combine(dir.FullName, "broken.cu");
            File.WriteAllText(file, "__global__ void broken(IndexMap3 m) { m.missing = 1; }\n");
            var (code, output) = Check(file, "sm_90");
            Assert.NotEqual(0, code);
            Assert.Contains("no member named 'missing'", output, StringComparison.Ordinal);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    private static IEnumerable<string> EmbeddedModules() => KernelCompiler.Embedded();

    private static (int Code, string Output) Check(string module, string arch)
    {
        var clang = Environment.GetEnvironmentVariable("CLANG") is { Length: > 0 } c ? c : "/usr/bin/clang++-19";
        Assert.True(File.Exists(clang), $"{clang} is missing: install Debian's clang-19 package (`apt-get install clang-19`; .ci/run does) or set CLANG");
        var start = new ProcessStartInfo(Path.Combine(Fixtures.RepoRoot, "scripts", "kernels", "clang-check.sh"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(module);
        start.ArgumentList.Add(arch);
        start.Environment["CLANG"] = clang;
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"clang-check {module} {arch} did not finish in 2 minutes");
        }
        return (process.ExitCode, stdout + stderr.Result);
    }
}
