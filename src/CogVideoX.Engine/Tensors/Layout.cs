using System.Text;

namespace CogVideoX.Engine;

/// <summary>
/// Shape, strides (in elements) and offset of a tensor's view onto its storage. Immutable: every view
/// operation returns a new layout over the same storage, so views cost nothing.
/// </summary>
public sealed class Layout
{
    private readonly int[] _shape;
    private readonly long[] _strides;

    public Layout(int[] shape, long[] strides, long offset)
    {
        if (shape.Length != strides.Length)
            throw new ArgumentException($"shape has {shape.Length} dims but strides have {strides.Length}");
        foreach (var d in shape)
            if (d < 0)
                throw new ArgumentException($"negative dimension in shape {Format(shape)}");
        _shape = shape;
        _strides = strides;
        Offset = offset;
        long n = 1;
        foreach (var d in shape) n *= d;
        ElementCount = n;
    }

    public static Layout Contiguous(params int[] shape) => new((int[])shape.Clone(), ContiguousStrides(shape), 0);

    public ReadOnlySpan<int> Shape => _shape;

    public ReadOnlySpan<long> Strides => _strides;

    public long Offset { get; }

    public int Rank => _shape.Length;

    public long ElementCount { get; }

    public int[] ShapeArray() => (int[])_shape.Clone();

    public long[] StridesArray() => (long[])_strides.Clone();

    public int Dim(int dim) => _shape[Normalize(dim)];

    public long Stride(int dim) => _strides[Normalize(dim)];

    /// <summary>Row-major with no gaps; size-1 dims may carry any stride.</summary>
    public bool IsContiguous
    {
        get
        {
            long expected = 1;
            for (int i = _shape.Length - 1; i >= 0; i--)
            {
                if (_shape[i] != 1 && _strides[i] != expected)
                    return false;
                expected *= _shape[i];
            }
            return true;
        }
    }

    /// <summary>The smallest storage range [Offset + min, Offset + max] the view touches; (0,-1) when empty.</summary>
    public (long Min, long Max) Span()
    {
        if (ElementCount == 0) return (0, -1);
        long lo = Offset, hi = Offset;
        for (int i = 0; i < _shape.Length; i++)
        {
            long extent = (_shape[i] - 1) * _strides[i];
            if (extent < 0) lo += extent; else hi += extent;
        }
        return (lo, hi);
    }

    public int Normalize(int dim)
    {
        int r = _shape.Length;
        int d = dim < 0 ? dim + r : dim;
        if (d < 0 || d >= r)
            throw new ArgumentOutOfRangeException(nameof(dim), $"dimension {dim} is out of range for a rank-{r} tensor {Format(_shape)}");
        return d;
    }

