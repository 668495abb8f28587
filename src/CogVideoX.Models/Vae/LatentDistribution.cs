using CogVideoX.Engine;

namespace CogVideoX.Models.Vae;

/// <summary>
/// diffusers' DiagonalGaussianDistribution over the VAE's latents (the encoder's <c>latent_dist</c>): a mean and a
/// log-variance per latent value, [B, latent_channels, F', H/8, W/8] each, the log-variance clamped to [−30, 20] as
/// diffusers clamps it. <see cref="Sample"/> takes its standard-normal noise from the caller, who draws it from the
/// run's generator in <see cref="Mean"/>'s shape (diffusers: <c>randn_tensor(mean.shape, generator)</c>), so the
/// distribution itself holds no random state. Owns both tensors.
/// </summary>
public sealed class LatentDistribution : IDisposable
{
    /// <summary>diffusers' bounds on the log-variance.</summary>
    public const float LogVarMin = -30f, LogVarMax = 20f;

    /// <summary>Takes over <paramref name="mean"/> and <paramref name="logVar"/> (already clamped).</summary>
    public LatentDistribution(Tensor mean, Tensor logVar)
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(logVar);
        if (!mean.Shape.SequenceEqual(logVar.Shape))
            throw new ArgumentException($"latent distribution: mean {mean.ShapeString} and log-variance {logVar.ShapeString} must have one shape");
        Mean = mean;
        LogVar = logVar;
    }

    /// <summary>
    /// The distribution of the encoder's output ("moments" [B, 2 · C, F, h, w]): the first C channels are the mean,
    /// the last C the log-variance, clamped. <paramref name="moments"/> is borrowed.
    /// </summary>
    public static LatentDistribution FromMoments(Tensor moments)
    {
        if (moments.Rank < 2 || moments.Dim(1) % 2 != 0)
            throw new ArgumentException($"latent distribution: moments {moments.ShapeString} need an even channel count (mean, then log-variance)");
        int c = moments.Dim(1) / 2;
        Tensor? mean = null;
        try
        {
            using (var m = moments.Narrow(1, 0, c)) mean = m.Clone();
            using var l = moments.Narrow(1, c, c);
            return new LatentDistribution(mean, l.Clamp(LogVarMin, LogVarMax));
        }
        catch
        {
            mean?.Dispose();
            throw;
        }
    }

    /// <summary>[B, latent_channels, F', H/8, W/8].</summary>
    public Tensor Mean { get; }

    /// <summary>The clamped log-variance, of <see cref="Mean"/>'s shape.</summary>
    public Tensor LogVar { get; }

    /// <summary>The most likely latents (diffusers' <c>mode()</c>): a new tensor equal to <see cref="Mean"/>, the caller's.</summary>
    public Tensor Mode() => Mean.Clone();

    /// <summary>
    /// mean + exp(½ · logvar) · noise (diffusers' <c>sample(generator)</c>), a new tensor the caller owns.
    /// <paramref name="standardNormal"/> has <see cref="Mean"/>'s shape (drawn from the generator in that shape) and
    /// is borrowed; it is moved to Mean's backend and dtype when it lives elsewhere.
    /// </summary>
    public Tensor Sample(Tensor standardNormal)
    {
        ArgumentNullException.ThrowIfNull(standardNormal);
        if (!standardNormal.Shape.SequenceEqual(Mean.Shape))
            throw new CogVideoXException($"latent sample: the noise is {standardNormal.ShapeString} but the latents are {Mean.ShapeString}; draw the noise in the mean's shape");
        using var noise = ReferenceEquals(standardNormal.Backend, Mean.Backend) && standardNormal.DType == Mean.DType
            ? standardNormal.Alias()
            : Converted(standardNormal);
        using var half = LogVar.Scale(0.5f);
        using var std = half.Exp();
        using var scaled = std.Mul(noise);
        return Mean.Add(scaled);
    }

    private Tensor Converted(Tensor t)
    {
        using var moved = t.To(Mean.Backend);
        return moved.To(Mean.DType);
    }

    public void Dispose()
    {
        Mean.Dispose();
        LogVar.Dispose();
    }
}
