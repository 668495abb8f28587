using CogVideoX.Engine;
using CogVideoX.Engine.Cuda;

namespace CogVideoX.Tests.Cuda;

public partial class KernelConstantsTests
{
    [Fact]
    public void TheWgmmaEightBitAttentionLaunchConstantsMatchTheKernelSource()
    {
        var defines = Defines(KernelCompiler.Source("attention_sage8_sm90"));
        // SAGE90_KEYS, the online softmax's key step: the source's default is the host's (COGVIDEOX_KERNEL_DEFINES is
        // unset here, so the host's layout is the default build's).
        int step = Sage8KernelChoice.DefaultWgmmaSoftmaxStep;
        Assert.Equal(step, Sage8Layout.HopperKeyStep);
        Assert.Equal(step, Evaluate("SAGE90_KEYS", defines));
        Assert.Equal(Sage8KernelChoice.DefaultWgmmaLinearExp ? 1 : 0, Evaluate("SAGE90_EXP_LIN", defines));
        Assert.Equal(Sage8Layout.HopperSerial ? 1 : 0, Evaluate("SAGE90_SERIAL", defines));
        Assert.Equal(Sage8Layout.HopperWarpgroups, Evaluate("SAGE90_NW", defines));
        Assert.Equal(Sage8Layout.HopperStages, Evaluate("SAGE90_STAGES", defines));
        Assert.Equal(Sage8Layout.HopperThreads, Evaluate("SAGE90_THREADS", defines));
        Assert.Equal(Sage8Layout.HopperRows, Evaluate("SAGE90_ROWS", defines));
        Assert.Equal(Sage8Layout.TileBytes, Evaluate("SAGE90_TILE", defines));
        Assert.Equal(Sage8Layout.ValueStageBytes, Evaluate("SAGE90_VT_TILE", defines));
        Assert.Equal(Sage8Layout.KeyScaleBytes, Evaluate("SAGE90_KSCALE", defines));
        Assert.Equal((long)Sage8Layout.HopperSharedBytes, Evaluate("SAGE90_SMEM", defines));
        RegistersAndSharedMemoryFit(defines, step);
        // Both steps and both exponential forms: each with its default schedule, warpgroups and shared memory (the
        // host's layout for SAGE90_KEYS=64 or 128 and SAGE90_EXP_LIN=0 or 1).
        foreach (int keys in new[] { 64, 128 })
            foreach (bool linear in new[] { false, true })
            {
                var variant = new Dictionary<string, string>(defines)
                {
                    ["SAGE90_KEYS"] = keys.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["SAGE90_EXP_LIN"] = linear ? "1" : "0",
                };
                bool serial = Sage8Layout.HopperSerialFor(keys, linear);
                Assert.Equal(serial ? 1 : 0, Evaluate("SAGE90_SERIAL", variant));
                Assert.Equal(Sage8Layout.DefaultHopperWarpgroupsFor(keys, serial), Evaluate("SAGE90_NW", variant));
                Assert.Equal((long)Sage8Layout.HopperSharedBytesFor(keys), Evaluate("SAGE90_SMEM", variant));
                RegistersAndSharedMemoryFit(variant, keys);
            }
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
