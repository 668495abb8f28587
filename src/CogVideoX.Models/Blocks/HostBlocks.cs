using CogVideoX.Engine;

namespace CogVideoX.Models.Blocks;

/// <summary>
/// Every block of a model packed into host memory, one image per block (an arena per dtype, see
/// <see cref="BlockLayout"/>), in page-locked memory when a streaming backend provides it so device copies run by DMA
/// beside the compute. Built one block at a time, so loading holds one unpacked block at most besides the images.
/// This is what the balanced and low memory modes keep between videos instead of the device copy.
/// </summary>
public sealed class HostBlocks<TBlock> : IDisposable where TBlock : class, IStreamableBlock<TBlock>, IDisposable
{
    private readonly Tensor[][] _arenas;
    private bool _disposed;

    private HostBlocks(string name, BlockLayout layout, Tensor[][] arenas, TBlock template, bool pinned)
    {
        Name = name;
        Layout = layout;
        _arenas = arenas;
        Template = template;
        IsPinned = pinned;
    }

    /// <summary>What the blocks are (for messages): "transformer blocks", "text encoder blocks".</summary>
    public string Name { get; }

    public BlockLayout Layout { get; }

    public int Count => _arenas.Length;

    /// <summary>Whether all images are in page-locked memory.</summary>
    public bool IsPinned { get; }

    /// <summary>Bytes of all images.</summary>
    public long Bytes => Layout.Bytes * Count;

    /// <summary>Block 0 over its own image: the structure device slots are rebuilt from.</summary>
    internal TBlock Template { get; }

    /// <summary>Arena <paramref name="arena"/> of block <paramref name="block"/>'s image (a contiguous 1-D CPU tensor).</summary>
    public Tensor Arena(int block, int arena)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _arenas[block][arena];
    }

    /// <summary>
    /// Packs <paramref name="count"/> blocks, each built on the CPU by <paramref name="load"/> (and disposed once
    /// copied), into images in pinned memory from <paramref name="pinned"/> (ordinary memory when null, or when the
    /// system refuses to page-lock more: copies from it still work, without overlapping the compute).
    /// </summary>
    public static HostBlocks<TBlock> Load(string name, int count, Func<int, TBlock> load, IWeightStreaming? pinned)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        bool pinning = pinned is not null;
        Tensor Allocate(DType dtype, long elements)
        {
            if (pinning)
            {
                try
                {
                    return pinned!.AllocatePinned(dtype, elements);
                }
                catch (CogVideoXException)
                {
                    pinning = false;
                }
            }
            return Tensor.Empty(CpuBackend.Instance, dtype, checked((int)elements));
        }
        var arenas = new Tensor[count][];
        BlockLayout? layout = null;
        TBlock? template = null;
        try
        {
            for (int i = 0; i < count; i++)
            {
                using var block = load(i);
                if (block.Weights.Any(w => w.Backend is not CpuBackend))
                    throw new InvalidOperationException($"{name}: block {i} was not built in host memory");
                layout ??= BlockLayout.Of(block.Weights);
                layout.Check(block.Weights, $"{name} {i}");
                arenas[i] = layout.AllocateArenas(Allocate);
                var views = layout.Views(arenas[i]);
                bool kept = false;
                try
                {
                    for (int w = 0; w < views.Length; w++) block.Weights[w].CopyTo(views[w]);
                    if (i == 0)
                    {
                        template = block.Rebind(layout.Placer(views, name));
                        kept = true; // the template owns block 0's views now
                    }
                }
                finally
                {
                    if (!kept) foreach (var v in views) v.Dispose();
                }
            }
            return new HostBlocks<TBlock>(name, layout!, arenas, template!, pinning);
        }
        catch
        {
            template?.Dispose();
            foreach (var set in arenas)
                if (set is not null)
                    foreach (var a in set) a.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Template.Dispose();
        foreach (var set in _arenas)
            foreach (var a in set) a.Dispose();
    }
}
