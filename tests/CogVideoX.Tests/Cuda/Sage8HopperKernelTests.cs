using System.Runtime.InteropServices;
using CogVideoX.Engine;
using CogVideoX.Engine.Cuda;
using CogVideoX.Engine.Testing;

namespace CogVideoX.Tests.Cuda;

/// <summary>
/// The wgmma 8-bit attention kernel's host side, checked without a GPU: its module is lazy and sm_90-only, its
/// parameter block and tensor maps match the buffers the pre-pass writes, the kernel choice and its override, and the
/// register-fragment bookkeeping that lets P feed P·V without a shuffle.
/// </summary>
public class Sage8HopperKernelTests
{
    [Fact]
    public void TheModuleIsLazyAndForSm90Only()
    {
        foreach (var (major, minor) in new[] { (8, 0), (8, 9), (9, 0), (10, 0), (12, 0) })
        {
            Assert.DoesNotContain("attention_sage8_sm90", KernelCompiler.ModulesFor(major, minor));
            Assert.Equal((major, minor) == (9, 0), KernelCompiler.LazyModuleRunsOn("attention_sage8_sm90", major, minor));
            Assert.Equal((major, minor) == (9, 0), KernelCompiler.IsAvailableFor("attention_sage8_sm90", major, minor));
        }
        Assert.True(KernelCompiler.IsOptional("attention_sage8_sm90"));
        Assert.Contains("attention_sm90", KernelCompiler.ModulesFor(9, 0));  // the F16 kernel stays eager
    }

    [Fact]
    public void TheKernelSourceDeclaresTheLaunchedFunctionsAndTheArgumentSize()
    {
        var source = KernelCompiler.Source("attention_sage8_sm90");
        Assert.Contains("sage8_attention_sm90_f16(const __grid_constant__ Sage90Args a)", source);
        Assert.Contains("sage8_attention_sm90_bf16(const __grid_constant__ Sage90Args a)", source);
        Assert.Equal(576, Marshal.SizeOf<Sage90Args>());
        Assert.Equal(256, (int)Marshal.OffsetOf<Sage90Args>(nameof(Sage90Args.Args)));
        Assert.Contains($"sizeof(Sage90Args) == {Marshal.SizeOf<Sage90Args>()}", source);
        Assert.Contains($"sizeof(Sage8Args) == {Marshal.SizeOf<Sage8Args>()}", source);
        Assert.Contains("wgmma.mma_async.sync.aligned.m64n64k32.s32.s8.s8", source);
        Assert.Contains("wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3", source);
    }

    [Theory]
    [InlineData(1, 64, 128)]
    [InlineData(64, 64, 128)]
    [InlineData(65, 128, 128)]
    [InlineData(192, 192, 256)]
    [InlineData(256, 256, 256)]
    [InlineData(257, 320, 384)]
    [InlineData(17776, 17792, 17792)]
    public void QueryRowsArePaddedToWholeBlocksOfEachKernel(int nq, int mmaSync, int wgmma)
    {
        // The wgmma kernel's default block: two consumer warpgroups of 64 rows (128-key steps, overlapped schedule).
        Assert.Equal(128, Sage8Layout.HopperRows);
        Assert.Equal(mmaSync, Sage8Layout.PaddedQueryRows(nq, Sage8Kernel.MmaSync));
        Assert.Equal(wgmma, Sage8Layout.PaddedQueryRows(nq, Sage8Kernel.Wgmma));
        // Both pre-pass grids divide them: quant_q takes 16 rows a block, the mma.sync kernel 64.
        Assert.Equal(0, wgmma % 64);
    }

