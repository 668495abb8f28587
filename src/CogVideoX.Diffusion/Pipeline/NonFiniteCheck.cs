using System.Globalization;
using CogVideoX.Engine;

namespace CogVideoX.Diffusion;

/// <summary>
/// Stops a run whose numbers went NaN or infinite, which would otherwise end as a video of noise or black frames
/// with exit code 0. The tensor is summed along its last dimension on its own device and only those sums come back:
/// a NaN or infinity anywhere makes its row's sum non-finite, so the check moves 1/width of the tensor.
/// </summary>
internal static class NonFiniteCheck
{
    /// <summary>Above this guidance scale a non-finite step is put down to the scale first (the reference is 6).</summary>
    private const double LargeGuidance = 20;

    /// <summary>Throws when denoising step <paramref name="index"/> left non-finite latents.</summary>
    public static void Latents(Tensor latents, int index, int steps, int timestep, double guidance, bool guided)
    {
        if (IsFinite(latents)) return;
        var causes = new List<string>();
        if (guided && guidance > LargeGuidance)
            causes.Add($"the guidance scale {guidance.ToString("G", CultureInfo.InvariantCulture)} is too large for the arithmetic " +
                $"(the reference is 6 and more than {LargeGuidance} rarely helps; use --guidance 6)");
        causes.Add("corrupt transformer or text encoder weights (NaN or infinite values: download the model again)");
        if (latents.DType == DType.F16) causes.Add("values beyond half precision's range (try --dtype bf16 or f32)");
        throw new CogVideoXException(
            $"denoising step {index + 1} of {steps} (timestep {timestep}) made the latents non-finite (NaN or infinity); " +
            $"the run was stopped and no video was written. Likely cause{(causes.Count > 1 ? "s" : "")}: {string.Join("; or ", causes)}.");
    }

    /// <summary>Throws when the VAE turned finite latents into non-finite frames.</summary>
    public static void Frames(Tensor decoded)
    {
        if (IsFinite(decoded)) return;
        throw new CogVideoXException(
            "the VAE decoded the (finite) latents into non-finite frames (NaN or infinity); no video was written. Likely cause: " +
            "corrupt VAE weights (NaN or infinite values: download the model again)" +
            (decoded.DType == DType.F16 ? "; or values beyond half precision's range (try --dtype f32)." : "."));
    }

    internal static bool IsFinite(Tensor x)
    {
        using var sums = x.Sum();
        foreach (var s in sums.ToFloatArray())
            if (!float.IsFinite(s)) return false;
        return true;
    }
}
