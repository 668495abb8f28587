namespace CogVideoX.Engine;

/// <summary>Device time of one kind of op call (op, dtype, output shape) summed over a profiled region.</summary>
public sealed record OpProfileEntry(string Key, int Calls, double Milliseconds);

/// <summary>
/// Implemented by backends that can time every op call on the device (CUDA: events around each top-level call). The
/// timing itself costs a little, so profiled regions are run apart from timed ones.
/// </summary>
public interface IOpProfiling
{
    void StartProfile();

    /// <summary>Waits for the profiled work and returns the time per op key, largest first.</summary>
    IReadOnlyList<OpProfileEntry> StopProfile();
}
