using CogVideoX.Engine;

namespace CogVideoX.Models.Blocks;

/// <summary>
/// Where a model finds its blocks while a forward pass runs. The model calls <see cref="BeginPass"/> once at the start
/// of a pass, then for each block in order <see cref="Acquire"/> (the block's weights are — or, on the device's queue,
/// will be — in place before any work queued after the call), runs it, and <see cref="Release"/> (the work that reads
/// the block is queued; its memory may be reused once that work is done). The same model code runs whether the
/// blocks are resident or streamed.
/// </summary>
public interface IBlockSource<out TBlock> : IDisposable
{
    int Count { get; }

    /// <summary>A forward pass is about to run through the blocks (a streaming source starts fetching block 0).</summary>
    void BeginPass();

    TBlock Acquire(int index);

    void Release(int index);
}

/// <summary>Blocks that stay where they were loaded (the full memory mode): acquiring one is free. Owns the blocks.</summary>
public sealed class ResidentBlocks<TBlock>(IReadOnlyList<TBlock> blocks) : IBlockSource<TBlock> where TBlock : IDisposable
{
    public int Count => blocks.Count;

    public IReadOnlyList<TBlock> Blocks => blocks;

    public void BeginPass()
    {
    }

    public TBlock Acquire(int index) => blocks[index];

    public void Release(int index)
    {
    }

    public void Dispose()
    {
        foreach (var block in blocks) block?.Dispose();
    }
}
