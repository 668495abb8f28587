using CogVideoX.Engine;
using CogVideoX.Engine.Cuda;

namespace CogVideoX.Tests.Cuda;

/// <summary>
/// Where no NVIDIA driver is installed (CI, the development machines), opening the CUDA backend must fail with a
/// message that names the library and how to fix it — never a DllNotFoundException or a crash.
/// </summary>
public class CudaAvailabilityTests
{
    private static bool DriverPresent => CudaLibraries.IsAvailable(CudaLibrary.Driver);

    [Fact]
    public void MissingDriverIsAnActionableError()
    {
        if (DriverPresent) return;  // a GPU machine: covered by `cogvideox selftest` there
        var e = Assert.Throws<CogVideoXException>(() => CudaBackend.Create(0));
        Assert.Contains("libcuda.so.1", e.Message);
        Assert.Contains("To fix", e.Message);
        Assert.Contains("NVIDIA driver", e.Message);
    }

    [Fact]
    public void ProbeListsWhereItLooked()
    {
        var probe = CudaLibraries.Probe(CudaLibrary.CublasLt);
        if (probe.Found)
        {
            Assert.True(File.Exists(probe.Path!) || !probe.Path!.Contains('/'), probe.Path);
            return;
        }
        Assert.Null(probe.Version);
        Assert.Contains("the system library path", probe.Tried);
        Assert.Contains("libcublas", CudaLibraries.FixHint(CudaLibrary.CublasLt));
    }

    [Fact]
    public void CudaDevicesResolveThroughTheRegistryOrExplainWhyNot()
    {
        CudaBackend.Register();
        if (DriverPresent) return;
        var e = Assert.Throws<CogVideoXException>(() => Backends.Get(Device.Cuda(0)));
        Assert.Contains("libcuda", e.Message);
    }
}

/// <summary>Which kernel modules a GPU gets: the architecture-specific ones only on their own compute capability.</summary>
public class KernelModuleSelectionTests
{
    [Fact]
    public void TheWgmmaAttentionModuleIsBuiltForSm90Only()
    {
        // sm_90a code runs on compute capability 9.0 alone (not 8.x, not 10.0), so no other GPU compiles or loads it.
        Assert.Contains("attention_sm90", KernelCompiler.ModulesFor(9, 0));
        Assert.DoesNotContain("attention_sm90", KernelCompiler.ModulesFor(8, 9));
        Assert.DoesNotContain("attention_sm90", KernelCompiler.ModulesFor(10, 0));
        Assert.True(KernelCompiler.IsAvailableFor("attention_sm90", 9, 0));
        Assert.False(KernelCompiler.IsAvailableFor("attention_sm90", 8, 0));
        foreach (var m in KernelCompiler.Modules)
        {
            Assert.True(KernelCompiler.IsAvailableFor(m, 7, 5));
            Assert.Contains(m, KernelCompiler.ModulesFor(7, 5));
        }
        Assert.Contains("flash_attention_sm90_f16_d64", KernelCompiler.Source("attention_sm90"));
        Assert.True(KernelCompiler.IsOptional("attention_sm90"));
        Assert.DoesNotContain(KernelCompiler.Modules, KernelCompiler.IsOptional);
    }

    [Fact]
    public void AFailedOptionalModuleIsSummarisedByItsFirstCompilerError()
    {
        // The shape of the message NVRTC's failure produced on the H200 (doctor prints this one line).
        var message = "NVRTC: nvrtcCompileProgram failed with NVRTC_ERROR_COMPILATION (6): attention_sm90.cu with --gpu-architecture=sm_90a --std=c++17:\n"
            + "attention_sm90.cu(281): error: A function without execution space annotations is considered a host function\n"
            + "1 error detected in the compilation of \"attention_sm90.cu\".";
        Assert.Equal("attention_sm90.cu(281): error: A function without execution space annotations is considered a host function",
            KernelCompiler.FailureSummary(message));
        Assert.Equal("no such library", KernelCompiler.FailureSummary("no such library"));
        var failed = KernelModuleInfo.Failed("attention_sm90", "reason");
        Assert.Equal("reason", failed.Unavailable);
    }
}

/// <summary>The environment switches for comparisons on a device: each value documented works, any other is a clear error.</summary>
public class CudaBackendOptionsTests
{
    private static Func<string, string?> Env(params (string Name, string Value)[] values) =>
        name => values.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void OwnAttentionGoesFirstUnlessCudnnIsAskedFor()
    {
        Assert.True(CudaBackendOptions.FromEnvironment(Env()).OwnAttentionFirst);
        Assert.True(CudaBackendOptions.FromEnvironment(Env(("COGVIDEOX_ATTENTION", "own"))).OwnAttentionFirst);
        var cudnn = CudaBackendOptions.FromEnvironment(Env(("COGVIDEOX_ATTENTION", " cuDNN ")));
        Assert.False(cudnn.OwnAttentionFirst);
        Assert.True(cudnn.UseCudnnAttention);
    }

    [Theory]
    [InlineData("COGVIDEOX_ATTENTION", "flash", "use own")]
    [InlineData("COGVIDEOX_CUDNN", "maybe", "use on, off, attention, conv or autotune (1 and 0 mean on and off)")]
    [InlineData("COGVIDEOX_CUDNN_SDPA", "fast", "use auto, unified or composite")]
    public void AnUnknownValueNamesTheVariableAndTheChoices(string name, string value, string hint)
    {
        var e = Assert.Throws<CogVideoXException>(() => CudaBackendOptions.FromEnvironment(Env((name, value))));
        Assert.Contains($"{name}='{value}'", e.Message);
        Assert.Contains(hint, e.Message);
    }

    [Fact]
    public void CudnnSwitchesCombine()
    {
        var off = CudaBackendOptions.FromEnvironment(Env(("COGVIDEOX_CUDNN", "0")));
        Assert.False(off.UseCudnnAttention);
        Assert.False(off.UseCudnnConvolution);
        var conv = CudaBackendOptions.FromEnvironment(Env(("COGVIDEOX_CUDNN", "conv"), ("COGVIDEOX_CUDNN_SDPA", "unified")));
        Assert.False(conv.UseCudnnAttention);
        Assert.True(conv.UseCudnnConvolution);
        Assert.Equal(CudnnAttentionGraphChoice.Unified, conv.CudnnAttentionGraph);
    }
}
