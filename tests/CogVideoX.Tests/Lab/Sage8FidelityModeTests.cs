using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Lab.Metrics;

namespace CogVideoX.Tests.Lab;

/// <summary>The fidelity command's names for 8-bit attention, alone and with a step cache.</summary>
public class Sage8FidelityModeTests
{
    [Theory]
    [InlineData("sage8", StepCacheMode.None, null, 0, "sage8")]
    [InlineData("sage8::2", StepCacheMode.None, null, 2, "sage8, exact 2")]
    [InlineData("sage8+teacache:0.1", StepCacheMode.TeaCache, 0.1, 0, "teacache 0.1 + sage8")]
    [InlineData("fbcache+sage8:0.6:2", StepCacheMode.FirstBlockCache, 0.6, 2, "fbcache 0.6 + sage8, exact 2")]
    public void ModesParseAndAreLabelled(string text, StepCacheMode cache, double? threshold, int exact, string label)
    {
        var mode = FidelityMode.Parse(text);
        Assert.Equal(new FidelityMode(cache, threshold, exact, AttentionMode.Sage8), mode);
        Assert.Equal(label, mode.Label);
        Assert.Equal("teacache 0.1", FidelityMode.Parse("teacache:0.1").Label);
    }

    [Fact]
    public void AnUnknownNameInACombinationIsRefused()
    {
        var e = Assert.Throws<CogVideoXException>(() => FidelityMode.Parse("sage8+int8"));
        // The names a mode is made of, not only the step caches (sage8 and fp8 are modes too).
        Assert.Contains("mode \"sage8+int8\": unknown name 'int8'; MODE is teacache, fbcache, sage8 or fp8", e.Message);
        Assert.Equal(2, e.ExitCode);
        e = Assert.Throws<CogVideoXException>(() => FidelityMode.Parse("foo:0.1+fp8"));
        Assert.Contains("mode \"foo:0.1+fp8\": unknown name 'foo'", e.Message);
    }

    [Fact]
    public void TheExactStepsOfEightBitAttentionCountFromZero()
    {
        var request = new GenerationRequest { Prompt = "p", Steps = 6, Attention = AttentionMode.Sage8 };
        Assert.All(Enumerable.Range(0, 6), i => Assert.Equal(AttentionMode.Sage8, StepCaching.AttentionAt(request, i, 6)));
        var kept = request with { ExactSteps = 2 };
        Assert.Equal([AttentionMode.Exact, AttentionMode.Exact, AttentionMode.Sage8, AttentionMode.Sage8, AttentionMode.Exact, AttentionMode.Exact],
            Enumerable.Range(0, 6).Select(i => StepCaching.AttentionAt(kept, i, 6)));
        Assert.Equal(AttentionMode.Exact, StepCaching.AttentionAt(new GenerationRequest { Prompt = "p", Steps = 6 }, 3, 6));
    }
}
