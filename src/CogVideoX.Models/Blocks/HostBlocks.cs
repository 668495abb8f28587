using CogVideoX.Engine;
using CogVideoX.Models.Modules;
using CogVideoX.Weights;

namespace CogVideoX.Models.Blocks;

/// <summary>
/// Every block of a model packed into host memory, one image per block (an arena per dtype, see
/// <see cref="BlockLayout"/>), in page-locked memory when a streaming backend provides it so device copies run by DMA
/// beside the compute. Each block's parameters are read straight into its image (the layout comes from the block's
/// declared parameters, not from the order anything was loaded in).
/// This is what the balanced and low memory modes keep between videos instead of the device copy.
/// </summary>
public sealed class HostBlocks<TBlock> : IDisposable where TBlock : Module
{
    private readonly Tensor[][] _arenas;
    private bool _disposed;

    private HostBlocks(string name, BlockLayout layout, Tensor[][] arenas, Func<TBlock> create, bool pinned)
    {
        Name = name;
        Layout = layout;
        _arenas = arenas;
        CreateBlock = create;
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

    /// <summary>A new block structure with nothing bound (a device slot binds its storage to one).</summary>
    public Func<TBlock> CreateBlock { get; }

    /// <summary>Arena <paramref name="arena"/> of block <paramref name="block"/>'s image (a contiguous 1-D CPU tensor).</summary>
    public Tensor Arena(int block, int arena)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _arenas[block][arena];
    }

    /// <summary>
    /// Packs <paramref name="count"/> blocks of the structure <paramref name="create"/> makes, block i read through
    /// <paramref name="scopeOf"/>(i) (a CPU scope in the image dtype), into images in pinned memory from
    /// <paramref name="pinned"/> (ordinary memory when null, or when the system refuses to page-lock more: copies from
    /// it still work, without overlapping the compute).
    /// </summary>
    public static HostBlocks<TBlock> Load(string name, int count, Func<TBlock> create, Func<int, WeightScope> scopeOf, IWeightStreaming? pinned)
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
        try
        {
            // One structure, its storage swapped to each image in turn while that image is filled.
            using var structure = create();
            BlockLayout? layout = null;
            for (int i = 0; i < count; i++)
            {
                var scope = scopeOf(i);
                if (scope.Backend is not CpuBackend)
                    throw new InvalidOperationException($"{name}: block {i} is not read into host memory");
                var placements = structure.Placements(scope);
                layout ??= BlockLayout.Of(placements);
                layout.Check(placements, $"{name} {i}");
                arenas[i] = layout.AllocateArenas(Allocate);
                structure.LoadInto(scope, layout.Views(arenas[i]));
            }
            return new HostBlocks<TBlock>(name, layout!, arenas, create, pinning);
        }
        catch
        {
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
        foreach (var set in _arenas)
            foreach (var a in set) a.Dispose();
    }
}
