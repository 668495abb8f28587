using CogVideoX.Engine;

namespace CogVideoX.Tests.Engine;

/// <summary>COGVIDEOX_KERNEL_DEFINES: the compile-time variant knob for A/B runs on the GPU machine.</summary>
public class KernelDefinesTests
{
    [Theory]
    [InlineData(null, new string[0])]
    [InlineData("  ", new string[0])]
    [InlineData("ATTN_EXP_EMU=2", new[] { "-DATTN_EXP_EMU=2" })]
    [InlineData("ATTN_EXP_EMU=2, ATTN_STAGES=8", new[] { "-DATTN_EXP_EMU=2", "-DATTN_STAGES=8" })]
    public void NameValuePairsBecomeDefineOptions(string? value, string[] expected) =>
        Assert.Equal(expected, KernelDefines.Options(value));

    [Theory]
    [InlineData("ATTN_EXP_EMU")]
    [InlineData("attn=2")]
    [InlineData("A=1 --use_fast_math")]
    [InlineData("A=$(rm -rf /)")]
    public void AnythingElseIsRefusedWithTheFormToUse(string value)
    {
        var e = Assert.Throws<CogVideoXException>(() => KernelDefines.Options(value));
        Assert.Contains("COGVIDEOX_KERNEL_DEFINES", e.Message);
        Assert.Contains("NAME=VALUE", e.Message);
        Assert.Contains("ATTN_EXP_EMU=2", e.Message);
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("ATTN_EXP_EMU=2", null)]
    [InlineData("SAGE90_NW=4 SAGE90_CONSUMER_REGS=120", 4)]
    [InlineData("SAGE90_NW=x", null)]
    public void TheHostReadsTheGeometryADefineSets(string? value, int? expected) =>
        // The 8-bit kernel's launch (Sage8Layout.HopperWarpgroups) follows SAGE90_NW when the knob sets it.
        Assert.Equal(expected, KernelDefines.Integer("SAGE90_NW", value));

    [Fact]
    public void TheIntegerReaderRefusesWhatTheCompilerWouldRefuse()
    {
        // One parser for the compiler's options and the host's reading: a malformed value fails both the same way.
        var e = Assert.Throws<CogVideoXException>(() => KernelDefines.Integer("SAGE90_KEYS", "SAGE90_KEYS=128 sage90_nw=3"));
        Assert.Contains("'sage90_nw=3'", e.Message);
        Assert.Equal(128, KernelDefines.Integer("SAGE90_KEYS", "SAGE90_NW=3;SAGE90_KEYS=128"));
        Assert.Null(KernelDefines.Integer("SAGE90_KEYS", "SAGE90_KEYS_X=128"));
    }
}
