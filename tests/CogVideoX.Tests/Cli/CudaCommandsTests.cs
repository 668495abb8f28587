using CogVideoX.Engine.Cuda;
using static CogVideoX.Tests.CliRun;

namespace CogVideoX.Tests.Cli;

/// <summary>The doctor and selftest commands where there is no GPU (CI): clear reports and errors, no traces.</summary>
public class CudaCommandsTests
{
    [Fact]
    public void DoctorReportsEachLibrary()
    {
        var (code, o, _) = Run("doctor");
        Assert.Contains("CUDA driver (libcuda.so.1)", o);
        Assert.Contains("NVRTC", o);
        Assert.Contains("cuBLASLt", o);
        Assert.Contains("cuDNN", o);
        if (!CudaLibraries.IsAvailable(CudaLibrary.Driver))
        {
            Assert.Equal(1, code);
            Assert.Contains("fix: install the NVIDIA driver", o);
            Assert.Contains("the CPU backend still can", o);
        }
    }

    [Fact]
    public void DoctorRejectsABadArchitectureName()
    {
        var (code, _, err) = Run("doctor", "--arch", "hopper");
        Assert.Equal(1, code);
        Assert.Contains("--arch 'hopper' is not an architecture name", err);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void DoctorResourcesNeedAnArchitecture()
    {
        var (code, _, err) = Run("doctor", "--resources");
        Assert.Equal(1, code);
        Assert.Contains("--resources reports what ptxas compiled for --arch", err);
        Assert.Contains("doctor --arch sm_90 --resources", err);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public void DoctorArchWithoutNvrtcSaysWhereToGetIt()
    {
        if (CudaLibraries.IsAvailable(CudaLibrary.Nvrtc) || CudaLibraries.IsAvailable(CudaLibrary.Driver)) return;
        var (code, o, _) = Run("doctor", "--arch", "sm_90a");
        Assert.Equal(1, code);
        Assert.Contains("problems: NVRTC is missing, so kernels cannot be compiled; without a CUDA toolkit, scripts/kernels/fetch-nvrtc.sh", o);
        Assert.Contains("LD_LIBRARY_PATH=.tools/nvrtc cogvideox doctor --arch sm_90", o);
        // The compile check's verdict, not the backend's: the missing driver is not what failed.
        Assert.DoesNotContain("the CUDA backend cannot run here", o);
    }

    [Theory]
    [InlineData("sm_9")]
    [InlineData("sm_")]
    [InlineData("90")]
    [InlineData("sm_09")]
    public void DoctorNamesTheArchitecturesItTakes(string arch)
    {
        var (code, _, err) = Run("doctor", "--arch", arch);
        Assert.Equal(1, code);
        Assert.Contains($"--arch '{arch}' is not an architecture name: use sm_XY, e.g. sm_90", err);
    }

    [Fact]
    public void SelfTestNeedsADeviceOtherThanTheCpu()
    {
        var (code, _, err) = Run("selftest", "--device", "cpu");
        Assert.Equal(1, code);
        Assert.Contains("use --device cuda or cuda:N", err);
    }

    [Fact]
    public void SelfTestRefusesUnknownDevices()
    {
        var (code, _, err) = Run("selftest", "--device", "tpu:0");
        Assert.Equal(1, code);
        Assert.Contains("unknown device 'tpu:0'", err);
    }

    [Fact]
    public void SelfTestWithoutADriverExplainsWhatToInstall()
    {
        if (CudaLibraries.IsAvailable(CudaLibrary.Driver)) return;
        var (code, _, err) = Run("selftest");
        Assert.Equal(1, code);
        Assert.Contains("libcuda.so.1", err);
        Assert.DoesNotContain("   at ", err);
    }
}
