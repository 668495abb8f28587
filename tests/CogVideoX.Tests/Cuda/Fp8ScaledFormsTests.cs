using CogVideoX.Engine;
using CogVideoX.Engine.Cuda;

namespace CogVideoX.Tests.Cuda;

/// <summary>
/// The host-side order of the scaled FP8 GEMM's forms (cuBLASLt's fused epilogue first, then DEFAULT with the
/// fp8_bias_act kernel) and the notes that tell the next GPU log which form cuBLASLt accepted or refused.
/// </summary>
public class Fp8ScaledFormsTests
{
    [Theory]
    [InlineData(true, Activation.None, new[] { CublasLt.EpilogueBias, CublasLt.EpilogueDefault })]
    [InlineData(true, Activation.GeluTanh, new[] { CublasLt.EpilogueGeluBias, CublasLt.EpilogueDefault })]
    [InlineData(false, Activation.GeluTanh, new[] { CublasLt.EpilogueGelu, CublasLt.EpilogueDefault })]
    [InlineData(false, Activation.None, new[] { CublasLt.EpilogueDefault })]
    [InlineData(true, Activation.Gelu, new[] { CublasLt.EpilogueDefault })]
    [InlineData(false, Activation.Silu, new[] { CublasLt.EpilogueDefault })]
    public void FusedEpilogueFirstThenDefault(bool hasBias, Activation activation, int[] expected) =>
        Assert.Equal(expected, Fp8ScaledForms.Epilogues(hasBias, activation));

    [Theory]
    [InlineData(CublasLt.EpilogueDefault, true, Activation.None, true)]
    [InlineData(CublasLt.EpilogueDefault, false, Activation.GeluTanh, true)]
    [InlineData(CublasLt.EpilogueDefault, false, Activation.None, false)]
    [InlineData(CublasLt.EpilogueBias, true, Activation.None, false)]
    [InlineData(CublasLt.EpilogueGeluBias, true, Activation.GeluTanh, false)]
    public void TheBiasActivationKernelRunsOnlyAfterADefaultEpilogueWithWorkLeft(int epilogue, bool hasBias, Activation activation, bool expected) =>
        Assert.Equal(expected, Fp8ScaledForms.NeedsBiasActKernel(epilogue, hasBias, activation));

    [Fact]
    public void NotesNameTheFormTheStatusAndWhatRunsNext()
    {
        string refused = Fp8ScaledForms.Note(DType.F16, CublasLt.EpilogueBias, 35552, 5760, 1920,
            "cuBLASLt: cublasLtMatmulAlgoGetHeuristic failed with CUBLAS_STATUS_INVALID_VALUE (7)", "accepted", nextIsDefault: true);
        Assert.Contains("refused", refused);
        Assert.Contains("epilogue BIAS", refused);
        Assert.Contains("m=35552 n=5760 k=1920", refused);
        Assert.Contains("CUBLAS_STATUS_INVALID_VALUE (7)", refused);
        Assert.Contains("FAST_ACCUM=1 it would be accepted (not used)", refused);
        Assert.Contains("trying the DEFAULT epilogue", refused);

        string last = Fp8ScaledForms.Note(DType.BF16, CublasLt.EpilogueDefault, 37, 48, 64, "NOT_SUPPORTED (15)", null, nextIsDefault: false);
        Assert.Contains("-> BF16, epilogue DEFAULT", last);
        Assert.Contains("two-pass path", last);
        Assert.DoesNotContain("FAST_ACCUM", last);

        string accepted = Fp8ScaledForms.Note(DType.F16, CublasLt.EpilogueDefault, 37, 48, 64, null, null, false);
        Assert.StartsWith("fp8 linear: cuBLASLt accepted", accepted);
        Assert.Contains("fp8_bias_act kernel", accepted);
        Assert.DoesNotContain("fp8_bias_act", Fp8ScaledForms.Note(DType.F16, CublasLt.EpilogueGeluBias, 37, 48, 64, null, null, false));
    }
}
