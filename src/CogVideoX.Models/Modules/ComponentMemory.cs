namespace CogVideoX.Models.Modules;

/// <summary>
/// Device bytes of one model component, from its module tree and its own working-set formula: one repeated block's
/// weights (0 blocks when it has none), the weights outside the blocks, and the working memory of one call at its peak.
/// </summary>
public sealed record ComponentMemory(long BlockBytes, int Blocks, long RestBytes, long WorkingBytes)
{
    /// <summary>All weights, every block resident.</summary>
    public long WeightBytes => RestBytes + BlockBytes * Blocks;
}
