using CogVideoX.Engine.Cuda;

namespace CogVideoX.Tests.Cuda;

public partial class KernelConstantsTests
{
    [Fact]
    public void TheWgmmaEightBitAttentionLaunchConstantsMatchTheKernelSource()
    {
        var defines = Defines(KernelCompiler.Source("attention_sage8_sm90"));
        Assert.Equal(Sage8Layout.HopperWarpgroups, Evaluate("SAGE90_NW", defines));
        Assert.Equal(Sage8Layout.HopperStages, Evaluate("SAGE90_STAGES", defines));
        Assert.Equal(Sage8Layout.HopperThreads, Evaluate("SAGE90_THREADS", defines));
        Assert.Equal(Sage8Layout.HopperRows, Evaluate("SAGE90_ROWS", defines));
        Assert.Equal(Sage8Layout.TileBytes, Evaluate("SAGE90_TILE", defines));
        Assert.Equal(Sage8Layout.ValueStageBytes, Evaluate("SAGE90_VT_TILE", defines));
        Assert.Equal(Sage8Layout.KeyScaleBytes, Evaluate("SAGE90_KSCALE", defines));
        Assert.Equal((long)Sage8Layout.HopperSharedBytes, Evaluate("SAGE90_SMEM", defines));
        // The register split must fit the block's file: 65536 registers, the producer's 128 threads and the consumers'.
        long producer = Evaluate("SAGE90_PRODUCER_REGS", defines), consumer = Evaluate("SAGE90_CONSUMER_REGS", defines);
        Assert.True(128 * producer + 128 * Sage8Layout.HopperWarpgroups * consumer <= 65536, "setmaxnreg asks for more registers than the block holds");
        // setmaxnreg.inc draws only on what the producer's dec gave back, from the launch's share in steps of 8.
        int launch = 65536 / Sage8Layout.HopperThreads & ~7;
        Assert.True(Sage8Layout.HopperWarpgroups * (consumer - launch) <= launch - producer, "the consumers would wait for registers forever");
        Assert.Equal(0, producer % 8);
        Assert.Equal(0, consumer % 8);
        Assert.True(Sage8Layout.HopperSharedBytes <= 227 * 1024, "more shared memory than an sm_90 block may have");
    }
}
