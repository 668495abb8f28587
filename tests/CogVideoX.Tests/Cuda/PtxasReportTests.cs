using CogVideoX.Engine.Cuda;

namespace CogVideoX.Tests.Cuda;

/// <summary>Reading ptxas's verbose report, in the form NVRTC 12.4 writes it into the program log.</summary>
public class PtxasReportTests
{
    private const string Log = """
        ptxas info    : 0 bytes gmem
        ptxas info    : Function properties for helper_noinline
        ptxas         .     24 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads
        ptxas info    : Compiling entry function 'sage8_quant_v_f16' for 'sm_89'
        ptxas info    : Function properties for sage8_quant_v_f16
        ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
        ptxas info    : Used 24 registers, 4352 bytes smem, 648 bytes cmem[0]
        ptxas info    : Compiling entry function 'ln_rows_f16_v16' for 'sm_90'
        ptxas info    : Function properties for ln_rows_f16_v16
        ptxas         .     8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
        ptxas info    : Used 128 registers
        ptxas info    : (C7515) Potential Performance Loss: wgmma.mma_async instructions are serialized due to the presence of Extern calls in the function 'k'.
        ptxas warning : Registers are spilled to local memory in function 'k'
        """;

    [Fact]
    public void EachEntryFunctionGetsItsOwnFrameRegistersAndSharedMemory()
    {
        var report = PtxasReport.Parse(Log);
        Assert.Equal(
            [
                new KernelResources("sage8_quant_v_f16", 24, 0, 0, 0, 4352),
                new KernelResources("ln_rows_f16_v16", 128, 4, 4, 8, 0),
            ],
            report.Kernels);
        Assert.False(report.Kernels[0].Spills);
        Assert.True(report.Kernels[1].Spills);
    }

    [Fact]
    public void PerformanceLossesAndWarningsAreKeptWordForWord()
    {
        var report = PtxasReport.Parse(Log);
        Assert.Equal(2, report.Warnings.Count);
        Assert.StartsWith("ptxas info    : (C7515) Potential Performance Loss: wgmma.mma_async", report.Warnings[0]);
        Assert.StartsWith("ptxas warning : Registers are spilled", report.Warnings[1]);
    }

    [Fact]
    public void AnEmptyLogHasNoKernels()
    {
        var report = PtxasReport.Parse("");
        Assert.Empty(report.Kernels);
        Assert.Empty(report.Warnings);
    }
}
