using CogVideoX.Engine;

namespace CogVideoX.Tests.Engine;

public class BackendsTests
{
    [Fact]
    public void CpuIsBuiltIn()
    {
        Assert.Same(CpuBackend.Instance, Backends.Get(Device.Cpu));
        Assert.Same(CpuBackend.Instance, Backends.Get("cpu"));
        Assert.True(Backends.IsRegistered(DeviceKind.Cpu));
    }

    [Theory]
    [InlineData("tpu")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:x")]
    [InlineData("")]
    public void UnknownDevicesAreRefusedWithTheAllowedNames(string text)
    {
        var e = Assert.Throws<CogVideoXException>(() => Backends.Parse(text));
        Assert.Contains("cpu, cuda or cuda:N", e.Message);
    }

    [Theory]
    [InlineData("cuda", 0)]
    [InlineData("CUDA:3", 3)]
    [InlineData("gpu", 0)]
    public void CudaNamesParse(string text, int index) => Assert.Equal(Device.Cuda(index), Backends.Parse(text));
}
