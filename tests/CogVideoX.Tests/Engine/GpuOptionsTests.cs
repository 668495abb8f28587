using CogVideoX.Engine;
using CogVideoX.Engine.Cuda;

namespace CogVideoX.Tests.Engine;

/// <summary>The GPU choices as typed options: flags and settings parse to them, environment variables override them.</summary>
public class GpuOptionsTests
{
    private static Func<string, string?> Env(params (string Name, string Value)[] values) =>
        name => values.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void EveryNameParsesAndNullKeepsTheDefault()
    {
        Assert.Equal(GpuOptions.Default, GpuOptions.Parse(null, " ", ""));
        Assert.Equal(new GpuOptions { Attention = AttentionPreference.Cudnn, Cudnn = CudnnUse.Autotune, CudnnSdpa = CudnnSdpaForm.Composite },
            GpuOptions.Parse(" CUDNN ", "autotune", "Composite"));
        Assert.Equal([AttentionPreference.Own, AttentionPreference.Cudnn, AttentionPreference.Own], GpuOptions.AttentionNames.Select(n => GpuOptions.ParseAttention(n)));
        Assert.Equal([CudnnUse.On, CudnnUse.Off, CudnnUse.AttentionOnly, CudnnUse.ConvolutionOnly, CudnnUse.Autotune],
            GpuOptions.CudnnNames.Select(n => GpuOptions.ParseCudnn(n)));
        Assert.Equal([CudnnSdpaForm.Auto, CudnnSdpaForm.Unified, CudnnSdpaForm.Composite], GpuOptions.CudnnSdpaNames.Select(n => GpuOptions.ParseCudnnSdpa(n)));
        Assert.Equal((CudnnUse.On, CudnnUse.Off), (GpuOptions.ParseCudnn("1"), GpuOptions.ParseCudnn("0")));
        Assert.Equal("attention cudnn, cudnn conv, cudnn-sdpa auto", GpuOptions.Parse("cudnn", "conv", null).ToString());
    }

    [Theory]
    [InlineData("flash", null, null, "--attention='flash' is not understood: use own")]
    [InlineData(null, "maybe", null, "--cudnn='maybe' is not understood: use on, off, attention, conv or autotune (1 and 0 mean on and off)")]
    [InlineData(null, null, "fast", "--cudnn-sdpa='fast' is not understood: use auto, unified or composite")]
    public void AnUnknownValueNamesTheFlagAndTheChoices(string? attention, string? cudnn, string? sdpa, string message)
    {
        var e = Assert.Throws<CogVideoXException>(() => GpuOptions.Parse(attention, cudnn, sdpa));
        Assert.StartsWith(message, e.Message);
        Assert.Equal(2, e.ExitCode);
    }

    [Fact]
    public void EnvironmentVariablesOverrideTheOptions()
    {
        var given = GpuOptions.Parse("own", "off", "unified");
        Assert.Equal(given, given.WithEnvironment(Env()));
        Assert.Equal(given, given.WithEnvironment(Env(("COGVIDEOX_ATTENTION", " "))));
        var overridden = given.WithEnvironment(Env(("COGVIDEOX_ATTENTION", "cudnn"), ("COGVIDEOX_CUDNN", "1")));
        Assert.Equal(given with { Attention = AttentionPreference.Cudnn, Cudnn = CudnnUse.On }, overridden);
        var e = Assert.Throws<CogVideoXException>(() => given.WithEnvironment(Env(("COGVIDEOX_CUDNN_SDPA", "fast"))));
        Assert.Contains("COGVIDEOX_CUDNN_SDPA='fast'", e.Message);
    }

    [Fact]
    public void TheCudaOptionsFromFlagsEqualThoseFromTheSameEnvironmentVariables()
    {
        // The typed path (flags, settings) and the environment path build the same backend options for every value.
        foreach (var attention in GpuOptions.AttentionNames.Where(n => n != GpuOptions.Sage8Name))
            foreach (var cudnn in GpuOptions.CudnnNames)
                foreach (var sdpa in GpuOptions.CudnnSdpaNames)
                {
                    var fromFlags = CudaBackendOptions.From(GpuOptions.Parse(attention, cudnn, sdpa));
                    var fromEnvironment = CudaBackendOptions.FromEnvironment(Env(("COGVIDEOX_ATTENTION", attention), ("COGVIDEOX_CUDNN", cudnn), ("COGVIDEOX_CUDNN_SDPA", sdpa)));
                    Assert.Equal(fromEnvironment, fromFlags);
                }
        var cpuOnly = CudaBackendOptions.From(GpuOptions.Parse("cudnn", "attention", "composite"));
        Assert.Equal((false, true, false, CudnnAttentionGraphChoice.Composite),
            (cpuOnly.OwnAttentionFirst, cpuOnly.UseCudnnAttention, cpuOnly.UseCudnnConvolution, cpuOnly.CudnnAttentionGraph));
    }

    [Fact]
    public void Sage8IsANumericalModeChosenPerRunNotByTheEnvironment()
    {
        // sage8 leaves the kernel preference at own (T5 and exact steps run as before) and asks for 8-bit attention.
        Assert.Equal(GpuOptions.Default, GpuOptions.Parse(" Sage8 ", null, null));
        Assert.Equal(AttentionMode.Sage8, GpuOptions.ParseAttentionMode("SAGE8"));
        Assert.Equal([AttentionMode.Exact, AttentionMode.Exact, AttentionMode.Exact],
            new[] { null, "own", "cudnn" }.Select(n => GpuOptions.ParseAttentionMode(n)));
        var e = Assert.Throws<CogVideoXException>(() => GpuOptions.ParseAttentionMode("int8"));
        Assert.StartsWith("--attention='int8' is not understood: use own", e.Message);
        Assert.Contains("sage8", e.Message);
        e = Assert.Throws<CogVideoXException>(() => GpuOptions.Default.WithEnvironment(Env(("COGVIDEOX_ATTENTION", "sage8"))));
        Assert.Contains("chosen per run with --attention sage8", e.Message);
        Assert.Equal(2, e.ExitCode);
    }

    [Fact]
    public void TheCpuBackendIgnoresGpuOptions() =>
        Assert.Same(CpuBackend.Instance, Backends.Get(Device.Cpu, GpuOptions.Parse("cudnn", "off", null)));
}
