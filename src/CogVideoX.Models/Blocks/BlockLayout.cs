using CogVideoX.Engine;

namespace CogVideoX.Models.Blocks;

/// <summary>
/// Where each weight of a block sits when the block is packed into flat buffers ("arenas"), one per dtype, in the
/// order of the block's <see cref="Modules.Module.Parameters"/>. A host image and a device slot use the same layout, so one
/// copy per arena moves a whole block. Offsets are aligned to <see cref="AlignmentBytes"/> so packed weights are as
/// aligned as freshly allocated ones (GEMM libraries pick kernels by pointer alignment).
/// </summary>
public sealed class BlockLayout
{
    public const int AlignmentBytes = 256;

    private BlockLayout(IReadOnlyList<(DType DType, long Elements)> arenas, IReadOnlyList<Placement> weights)
    {
        Arenas = arenas;
        Weights = weights;
        Bytes = arenas.Sum(a => a.Elements * a.DType.SizeOf());
    }

    /// <summary>A weight's arena, its element offset in it, and its shape.</summary>
    public readonly record struct Placement(int Arena, long Offset, int[] Shape, DType DType)
    {
        public long Elements => Shape.Aggregate(1L, (n, d) => n * d);
    }

    public IReadOnlyList<(DType DType, long Elements)> Arenas { get; }

    public IReadOnlyList<Placement> Weights { get; }

    /// <summary>Bytes of one packed block (all arenas, padding included).</summary>
    public long Bytes { get; }

    /// <summary>The layout of a block whose parameters take these shapes and dtypes.</summary>
    public static BlockLayout Of(IReadOnlyList<(int[] Shape, DType DType)> weights)
    {
        var arenaOf = new Dictionary<DType, int>();
        var sizes = new List<(DType DType, long Elements)>();
        var placements = new List<Placement>();
        foreach (var w in weights)
        {
            long elements = w.Shape.Aggregate(1L, (n, d) => n * d);
            if (!arenaOf.TryGetValue(w.DType, out int arena))
            {
                arena = sizes.Count;
                arenaOf[w.DType] = arena;
                sizes.Add((w.DType, 0));
            }
            long align = Math.Max(1, AlignmentBytes / w.DType.SizeOf());
            long offset = (sizes[arena].Elements + align - 1) / align * align;
            placements.Add(new Placement(arena, offset, w.Shape, w.DType));
            sizes[arena] = (w.DType, offset + elements);
        }
        foreach (var (dtype, elements) in sizes)
            if (elements > int.MaxValue)
                throw new CogVideoXException($"a block holds {elements} {dtype.Name()} weight values, more than one buffer can index ({int.MaxValue})");
        return new BlockLayout(sizes, placements);
    }

    /// <summary>Throws unless <paramref name="weights"/> fit this layout exactly (same count, dtypes and shapes).</summary>
    public void Check(IReadOnlyList<(int[] Shape, DType DType)> weights, string what)
    {
        if (weights.Count != Weights.Count)
            throw new InvalidOperationException($"{what} has {weights.Count} weights, the first block {Weights.Count}; streamed blocks must all have the same structure");
        for (int i = 0; i < weights.Count; i++)
        {
            var p = Weights[i];
            if (weights[i].DType != p.DType || !weights[i].Shape.SequenceEqual(p.Shape))
                throw new InvalidOperationException(
                    $"{what}: weight {i} is {weights[i].DType.Name()}{Layout.Format(weights[i].Shape)}, the first block's is {p.DType.Name()}{Layout.Format(p.Shape)}; streamed blocks must all have the same structure");
        }
    }

    /// <summary>Empty arenas for one block on <paramref name="allocate"/>'s memory.</summary>
    public Tensor[] AllocateArenas(Func<DType, long, Tensor> allocate) =>
        Arenas.Select(a => allocate(a.DType, Math.Max(a.Elements, 1))).ToArray();

    /// <summary>One view per weight into <paramref name="arenas"/>, in weight order (the caller owns them).</summary>
    public Tensor[] Views(Tensor[] arenas)
    {
        var views = new Tensor[Weights.Count];
        try
        {
            for (int i = 0; i < views.Length; i++)
            {
                var p = Weights[i];
                using var flat = arenas[p.Arena].Narrow(0, (int)p.Offset, (int)p.Elements);
                views[i] = flat.Reshape(p.Shape);
            }
            return views;
        }
        catch
        {
            foreach (var v in views) v?.Dispose();
            throw;
        }
    }
}
