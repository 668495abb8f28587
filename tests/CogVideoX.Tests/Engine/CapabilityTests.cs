using CogVideoX.Engine;
using CogVideoX.Engine.Cuda;
using CogVideoX.Engine.Testing;
using CogVideoX.Models.Transformer;
using CogVideoX.Models.Vae;

namespace CogVideoX.Tests.Engine;

/// <summary>
/// The narrow backend: the capability query, every op catalogue case on a backend that has only the core kernels
/// (so every capability runs as its decomposition) against the CPU's fused kernels, and golden runs on that backend.
/// </summary>
public class CapabilityTests
{
    private static readonly CoreOnlyBackend CoreOnly = new();

    public static TheoryData<int> CaseIndices()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < OpCatalogue.All().Count; i++) data.Add(i);
        return data;
    }

    [Fact]
    public void TheCpuAndCudaBackendsHaveEveryCapabilityAndTheCoreOnlyBackendNone()
    {
        var all = Enum.GetValues<Capability>();
        Assert.Equal(all, CpuBackend.Instance.Capabilities());
        foreach (var c in all)
        {
            Assert.True(CpuBackend.Instance.Supports(c));
            Assert.False(CoreOnly.Supports(c));
            Assert.True(BackendCapabilities.KernelInterface(c).IsAssignableFrom(typeof(CudaBackend)), $"CUDA lacks {c}");
        }
        Assert.Empty(CoreOnly.Capabilities());
    }

    [Fact]
    public void EveryCapabilityHasDecomposedCatalogueCasesInEveryDType()
    {
        var cases = OpCatalogue.All();
        foreach (var c in Enum.GetValues<Capability>())
            // The 8-bit attention takes half-precision inputs only (its GPU kernel's, as a run's dtype on a GPU).
            foreach (var dt in c == Capability.Sage8Attention ? new[] { DType.F16, DType.BF16 } : new[] { DType.F32, DType.F16, DType.BF16 })
            {
                if (OpCatalogue.HasDecomposition(c))
                    Assert.Contains(cases, x => x.Decomposed && x.DType == dt && OpCatalogue.CapabilityOf(x.Op) == c);
                else
                    Assert.DoesNotContain(cases, x => x.Decomposed && OpCatalogue.CapabilityOf(x.Op) == c);
                Assert.Contains(cases, x => !x.Decomposed && x.DType == dt && OpCatalogue.CapabilityOf(x.Op) == c);
            }
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void CatalogueCaseOnTheCoreOnlyBackendMatchesTheCpu(int index)
    {
        var c = OpCatalogue.All()[index];
        var result = OpCatalogue.Compare(c, CoreOnly, CpuBackend.Instance, index);
        if (OpCatalogue.CapabilityOf(c.Op) is { } capability && !OpCatalogue.HasDecomposition(capability))
        {
            // No decomposition (FP8 linears): a backend without the kernel refuses it, saying what to use instead.
            Assert.False(result.Passed);
            Assert.Contains("has no FP8 linear kernel; use --linear exact", result.Failure);
            return;
        }
        Assert.True(result.Passed, $"{c}: {result.Failure} normalised error {result.NormalisedError:E2} > {c.Bound:E0}");
    }

    [Fact]
    public void ForcedDecompositionsRunOnABackendThatHasTheKernels()
    {
        var c = new OpInputs(CpuBackend.Instance, DType.F32, 5);
        using var x = c.Rand(2, 3, 7, 16);
        using var cos = c.Rand(7, 16);
        using var sin = c.Rand(7, 16);
        using var fused = x.Rotary(cos, sin);
        Assert.False(Decompositions.Forced);
        using (Decompositions.Force())
        {
            Assert.True(Decompositions.Forced);
            // In place through the decomposition too: the result is complete before x is written.
            x.RotaryInto(cos, sin, x);
        }
        Assert.False(Decompositions.Forced);
        var (_, normalised, bad) = OpCatalogue.Errors(x.ToFloatArray(), fused.ToFloatArray());
        Assert.Equal(0, bad);
        Assert.True(normalised < 1e-6, $"normalised error {normalised:E2}");
    }

    [Fact]
    public void GoldenTransformerRunMatchesOnTheCoreOnlyBackend()
    {
        // The 5b-style model: rotary, attention, modulated norms and gated residuals all through decompositions.
        using var model = CogVideoXTransformer.Load(Fixtures.GoldenFile("pipeline_5b_style", "transformer"), CoreOnly, DType.F32);
        var tensors = Fixtures.LoadAll(Fixtures.GoldenFile("pipeline_5b_style", "runs", "whale_dpm_frames13.safetensors"));
        try
        {
            using var input = tensors["transformer_in_step0"].To(CoreOnly);
            using var text = input.Dim(0) == 2
                ? Ops.Concat(0, tensors["negative_embeds"], tensors["prompt_embeds"]).To(CoreOnly)
                : tensors["prompt_embeds"].To(CoreOnly);
            float[] timesteps = Array.ConvertAll(tensors["timestep_step0"].ToLongArray(), t => (float)t);
            using var rotary = model.BuildRotaryTables(input.Dim(1), input.Dim(3), input.Dim(4));
            using var actual = model.Forward(input, text, timesteps, rotary);
            Assert.Same(CoreOnly, actual.Backend);
            Compare.AssertClose(tensors["transformer_out_step0"], actual, 1e-4, "core-only transformer step 0");
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    [Fact]
    public void GoldenVaeDecodeMatchesOnTheCoreOnlyBackend()
    {
        // Group norms, spatial norms and upsampling through decompositions; convolutions are core.
        using var vae = CogVideoXVae.Load(Path.Combine(Fixtures.Path2b, "vae"), CoreOnly, DType.F32);
        var cases = Fixtures.LoadAll(Fixtures.GoldenFile("vae_cases.safetensors"));
        try
        {
            using var z = cases["z"].To(CoreOnly);
            using var decoded = vae.Decode(z);
            Compare.AssertClose(cases["decoded"], decoded, 1e-4, "core-only decoded");
        }
        finally
        {
            foreach (var t in cases.Values) t.Dispose();
        }
    }
}