    [Theory]
    [InlineData(1, 64, 128)]
    [InlineData(64, 64, 128)]
    [InlineData(65, 128, 128)]
    [InlineData(129, 192, 256)]
    [InlineData(517, 576, 640)]
    [InlineData(17700, 17728, 17792)]
    [InlineData(17776, 17792, 17792)]
    public void KeysArePaddedToWholeTilesOrToWholeStepsOfTheWgmmaKernel(int nk, int tiles, int steps128)
    {
        // mma.sync: 64-key tiles whatever the wgmma kernel's step; wgmma: whole softmax steps, which its stages load.
        foreach (var step in new[] { 64, 128 })
            Assert.Equal(tiles, Sage8Layout.PaddedKeys(nk, Sage8Kernel.MmaSync, step));
        Assert.Equal(tiles, Sage8Layout.PaddedKeys(nk, Sage8Kernel.Wgmma, 64));
        Assert.Equal(steps128, Sage8Layout.PaddedKeys(nk, Sage8Kernel.Wgmma, 128));
        // Without a step: the kernel's, 128 unless COGVIDEOX_KERNEL_DEFINES sets SAGE90_KEYS.
        Assert.Equal(tiles, Sage8Layout.PaddedKeys(nk, Sage8Kernel.MmaSync));
        Assert.Equal(Sage8Layout.PaddedKeys(nk, Sage8Kernel.Wgmma, Sage8Layout.HopperKeyStep), Sage8Layout.PaddedKeys(nk, Sage8Kernel.Wgmma));
    }

    [Theory]
    [InlineData(null, 128)]
    [InlineData(64, 64)]
    [InlineData(128, 128)]
    public void TheWgmmaKernelsSoftmaxStepIsSage90Keys(int? defined, int step) =>
        Assert.Equal(step, Sage8KernelChoice.WgmmaSoftmaxStepFrom(defined));

    [Theory]
    [InlineData(null, true)]
    [InlineData(0, false)]
    [InlineData(1, true)]
    public void TheWgmmaKernelsExponentialsAreLinearUnlessSage90ExpLinIsZero(int? defined, bool linear) =>
        Assert.Equal(linear, Sage8KernelChoice.WgmmaLinearExpFrom(defined));

