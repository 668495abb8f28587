namespace CogVideoX.Engine.Cuda;

/// <summary>
/// Which forms of the one-call scaled FP8 GEMM (outer-vector scales, F16/BF16 output) the FP8 linear asks cuBLASLt
/// for, in order: the bias and activation fused into cuBLASLt's epilogue where it has one for them, then the plain
/// (DEFAULT) epilogue with the bias and activation applied in place by the <c>fp8_bias_act</c> kernel. When cuBLASLt
/// refuses every form for a shape, that shape runs the two-pass path (unit-scale GEMM into float32 + epilogue kernel).
/// Pure logic, so the order and the notes are unit-tested without a GPU.
/// </summary>
internal static class Fp8ScaledForms
{
    /// <summary>cuBLASLt's epilogue for the bias and activation, or null where it has none (exact GELU, SiLU, ReLU without a match here).</summary>
    public static int? FusedEpilogue(bool hasBias, Activation activation) => activation switch
    {
        Activation.None => hasBias ? CublasLt.EpilogueBias : CublasLt.EpilogueDefault,
        Activation.GeluTanh => hasBias ? CublasLt.EpilogueGeluBias : CublasLt.EpilogueGelu,
        _ => null,
    };

    /// <summary>The cuBLASLt epilogues to ask for, best first; the last is always DEFAULT.</summary>
    public static IReadOnlyList<int> Epilogues(bool hasBias, Activation activation) =>
        FusedEpilogue(hasBias, activation) is { } fused && fused != CublasLt.EpilogueDefault
            ? [fused, CublasLt.EpilogueDefault]
            : [CublasLt.EpilogueDefault];

    /// <summary>Whether the <c>fp8_bias_act</c> kernel must follow a GEMM run with <paramref name="epilogue"/>.</summary>
    public static bool NeedsBiasActKernel(int epilogue, bool hasBias, Activation activation) =>
        epilogue == CublasLt.EpilogueDefault && (hasBias || activation != Activation.None);

    /// <summary>cuBLASLt's name for an epilogue, as the notes print it.</summary>
    public static string Name(int epilogue) => epilogue switch
    {
        CublasLt.EpilogueDefault => "DEFAULT",
        CublasLt.EpilogueBias => "BIAS",
        CublasLt.EpilogueGelu => "GELU",
        CublasLt.EpilogueGeluBias => "GELU_BIAS",
        CublasLt.EpilogueRelu => "RELU",
        CublasLt.EpilogueReluBias => "RELU_BIAS",
        _ => $"epilogue {epilogue}",
    };

    /// <summary>
    /// The [cuda] note for cuBLASLt's answer to one form: accepted, or refused with its status (and, where the form was
    /// asked without fast accumulation (COGVIDEOX_FP8_FAST_ACCUM=0), what the same form with FAST_ACCUM=1 would get,
    /// asked only to learn whether that is what cuBLASLt wants; that plan is dropped), and what runs next.
    /// </summary>
    public static string Note(DType y, int epilogue, int m, int n, int k, string? refusal, string? fastAccumAnswer, bool nextIsDefault)
    {
        string form = $"scaled FP8 GEMM (E4M3 x E4M3, outer-vector float32 scales with their pointers set before the heuristic query, -> {y.Name()}, epilogue {Name(epilogue)}, bias type {y.Name()}) at m={m} n={n} k={k}";
        if (refusal is null)
        {
            string bias = epilogue == CublasLt.EpilogueDefault ? "; bias and activation (if any) by the fp8_bias_act kernel" : "";
            return $"fp8 linear: cuBLASLt accepted the {form}{bias}";
        }
        string fast = fastAccumAnswer is null ? "" : $"; with FAST_ACCUM=1 it would be {fastAccumAnswer} (not used)";
        string next = nextIsDefault
            ? "trying the DEFAULT epilogue with the bias and activation by the fp8_bias_act kernel"
            : "this shape runs the two-pass path (unit-scale FP8 GEMM into float32, then the scales, bias and activation by the fp8_epilogue kernel; slower)";
        return $"fp8 linear: cuBLASLt refused the {form}: {refusal}{fast}; {next}";
    }
}
