namespace CogVideoX.Engine.Testing;

/// <summary>
/// Steele et al.'s SplitMix64: a small, fast generator giving the same stream on every machine, for inputs that must
/// not depend on the platform (the op catalogue's cases, the synthetic renderer's test pattern). Not torch's generator.
/// </summary>
public struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) from the top 24 bits (every value exact in float).</summary>
    public float NextSingle() => (NextUInt64() >> 40) * (1f / (1 << 24));

    /// <summary>Uniform in [0, 1) from the top 53 bits (every value exact in double).</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));
}
