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
