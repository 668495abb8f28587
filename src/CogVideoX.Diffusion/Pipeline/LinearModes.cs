using CogVideoX.Engine;
using CogVideoX.Models.Transformer;

namespace CogVideoX.Diffusion;

/// <summary>
/// The linear-precision setting of a request (<c>--linear exact|fp8</c>, spec key <c>linear</c>): its names, checks and
/// which steps keep exact linears. Under fp8 the first and last <c>exact_steps</c> steps (0 by default: none) run the
/// exact GEMMs, the rest the FP8 ones (xDiT's answer to FP8 artefacts).
/// </summary>
public static class LinearModes
{
    public static readonly IReadOnlyList<string> Names = ["exact", "fp8"];

    public static string Name(LinearMode mode) => Names[(int)mode];

    /// <summary>"exact" (also "f16", "bf16", "default") or "fp8" (also "e4m3"); an unknown name says what is allowed.</summary>
    public static LinearMode Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Trim().ToLowerInvariant() switch
        {
            "exact" or "default" or "none" => LinearMode.Exact,
            "fp8" or "e4m3" or "float8" => LinearMode.Fp8,
            _ => throw new CogVideoXException(
                $"linear: unknown mode \"{text}\"; use exact (the model's dtype, the default) or fp8 (the transformer blocks' attention and " +
                "feed-forward projections with FP8 E4M3 weights and activations: faster on sm_89+ GPUs, slightly less exact)",
                GenerationRules.UsageExitCode),
        };
    }

    /// <summary>Whether step <paramref name="index"/> of <paramref name="steps"/> runs exact linears under fp8.</summary>
    public static bool IsExactStep(int index, int steps, int exactSteps) => index < exactSteps || index >= steps - exactSteps;

    /// <summary>The linears of step <paramref name="index"/>: exact unless the request asks for fp8 and the step is not kept exact.</summary>
    public static LinearMode ForStep(GenerationRequest request, int index, int steps) =>
        request.Linears == LinearMode.Fp8 && !IsExactStep(index, steps, request.ExactSteps) ? LinearMode.Fp8 : LinearMode.Exact;

    /// <summary>
    /// How the transformer's block projections are held for a request: FP8 only (codes and scales, no exact copy on the
    /// device) under fp8 with no exact step; exact otherwise (an fp8 run with exact steps makes FP8 copies beside them).
    /// </summary>
    public static ProjectionWeights Projections(GenerationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return request.Linears == LinearMode.Fp8 && request.ExactSteps == 0 ? ProjectionWeights.Fp8 : ProjectionWeights.Exact;
    }

    /// <summary>
    /// Checks a request's linears on <paramref name="backend"/>: throws when fp8 cannot run there (what is missing,
    /// what to do); returns warnings for settings with no effect.
    /// </summary>
    public static IReadOnlyList<string> Check(GenerationRequest request, IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Linears != LinearMode.Fp8) return [];
        if (Ops.Fp8Unavailable(backend) is { } why)
            throw new CogVideoXException($"--linear fp8 cannot run on {backend.Device}: {why}", GenerationRules.UsageExitCode);
        if (2 * request.ExactSteps >= request.Steps)
            return [$"linear fp8: with {request.Steps} steps and the first and last {request.ExactSteps} kept exact, every step runs exact linears."];
        return [];
    }

    /// <summary>The exact steps a run records: at least 1 under a step cache (its first and last step always compute), else as asked under fp8 linears or 8-bit attention, else 0.</summary>
    public static int ResolvedExactSteps(GenerationRequest request) =>
        request.Cache != StepCacheMode.None ? Math.Max(1, request.ExactSteps)
        : request.Linears == LinearMode.Fp8 || request.Attention != AttentionMode.Exact ? request.ExactSteps
        : 0;
}
