namespace CogVideoX.Engine;

public static partial class Ops
{
    /// <summary>Joins tensors along dim (a copy into views of one output).</summary>
    public static Tensor Concat(int dim, params Tensor[] parts)
    {
        if (parts.Length == 0) throw new ArgumentException("concat needs at least one tensor");
        var first = parts[0];
        int d = first.Layout.Normalize(dim);
        var shape = first.ShapeArray();
        int total = 0;
        foreach (var p in parts)
        {
            SameBackend(first, p, "concat");
            SameDType(first, p, "concat");
            if (p.Rank != first.Rank)
                throw new ArgumentException($"concat: ranks differ ({first.ShapeString} and {p.ShapeString})");
            for (int i = 0; i < p.Rank; i++)
                if (i != d && p.Shape[i] != shape[i])
                    throw new ArgumentException($"concat along {d}: shapes {first.ShapeString} and {p.ShapeString} differ in dim {i}");
            total += p.Shape[d];
        }
        shape[d] = total;
        var y = Like(first, shape);
        int at = 0;
        foreach (var p in parts)
        {
            if (p.ElementCount > 0)
            {
                using var view = y.Narrow(d, at, p.Shape[d]);
                first.Backend.Copy(p, view);
            }
            at += p.Shape[d];
        }
        return y;
    }

    /// <summary>Stacks equal-shaped tensors along a new dim.</summary>
    public static Tensor Stack(int dim, params Tensor[] parts)
    {
        var views = parts.Select(p => p.Unsqueeze(dim < 0 ? dim + p.Rank + 1 : dim)).ToArray();
        try { return Concat(dim < 0 ? dim + parts[0].Rank + 1 : dim, views); }
        finally { foreach (var v in views) v.Dispose(); }
    }

    /// <summary>Constant padding: pads[i] = (before, after) for dim i, from the first dim; missing dims are not padded.</summary>
    public static Tensor Pad(this Tensor x, (int Before, int After)[] pads, float value = 0f)
    {
        if (pads.Length > x.Rank) throw new ArgumentException($"pad: {pads.Length} pairs for a rank-{x.Rank} tensor");
        var shape = x.ShapeArray();
        for (int i = 0; i < pads.Length; i++)
        {
            if (pads[i].Before < 0 || pads[i].After < 0) throw new ArgumentException("pad: negative padding");
            shape[i] += pads[i].Before + pads[i].After;
        }
        var y = Tensor.Full(x.Backend, x.DType, value, shape);
        if (x.ElementCount == 0) return y;
        var view = y.Alias();
        for (int i = 0; i < pads.Length; i++)
        {
            var next = view.Narrow(i, pads[i].Before, x.Shape[i]);
            view.Dispose();
            view = next;
        }
        using (view) x.Backend.Copy(x, view);
        return y;
    }

    /// <summary>Nearest-neighbour upsampling of the trailing dims by integer factors (as F.interpolate(mode="nearest")).</summary>
    public static Tensor UpsampleNearest(this Tensor x, params int[] factors)
    {
        x.ThrowIfDisposed();
        int r = x.Rank, k = factors.Length;
        if (k > r) throw new ArgumentException($"upsample: {k} factors for a rank-{r} tensor");
        var shape = x.ShapeArray();
        for (int i = 0; i < k; i++)
        {
            if (factors[i] < 1) throw new ArgumentException("upsample factors must be ≥ 1");
            shape[r - k + i] *= factors[i];
        }
        var y = Like(x, shape);
        if (y.ElementCount == 0) return y;
        if (Kernel<IUpsampleNearestKernel>(x) is { } kernel) kernel.UpsampleNearest(x, y);
        else Decompositions.UpsampleNearest(x, y);
        return y;
    }

    /// <summary>
    /// For backends: nearest upsampling of x into y as a copy between views — x broadcast to [.., a, f_a, b, f_b]
    /// and y (contiguous) reshaped to the same — which any strided copy kernel can run.
    /// </summary>
    public static (Tensor Source, Tensor Destination) NearestUpsampleViews(Tensor x, Tensor y)
    {
        int r = x.Rank;
        var inner = new List<int>();
        var expanded = new List<int>();
        for (int i = 0; i < r; i++)
        {
            int f = y.Dim(i) / Math.Max(x.Dim(i), 1);
            if (x.Dim(i) * f != y.Dim(i)) throw new ArgumentException($"upsample: {y.ShapeString} is not a whole multiple of {x.ShapeString}");
            inner.Add(x.Dim(i));
            expanded.Add(x.Dim(i));
            if (f != 1)
            {
                inner.Add(1);
                expanded.Add(f);
            }
        }
        using var v = x.Reshape(inner.ToArray());
        return (v.BroadcastTo(expanded.ToArray()), y.Reshape(expanded.ToArray()));
    }

    /// <summary>Repeats the tensor along dims (as torch.Tensor.repeat with the same rank).</summary>
    public static Tensor Repeat(this Tensor x, params int[] repeats)
    {
        if (repeats.Length != x.Rank) throw new ArgumentException("repeat needs one count per dim");
        var inner = new List<int>();
        var expanded = new List<int>();
        var final = new List<int>();
        for (int i = 0; i < x.Rank; i++)
        {
            inner.Add(1); inner.Add(x.Shape[i]);
            expanded.Add(repeats[i]); expanded.Add(x.Shape[i]);
            final.Add(repeats[i] * x.Shape[i]);
        }
        using var v = x.Reshape(inner.ToArray());
        using var b = v.BroadcastTo(expanded.ToArray());
        using var c = b.Clone();
        return c.Reshape(final.ToArray());
    }

    /// <summary>Copies src into dst (a view of another tensor, for in-place assembly).</summary>
    public static void CopyTo(this Tensor source, Tensor destination)
    {
        SameBackend(source, destination, "copy");
        if (!source.Shape.SequenceEqual(destination.Shape))
            throw new ArgumentException($"copy: shapes differ ({source.ShapeString} → {destination.ShapeString})");
        if (source.ElementCount > 0) source.Backend.Copy(source, destination);
    }
}
