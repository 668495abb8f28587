using CogVideoX.Engine;
using CogVideoX.Engine.Cuda;
using CogVideoX.Engine.Testing;

namespace CogVideoX.Tests.Cuda;

/// <summary>
/// The 8-bit attention's two-launch pre-pass (attention_sage8.cu: sage8_scan_q, sage8_quant_kv), checked without a GPU:
/// its grids, the switch to the legacy form and the catalogue cases that compare the two bit for bit on a GPU.
/// </summary>
public class Sage8PrepassTests
{
    [Theory]
    [InlineData(17776, 17920, 60, 35 + 280)]  // 2b/5b at 49 frames, the wgmma kernel's row padding (256-row blocks)
    [InlineData(1, 64, 1, 2)]
    [InlineData(512, 192, 3, 1 + 3)]
    [InlineData(513, 192, 3, 2 + 3)]
    public void TheScanAndQueryGridHasEveryChunkAndRowBlockOfEachHead(int nk, int nqPad, int bh, int x)
    {
        Assert.Equal(((uint)x, (uint)bh), Sage8Layout.ScanQueryGrid(nk, nqPad, bh));
    }

    [Fact]
    public void AScanAndQueryGridOf2To31BlocksIsRefused()
    {
        var e = Assert.Throws<NotSupportedException>(() => Sage8Layout.ScanQueryGrid(1 << 30, 1 << 30, 65535));
        Assert.Contains("2^31", e.Message);
        Assert.Contains("split the batch", e.Message);
    }

    [Theory]
    [InlineData(17792, 60, 8, 35)]
    [InlineData(64, 1, 8, 1)]
    [InlineData(1152, 2, 8, 3)]
    [InlineData(1152, 2, 1, 18)]
    public void TheKeyValueGridCoversEveryTile(int nkPad, int bh, int tiles, int x)
    {
        Assert.Equal(((uint)x, (uint)bh), Sage8Layout.KeyValueGrid(nkPad, bh, tiles));
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("SAGE_PRE_LEGACY=1", true)]
    [InlineData("SAGE_PRE_LEGACY=0 SAGE_KV_TILES=4", false)]
    public void TheLegacyPrepassKnobIsReadFromTheKernelDefines(string? value, bool legacy)
    {
        Assert.Equal(legacy, KernelDefines.Integer("SAGE_PRE_LEGACY", value) == 1);
        Assert.Equal(value?.Contains("SAGE_KV_TILES=4", StringComparison.Ordinal) == true ? 4 : null, KernelDefines.Integer("SAGE_KV_TILES", value));
    }

    [Fact]
    public void TheLegacyPrepassScopeNestsAndStaysOnItsThread()
    {
        Assert.False(Sage8KernelChoice.LegacyPrepass);
        using (Sage8KernelChoice.ForceLegacyPrepass())
        {
            using (Sage8KernelChoice.ForceLegacyPrepass()) Assert.True(Sage8KernelChoice.LegacyPrepass);
            Assert.True(Sage8KernelChoice.LegacyPrepass);
            bool elsewhere = true;
            var thread = new Thread(() => elsewhere = Sage8KernelChoice.LegacyPrepass);
            thread.Start();
            thread.Join();
            Assert.False(elsewhere);
        }
        Assert.False(Sage8KernelChoice.LegacyPrepass);
    }

    [Fact]
    public void TheCatalogueComparesBothPrepassFormsForEachKernelAndDType()
    {
        var cases = OpCatalogue.All().Where(c => c.Op == "sage8_attention_prepass" && !c.Decomposed).ToList();
        foreach (var kernel in new[] { "wgmma", "mma.sync" })
            foreach (var dt in new[] { DType.F16, DType.BF16 })
            {
                var mine = cases.Where(c => c.DType == dt && c.Sizes.StartsWith($"{kernel}: ", StringComparison.Ordinal)).ToList();
                Assert.Contains(mine, c => c.Sizes.Contains("edge groups", StringComparison.Ordinal));
                Assert.Contains(mine, c => c.Sizes.Contains("views of [2,70,2,64]", StringComparison.Ordinal));
                Assert.Contains(mine, c => c.Sizes.Contains("unaligned rows", StringComparison.Ordinal));
                Assert.Contains(mine, c => c.Sizes.Contains("kv [1100]", StringComparison.Ordinal));  // 3 scan chunks, 3 K/V blocks
                Assert.All(mine, c => Assert.Equal(0, c.Tolerance));
                Assert.All(mine, c => Assert.True(c.Sizes.Length <= 52, $"selftest cuts sizes at 52 characters: {c.Sizes}"));
            }
        // `selftest --filter sage8_attention` runs them with the attention's own cases.
        Assert.All(cases, c => Assert.Contains("sage8_attention", c.Op, StringComparison.Ordinal));
    }
}
