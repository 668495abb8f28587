using CogVideoX.Engine;
using CogVideoX.Engine.Cuda;

namespace CogVideoX.Tests.Cuda;

public partial class KernelConstantsTests
{
    [Fact]
    public void TheWgmmaEightBitAttentionLaunchConstantsMatchTheKernelSource()
    {
        var defines = Defines(KernelCompiler.Source("attention_sage8_sm90"));
        // SAGE90_KEYS, the online softmax's key step, defaults to 64; a source without the knob steps over 64 keys.
        bool keyStepKnob = defines.ContainsKey("SAGE90_KEYS");
        defines.TryAdd("SAGE90_KEYS", Sage8Attention.KeyTile.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(Sage8Attention.KeyTile, Evaluate("SAGE90_KEYS", defines));
        Assert.Equal(Sage8Layout.HopperWarpgroups, Evaluate("SAGE90_NW", defines));
        Assert.Equal(Sage8Layout.HopperStages, Evaluate("SAGE90_STAGES", defines));
        Assert.Equal(Sage8Layout.HopperThreads, Evaluate("SAGE90_THREADS", defines));
        Assert.Equal(Sage8Layout.HopperRows, Evaluate("SAGE90_ROWS", defines));
        Assert.Equal(Sage8Layout.TileBytes, Evaluate("SAGE90_TILE", defines));
        Assert.Equal(Sage8Layout.ValueStageBytes, Evaluate("SAGE90_VT_TILE", defines));
        Assert.Equal(Sage8Layout.KeyScaleBytes, Evaluate("SAGE90_KSCALE", defines));
        Assert.Equal((long)Sage8Layout.HopperSharedBytesFor(64), Evaluate("SAGE90_SMEM", defines));
        RegistersAndSharedMemoryFit(defines, 64);
        if (!keyStepKnob) return;
        // The 128-key variant (SAGE90_KEYS=128): its stages double, and its default is three consumer warpgroups.
        var wide = new Dictionary<string, string>(defines) { ["SAGE90_KEYS"] = "128" };
        Assert.Equal(Sage8Layout.DefaultHopperWarpgroupsFor(128), Evaluate("SAGE90_NW", wide));
        Assert.Equal((long)Sage8Layout.HopperSharedBytesFor(128), Evaluate("SAGE90_SMEM", wide));
        RegistersAndSharedMemoryFit(wide, 128);
    }

    private static void RegistersAndSharedMemoryFit(Dictionary<string, string> defines, int keyStep)
    {
        long warpgroups = Evaluate("SAGE90_NW", defines), threads = Evaluate("SAGE90_THREADS", defines);
        // The register split must fit the block's file: 65536 registers, the producer's 128 threads and the consumers'.
        long producer = Evaluate("SAGE90_PRODUCER_REGS", defines), consumer = Evaluate("SAGE90_CONSUMER_REGS", defines);
        Assert.True(128 * producer + 128 * warpgroups * consumer <= 65536, $"{keyStep} keys: setmaxnreg asks for more registers than the block holds");
        // setmaxnreg.inc draws only on what the producer's dec gave back, from the launch's share in steps of 8.
        long launch = 65536 / threads & ~7;
        Assert.True(warpgroups * (consumer - launch) <= launch - producer, $"{keyStep} keys: the consumers would wait for registers forever");
        Assert.Equal(0, producer % 8);
        Assert.Equal(0, consumer % 8);
        Assert.True(Sage8Layout.HopperSharedBytesFor(keyStep) <= 227 * 1024, $"{keyStep} keys: more shared memory than an sm_90 block may have");
    }
}