    public static long[] ContiguousStrides(ReadOnlySpan<int> shape)
    {
        var strides = new long[shape.Length];
        long s = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            strides[i] = s;
            s *= Math.Max(shape[i], 1);
        }
        return strides;
    }

    public Layout Permute(params int[] dims)
    {
        if (dims.Length != Rank)
            throw new ArgumentException($"permute needs {Rank} dims, got {dims.Length}");
        var seen = new bool[Rank];
        var shape = new int[Rank];
        var strides = new long[Rank];
        for (int i = 0; i < Rank; i++)
        {
            int d = Normalize(dims[i]);
            if (seen[d]) throw new ArgumentException($"permute repeats dimension {d}");
            seen[d] = true;
            shape[i] = _shape[d];
            strides[i] = _strides[d];
        }
        return new Layout(shape, strides, Offset);
    }

    public Layout Transpose(int a, int b)
    {
        var dims = Enumerable.Range(0, Rank).ToArray();
        a = Normalize(a);
        b = Normalize(b);
        (dims[a], dims[b]) = (dims[b], dims[a]);
        return Permute(dims);
    }

    public Layout Narrow(int dim, int start, int length)
    {
        dim = Normalize(dim);
        if (start < 0 || length < 0 || start + length > _shape[dim])
            throw new ArgumentOutOfRangeException(nameof(start), $"narrow [{start}, {start + length}) is outside dimension {dim} of size {_shape[dim]}");
        var shape = ShapeArray();
        shape[dim] = length;
        return new Layout(shape, StridesArray(), Offset + start * _strides[dim]);
    }

    /// <summary>Every step-th element of dim, from start (a strided slice).</summary>
    public Layout Slice(int dim, int start, int end, int step)
    {
        dim = Normalize(dim);
        if (step <= 0) throw new ArgumentOutOfRangeException(nameof(step), "slice step must be positive");
        end = Math.Min(end, _shape[dim]);
        if (start < 0 || start > end)
            throw new ArgumentOutOfRangeException(nameof(start), $"slice [{start}:{end}] is outside dimension {dim} of size {_shape[dim]}");
        var shape = ShapeArray();
        var strides = StridesArray();
        shape[dim] = (end - start + step - 1) / step;
        strides[dim] = _strides[dim] * step;
        return new Layout(shape, strides, Offset + start * _strides[dim]);
    }

    public Layout Unsqueeze(int dim)
    {
        int r = Rank + 1;
        int d = dim < 0 ? dim + r : dim;
        if (d < 0 || d >= r) throw new ArgumentOutOfRangeException(nameof(dim));
        var shape = new List<int>(_shape);
        var strides = new List<long>(_strides);
        long stride = d < Rank ? _strides[d] * _shape[d] : 1;
        shape.Insert(d, 1);
        strides.Insert(d, stride);
        return new Layout(shape.ToArray(), strides.ToArray(), Offset);
    }

    public Layout Squeeze(int dim)
    {
        dim = Normalize(dim);
        if (_shape[dim] != 1) throw new ArgumentException($"cannot squeeze dimension {dim} of size {_shape[dim]}");
        var shape = new List<int>(_shape);
        var strides = new List<long>(_strides);
        shape.RemoveAt(dim);
        strides.RemoveAt(dim);
        return new Layout(shape.ToArray(), strides.ToArray(), Offset);
    }

    /// <summary>Broadcasts to a larger shape (numpy rules, leading dims added) with stride 0 on expanded dims.</summary>
    public Layout BroadcastTo(ReadOnlySpan<int> shape)
    {
        if (shape.Length < Rank)
            throw new ArgumentException($"cannot broadcast {Format(_shape)} to {Format(shape)}");
        var strides = new long[shape.Length];
        int lead = shape.Length - Rank;
        for (int i = 0; i < shape.Length; i++)
        {
            if (i < lead) { strides[i] = 0; continue; }
            int own = _shape[i - lead];
            if (own == shape[i]) strides[i] = _strides[i - lead];
            else if (own == 1) strides[i] = 0;
            else throw new ArgumentException($"cannot broadcast {Format(_shape)} to {Format(shape)}");
        }
        return new Layout(shape.ToArray(), strides, Offset);
    }

    /// <summary>A view with a new shape over the same elements, or null when the strides do not allow one (a copy is needed).</summary>
    public Layout? TryReshape(ReadOnlySpan<int> newShape)
    {
        long n = 1;
        foreach (var d in newShape) n *= d;
        if (n != ElementCount)
            throw new ArgumentException($"cannot reshape {Format(_shape)} ({ElementCount} elements) to {Format(newShape)} ({n} elements)");
        if (IsContiguous)
            return new Layout(newShape.ToArray(), ContiguousStrides(newShape), Offset);
        // General case (as torch's computeStride): merge runs of old dims that are contiguous with each other.
        var newStrides = new long[newShape.Length];
        int viewD = newShape.Length - 1;
        long chunkBase = _strides.Length > 0 ? _strides[^1] : 1;
        long tensorNumel = 1, viewNumel = 1;
        for (int d = _shape.Length - 1; d >= 0; d--)
        {
            tensorNumel *= _shape[d];
            if (d == 0 || (_shape[d - 1] != 1 && _strides[d - 1] != tensorNumel * chunkBase))
            {
                while (viewD >= 0 && (viewNumel < tensorNumel || newShape[viewD] == 1))
                {
                    newStrides[viewD] = viewNumel * chunkBase;
                    viewNumel *= newShape[viewD];
                    viewD--;
                }
                if (viewNumel != tensorNumel) return null;
                if (d > 0)
                {
                    chunkBase = _strides[d - 1];
                    tensorNumel = 1;
                    viewNumel = 1;
                }
            }
        }
        if (viewD != -1) return null;
        return new Layout(newShape.ToArray(), newStrides, Offset);
    }

    /// <summary>Resolves one -1 in a requested shape against an element count.</summary>
    public static int[] InferShape(ReadOnlySpan<int> shape, long elementCount)
    {
        var result = shape.ToArray();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < result.Length; i++)
        {
            if (result[i] == -1)
            {
                if (infer >= 0) throw new ArgumentException($"only one dimension may be -1 in {Format(shape)}");
                infer = i;
            }
            else known *= result[i];
        }
        if (infer >= 0)
        {
            if (known == 0 || elementCount % known != 0)
                throw new ArgumentException($"cannot infer -1 in {Format(shape)} for {elementCount} elements");
            result[infer] = (int)(elementCount / known);
        }
        return result;
    }

    public static string Format(ReadOnlySpan<int> shape)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < shape.Length; i++)
        {
            if (i > 0) sb.Append(", ");
            sb.Append(shape[i]);
        }
        return sb.Append(']').ToString();
    }

    public override string ToString() => $"{Format(_shape)} strides {string.Join(",", _strides)} offset {Offset}";
}
