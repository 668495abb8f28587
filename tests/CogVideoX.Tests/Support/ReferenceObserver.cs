using CogVideoX.Diffusion;
using CogVideoX.Engine;
using Xunit.Abstractions;

namespace CogVideoX.Tests;

/// <summary>
/// Compares each intermediate of a pipeline run with the one the reference run stored, as the pipeline produces it,
/// and logs the error: the initial latents bit-exact (the torch-compatible generator), the rest within the golden
/// README's model-output rule (≤ 1e-4 × max(1, max |reference|)). <paramref name="also"/> adds names to compare,
/// <paramref name="skip"/> names the reference run did not store.
/// </summary>
public sealed class ReferenceObserver(Dictionary<string, Tensor> reference, ITestOutputHelper output, string tag,
    IReadOnlyCollection<string>? also = null, IReadOnlyCollection<string>? skip = null) : IPipelineObserver
{
    private const double ModelTolerance = 1e-4; // golden README: model outputs ≤ 1e-4 × max(1, max |reference|)

    public List<string> Seen { get; } = [];

    public (string Name, double Error) Largest { get; private set; } = ("", 0);

    /// <summary>The intermediates every text-to-video run is compared on.</summary>
    public static bool Compared(string name) =>
        name is "prompt_embeds" or "negative_embeds" or "initial_latents" or "vae_input" or "vae_decoded"
        || name.StartsWith("transformer_in_step", StringComparison.Ordinal)
        || name.StartsWith("transformer_out_step", StringComparison.Ordinal)
        || name.StartsWith("latents_after_step", StringComparison.Ordinal);

    public bool IsCompared(string name) => Compared(name) || (also?.Contains(name) ?? false);

    public void Tensor(string name, Tensor value)
    {
        if (skip?.Contains(name) ?? false) return; // not stored by the reference run
        if (!reference.TryGetValue(name, out var expected))
        {
            Assert.Fail($"{tag}: the pipeline produced {name}, which the reference run did not store");
            return;
        }
        Seen.Add(name);
        if (name == "initial_latents")
        {
            double e = Compare.AssertAbs(expected.ToFloatArray(), value.ToFloatArray(), 0, $"{tag} {name}");
            output.WriteLine($"{tag} {name} {value.ShapeString}: max abs error {e:E2} (bit-exact)");
            return;
        }
        double err = Compare.AssertClose(expected, value, ModelTolerance, $"{tag} {name}");
        if (err >= Largest.Error) Largest = (name, err);
        output.WriteLine($"{tag} {name} {value.ShapeString}: max abs error {err:E2}");
    }
}