    [Theory]
    [InlineData(-1)]
    [InlineData(2)]
    public void OtherExponentialFormsAreRefusedNamingTheKnob(int defined)
    {
        var e = Assert.Throws<CogVideoXException>(() => Sage8KernelChoice.WgmmaLinearExpFrom(defined));
        Assert.Contains("COGVIDEOX_KERNEL_DEFINES", e.Message);
        Assert.Contains($"SAGE90_EXP_LIN={defined}", e.Message);
        Assert.Contains("SAGE90_EXP_LIN=1", e.Message);
        Assert.Contains("SAGE90_EXP_LIN=0", e.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(32)]
    [InlineData(192)]
    [InlineData(256)]
    public void OtherSoftmaxStepsAreRefusedNamingTheKnob(int defined)
    {
        var e = Assert.Throws<CogVideoXException>(() => Sage8KernelChoice.WgmmaSoftmaxStepFrom(defined));
        Assert.Contains("COGVIDEOX_KERNEL_DEFINES", e.Message);
        Assert.Contains($"SAGE90_KEYS={defined}", e.Message);
        Assert.Contains("SAGE90_KEYS=128", e.Message);
        Assert.Contains("SAGE90_KEYS=64", e.Message);
    }

    [Fact]
    public void The128KeyStepTakesFewerWarpgroupsAndTwiceTheStageMemory()
    {
        // Serial: four consumer warpgroups at 64-key steps, three at 128; overlapped: three and two. The overlapped
        // schedule is the default only at 128 keys with the linear exponentials (SAGE90_SERIAL unset here).
        Assert.Equal(4, Sage8Layout.DefaultHopperWarpgroupsFor(64, serial: true));
        Assert.Equal(3, Sage8Layout.DefaultHopperWarpgroupsFor(128, serial: true));
        Assert.Equal(3, Sage8Layout.DefaultHopperWarpgroupsFor(64, serial: false));
        Assert.Equal(2, Sage8Layout.DefaultHopperWarpgroupsFor(128, serial: false));
        Assert.False(Sage8Layout.HopperSerialFor(128, linearExp: true));
        Assert.True(Sage8Layout.HopperSerialFor(128, linearExp: false));
        Assert.True(Sage8Layout.HopperSerialFor(64, linearExp: true));
        Assert.Equal(Sage8Layout.HopperSerialFor(Sage8Layout.HopperKeyStep, Sage8KernelChoice.WgmmaLinearExp), Sage8Layout.HopperSerial);
        // 8 stages of K (4096), Vᵀ (4096, and 512 of ones with the tensor-core row sums) and K scales (256) per 64 keys,
        // 16 barriers of 8 bytes, 1024 to align: 72,832 and 144,512 bytes with the ones.
        uint perTile = (uint)(4096 + Sage8Layout.ValueStageBytes + 256);
        Assert.Equal(8 * perTile + 128 + 1024, Sage8Layout.HopperSharedBytesFor(64));
        Assert.Equal(8 * 2 * perTile + 128 + 1024, Sage8Layout.HopperSharedBytesFor(128));
        Assert.Equal(Sage8Layout.HopperSharedBytesFor(Sage8Layout.HopperKeyStep), Sage8Layout.HopperSharedBytes);
        Assert.Equal(Sage8Layout.DefaultHopperWarpgroupsFor(Sage8Layout.HopperKeyStep, Sage8Layout.HopperSerial), Sage8Layout.DefaultHopperWarpgroups);
    }

    [Theory]
    [InlineData(1, 1, 64)]
    [InlineData(1, 1, 128)]
    [InlineData(6, 517, 64)]
    [InlineData(6, 517, 128)]
    [InlineData(60, 17776, 128)]
    public void TheTensorMapsAddressTheBytesThePrePassWrites(int batchHeads, int nk, int keyStep)
    {
        int nkPad = Sage8Layout.PaddedKeys(nk, Sage8Kernel.Wgmma, keyStep);
        var maps = new[] { Sage8Layout.KeyMap(batchHeads, nkPad), Sage8Layout.ValueMap(batchHeads, nkPad) };
        foreach (var map in maps)
        {
            // cuTensorMapEncodeTiled's rules for a 64-byte swizzle: strides multiples of 16, boxes of at most 256 per
            // dim, the inner box exactly the swizzle span; one box is one stage's tile.
            Assert.All(map.ByteStrides, s => Assert.Equal(0UL, s % 16));
            Assert.All(map.Box, b => Assert.InRange(b, 1u, 256u));
            Assert.Equal(64u, map.Box[0]);
            Assert.Equal(Sage8Layout.TileBytes, map.BoxBytes);
            Assert.Equal((ulong)batchHeads * 64 * (ulong)nkPad, map.Dims[0] * map.Dims[1] * map.Dims[2]);
            Assert.Equal(map.Dims[0], map.ByteStrides[0] / (map.ByteStrides[0] / map.Dims[0]));  // rows are dense
            Assert.Equal(map.ByteStrides[0] * map.Dims[1], map.ByteStrides[1]);
        }
        // Element (c0, c1, c2) lies at c0 + c1 s1 + c2 s2: K8 [bh][key][d] and Vᵀ8 [bh][channel][slot], as the pre-pass
        // stores them (attention_sage8.cu: k8[(bh nk_pad + t) 64 + c], vt8[(bh 64 + c) nk_pad + slot]).
        ulong At(Sage8Layout.TensorMapShape m, ulong c0, ulong c1, ulong c2) => c0 + c1 * m.ByteStrides[0] + c2 * m.ByteStrides[1];
        ulong bh = (ulong)batchHeads - 1, key = (ulong)nkPad - 1, d = 63;
        Assert.Equal((bh * (ulong)nkPad + key) * 64 + d, At(maps[0], d, key, bh));
        Assert.Equal((bh * 64 + d) * (ulong)nkPad + key, At(maps[1], key, d, bh));
        // The kernel asks for tile t at (0, 64 t, bh) and (64 t, 0, bh), a step's tiles together: the last tile ends at
        // the padded end, which ends a whole step.
        Assert.Equal(0, nkPad % keyStep);
        ulong last = (ulong)(nkPad / 64 - 1) * 64;
        Assert.Equal(maps[0].Dims[1], last + maps[0].Box[1]);
        Assert.Equal(maps[1].Dims[0], last + maps[1].Box[0]);
    }

    [Fact]
    public void TilesStartOnTheSwizzleRepeat()
    {
        // The 64-byte swizzle repeats every 8 rows of 64 bytes (512); the kernel aligns its base to 1024 and places the
        // stages' tiles back to back, so every tile starts on a 512-byte boundary (the descriptors' base offset is 0).
        Assert.Equal(0, Sage8Layout.TileBytes % 512);
        Assert.Equal(0, 2 * Sage8Layout.HopperStages * Sage8Layout.TileBytes % 16);
        Assert.Equal(0, Sage8Layout.KeyScaleBytes % 16);  // the bulk copy's size rule
    }

    [Theory]
    [InlineData(null, Sage8Kernel.Auto, 9, 0, Sage8Kernel.Wgmma)]
    [InlineData(null, Sage8Kernel.Auto, 8, 9, Sage8Kernel.MmaSync)]
    [InlineData(null, Sage8Kernel.Auto, 10, 0, Sage8Kernel.MmaSync)]
    [InlineData(null, Sage8Kernel.MmaSync, 9, 0, Sage8Kernel.MmaSync)]
    [InlineData(Sage8Kernel.MmaSync, Sage8Kernel.Wgmma, 9, 0, Sage8Kernel.MmaSync)]
    [InlineData(Sage8Kernel.Wgmma, Sage8Kernel.MmaSync, 9, 0, Sage8Kernel.Wgmma)]
    [InlineData(Sage8Kernel.Auto, Sage8Kernel.MmaSync, 9, 0, Sage8Kernel.Wgmma)]
    public void TheKernelIsTheForcedOneElseTheOptionElseTheFastestForTheDevice(Sage8Kernel? forced, Sage8Kernel option, int major, int minor, Sage8Kernel expected) =>
        Assert.Equal(expected, Sage8Layout.Resolve(forced, option, major, minor));

    [Fact]
    public void AskingForTheWgmmaKernelOffSm90SaysWhatToUse()
    {
        var e = Assert.Throws<CogVideoXException>(() => Sage8Layout.Resolve(null, Sage8Kernel.Wgmma, 8, 9));
        Assert.Contains("sm_90 only, this GPU is sm_89", e.Message);
        Assert.Contains("COGVIDEOX_SAGE8_KERNEL", e.Message);
        Assert.Equal(2, e.ExitCode);
    }

    [Fact]
    public void TheEnvironmentOverrideParsesAndReachesTheBackendOptions()
    {
        Assert.Equal([Sage8Kernel.Auto, Sage8Kernel.Wgmma, Sage8Kernel.MmaSync], GpuOptions.Sage8KernelNames.Select(n => GpuOptions.ParseSage8Kernel(n)));
        Assert.Equal(Sage8Kernel.MmaSync, GpuOptions.ParseSage8Kernel(" MMA.SYNC "));
        static string? Env(string name) => name == GpuOptions.Sage8KernelVariable ? "mma" : null;
        var options = GpuOptions.Default.WithEnvironment(Env);
        Assert.Equal(Sage8Kernel.MmaSync, options.Sage8Kernel);
        Assert.Equal(Sage8Kernel.MmaSync, CudaBackendOptions.FromEnvironment(Env).Sage8Kernel);
        Assert.Equal(Sage8Kernel.Auto, CudaBackendOptions.FromEnvironment(_ => null).Sage8Kernel);
        Assert.Equal("attention own, cudnn on, cudnn-sdpa auto, sage8-kernel mma", options.ToString());
        Assert.Equal("attention own, cudnn on, cudnn-sdpa auto", GpuOptions.Default.ToString());
        var e = Assert.Throws<CogVideoXException>(() => GpuOptions.Default.WithEnvironment(n => n == GpuOptions.Sage8KernelVariable ? "fast" : null));
        Assert.StartsWith("COGVIDEOX_SAGE8_KERNEL='fast' is not understood: use auto", e.Message);
        Assert.Equal(2, e.ExitCode);
    }

    [Fact]
    public void AForcedKernelLastsForItsScopeOnItsThread()
    {
        Assert.Null(Sage8KernelChoice.Forced);
        using (Sage8KernelChoice.Force(Sage8Kernel.MmaSync))
        {
            Assert.Equal(Sage8Kernel.MmaSync, Sage8KernelChoice.Forced);
            using (Sage8KernelChoice.Force(Sage8Kernel.Wgmma)) Assert.Equal(Sage8Kernel.Wgmma, Sage8KernelChoice.Forced);
            Assert.Equal(Sage8Kernel.MmaSync, Sage8KernelChoice.Forced);
            Sage8Kernel? elsewhere = Sage8Kernel.Auto;
            var thread = new Thread(() => elsewhere = Sage8KernelChoice.Forced);
            thread.Start();
            thread.Join();
            Assert.Null(elsewhere);
        }
        Assert.Null(Sage8KernelChoice.Forced);
    }

    [Fact]
    public void TheCatalogueChecksEachKernelInEachDTypeWithPartialTilesAndTheTransformersLayout()
    {
        var cases = OpCatalogue.All().Where(c => c.Op == "sage8_attention" && !c.Decomposed).ToList();
        foreach (var kernel in new[] { "wgmma", "mma.sync" })
            foreach (var dt in new[] { DType.F16, DType.BF16 })
            {
                var mine = cases.Where(c => c.DType == dt && c.Sizes.StartsWith($"{kernel}: ", StringComparison.Ordinal)).ToList();
                Assert.Contains(mine, c => c.Sizes.Contains("views of [2,70,2,64]", StringComparison.Ordinal));
                Assert.Contains(mine, c => c.Sizes.Contains("kv [67]", StringComparison.Ordinal));      // a partial key tile
                Assert.Contains(mine, c => c.Sizes.Contains("kv [1100]", StringComparison.Ordinal));    // 18 tiles: the 8-stage ring wraps twice
                Assert.Contains(mine, c => c.Sizes.Contains(",300,64]", StringComparison.Ordinal));      // two blocks of 256 rows, the second partial
                Assert.Contains(mine, c => c.Sizes.Contains(" scale 3", StringComparison.Ordinal));      // the clamps' bound fails, no clamp
                Assert.Contains(mine, c => c.Sizes.Contains(" scale 8", StringComparison.Ordinal));      // rows over 127 octaves: the clamps
                Assert.All(mine, c => Assert.True(c.Sizes.Length <= 52, $"selftest cuts sizes at 52 characters: {c.Sizes}"));
            }
    }

    /// <summary>
    /// The bookkeeping that lets P go from the scores' accumulator to P·V's A operand in registers, replayed on the host:
    /// for every lane and accumulator element, the byte pack_p8 puts it in must sit in the A-fragment slot (PTX ISA,
    /// wgmma m64nNk32 register fragment of A: a0/a1 rows g/g+8 at k = 4t..4t+3, a2/a3 at k = 16+4t..) whose key, under
    /// the pre-pass's Vᵀ permutation (attention_sage8.cu's slot_key), is the key of that element's column.
    /// </summary>
    [Fact]
    public void PackedProbabilitiesLandInTheSlotsOfTheirKeys()
    {
        static int SlotKey(int slot)  // attention_sage8.cu: slot_key
        {
            int half = slot >> 4, w = slot & 15, t = w >> 2, i = w & 3;
            return half * 16 + 2 * t + (i & 1) + 8 * (i >> 1);
        }
        var seen = new HashSet<(int Row, int Key)>();
        for (int lane = 0; lane < 32; lane++)
        {
            int g = lane >> 2, t = lane & 3;
            // pack_p8: register 4u + 2h (row g) and 4u + 2h + 1 (row g + 8), from chunks c = 4u + 2h (low half) and c + 1.
            for (int u = 0; u < 2; u++)
                for (int h = 0; h < 2; h++)
                    for (int r = 0; r < 2; r++)
                        for (int bytePos = 0; bytePos < 4; bytePos++)
                        {
                            int reg = 2 * h + r;                         // a0..a3 within k-step u
                            int chunk = 4 * u + 2 * h + (bytePos >> 1);  // low 16 bits: chunk c, high: c + 1
                            int element = 4 * chunk + 2 * r + (bytePos & 1);
                            // The accumulator: element i is row g + 8 ((i >> 1) & 1), column 8 (i >> 2) + 2t + (i & 1).
                            int row = g + 8 * ((element >> 1) & 1), column = 8 * (element >> 2) + 2 * t + (element & 1);
                            // The A fragment: register reg holds row g + 8 (reg & 1), k = 16 (reg >> 1) + 4t + bytePos.
                            int aRow = g + 8 * (reg & 1), slot = 16 * (reg >> 1) + 4 * t + bytePos;
                            Assert.Equal(aRow, row);
                            Assert.Equal(column, 32 * u + SlotKey(slot));
                            Assert.True(seen.Add((row, column)));
                        }
        }
        Assert.Equal(16 * 64, seen.Count);  // every (row, key) of the warp's 16 x 64 tile exactly once
    }
}
