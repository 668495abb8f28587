using System.Globalization;
using CogVideoX.Engine;
using CogVideoX.Models.Transformer;
using CogVideoX.Weights;

namespace CogVideoX.Diffusion;

/// <summary>Which step cache a run uses: none (the exact path, the default), TeaCache or First Block Cache.</summary>
public enum StepCacheMode
{
    None,
    TeaCache,
    FirstBlockCache,
}

/// <summary>
/// The step-caching settings of a request, their names, defaults and checks, and the rule of which steps stay exact:
/// the first and last <c>max(1, exact_steps)</c> steps always run every block (xDiT's answer to a fast mode's
/// artefacts: keep the steps that shape the layout and the last details exact).
/// </summary>
public static class StepCaching
{
    public static readonly IReadOnlyList<string> Names = ["none", "teacache", "fbcache"];

    /// <summary>TeaCache's "slow" setting (its CogVideoX evaluation: 0.1 slow, 0.2 fast).</summary>
    public const double TeaCacheDefaultThreshold = 0.1;

    /// <summary>diffusers' <c>FirstBlockCacheConfig</c> default.</summary>
    public const double FirstBlockCacheDefaultThreshold = 0.05;

    public static string Name(StepCacheMode mode) => Names[(int)mode];

    /// <summary>"none", "teacache", "fbcache" (also "off", "tea", "first-block"); an unknown name says what is allowed.</summary>
    public static StepCacheMode Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Trim().ToLowerInvariant() switch
        {
            "none" or "off" or "exact" => StepCacheMode.None,
            "teacache" or "tea" => StepCacheMode.TeaCache,
            "fbcache" or "fbc" or "first-block" or "firstblockcache" => StepCacheMode.FirstBlockCache,
            _ => throw new CogVideoXException(
                $"cache: unknown step cache \"{text}\"; use none (every step computed, the default), teacache (TeaCache: reuse the blocks' " +
                "residual while the timestep embedding changes little) or fbcache (First Block Cache: reuse it while block 0's residual changes little)",
                GenerationRules.UsageExitCode),
        };
    }

    public static double DefaultThreshold(StepCacheMode mode) => mode switch
    {
        StepCacheMode.TeaCache => TeaCacheDefaultThreshold,
        StepCacheMode.FirstBlockCache => FirstBlockCacheDefaultThreshold,
        _ => 0,
    };

    /// <summary>Whether step <paramref name="index"/> of <paramref name="steps"/> must be computed in full.</summary>
    public static bool IsExactStep(int index, int steps, int exactSteps)
    {
        int n = Math.Max(1, exactSteps);
        return index < n || index >= steps - n;
    }

    /// <summary>
    /// The self-attention of step <paramref name="index"/> of <paramref name="steps"/>: the request's
    /// <see cref="GenerationRequest.Attention"/>, except on the first and last <see cref="GenerationRequest.ExactSteps"/>
    /// steps (none when that is 0: unlike a cache, 8-bit attention needs no exact step).
    /// </summary>
    public static AttentionMode AttentionAt(GenerationRequest request, int index, int steps)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.Attention == AttentionMode.Exact) return AttentionMode.Exact;
        return request.ExactSteps > 0 && IsExactStep(index, steps, request.ExactSteps) ? AttentionMode.Exact : request.Attention;
    }

    /// <summary>The name of an attention mode as settings, sidecars and tables write it.</summary>
    public static string AttentionName(AttentionMode mode) => mode == AttentionMode.Sage8 ? "sage8" : "exact";

    /// <summary>Checks the cache settings of a request; throws for values no run can use, returns warnings for ones with no effect.</summary>
    public static IReadOnlyList<string> Check(GenerationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.CacheThreshold is { } t && (!double.IsFinite(t) || t < 0))
            throw Usage($"cache threshold: {Format(t)} is not valid; use a finite number ≥ 0 (teacache: 0.1 slow, 0.2 fast; fbcache: 0.05 is diffusers' default; higher reuses more steps)");
        if (request.ExactSteps < 0)
            throw Usage($"exact steps: {request.ExactSteps} is not valid; use 0 or more (the first and last N steps are computed exactly; the first and last one always are)");
        var warnings = new List<string>();
        if (request.Cache == StepCacheMode.None)
        {
            if (request.CacheThreshold is not null) warnings.Add("cache threshold has no effect without a step cache (--cache teacache or fbcache).");
            if (request.ExactSteps > 0 && request.Attention == AttentionMode.Exact)
                warnings.Add("exact steps has no effect without a fast mode (--cache teacache or fbcache, --attention sage8): every step is exact already.");
            else if (request.ExactSteps > 0 && 2 * request.ExactSteps >= request.Steps)
                warnings.Add($"attention sage8: with {request.Steps} steps and the first and last {request.ExactSteps} kept exact, no step runs in 8 bits.");
        }
        else if (2 * Math.Max(1, request.ExactSteps) >= request.Steps)
        {
            warnings.Add($"cache {Name(request.Cache)}: with {request.Steps} steps and the first and last {Math.Max(1, request.ExactSteps)} kept exact, no step can be reused.");
        }
        return warnings;
    }

    /// <summary>What <see cref="Create"/> would set up, in words ("none", "fbcache, threshold 0.05", …).</summary>
    public static string Describe(GenerationRequest request, TransformerConfig config)
    {
        var (cache, description) = Create(request, config);
        cache?.Dispose();
        return description;
    }

    /// <summary>The cache for a request on a transformer of <paramref name="config"/> (null for none), and what it was set up with.</summary>
    public static (StepCache? Cache, string Description) Create(GenerationRequest request, TransformerConfig config)
    {
        ArgumentNullException.ThrowIfNull(request);
        double threshold = request.CacheThreshold ?? DefaultThreshold(request.Cache);
        switch (request.Cache)
        {
            case StepCacheMode.TeaCache:
                var (coefficients, model) = request.TeaCacheCoefficients is { } given
                    ? ([.. given], "given")
                    : TeaCacheCoefficients.For(config);
                return (new TeaCache(threshold, coefficients), $"teacache, threshold {Format(threshold)}, {model} coefficients");
            case StepCacheMode.FirstBlockCache:
                return (new FirstBlockCache(threshold), $"fbcache, threshold {Format(threshold)}");
            default:
                return (null, "none");
        }
    }

    private static string Format(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    private static CogVideoXException Usage(string message) => new(message, GenerationRules.UsageExitCode);
}
