namespace CogVideoX.Weights;

/// <summary>
/// A stop request that model loads honour between tensors. Loading a large model takes seconds to minutes and runs
/// through every component's constructors; rather than threading a token through all of them, a caller sets it for
/// the calls it makes (<see cref="Use"/>) and <see cref="WeightScope.Get"/> checks it before each tensor.
/// </summary>
public static class LoadCancellation
{
    private static readonly AsyncLocal<CancellationToken> s_current = new();

    /// <summary>The token of the innermost <see cref="Use"/> on this flow (none outside one).</summary>
    public static CancellationToken Current => s_current.Value;

    /// <summary>Makes <paramref name="token"/> current until the result is disposed.</summary>
    public static IDisposable Use(CancellationToken token)
    {
        var previous = s_current.Value;
        s_current.Value = token;
        return new Restore(previous);
    }

    private sealed class Restore(CancellationToken previous) : IDisposable
    {
        public void Dispose() => s_current.Value = previous;
    }
}
