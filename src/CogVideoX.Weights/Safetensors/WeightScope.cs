using CogVideoX.Engine;

namespace CogVideoX.Weights;

/// <summary>
/// Loads weights by checkpoint name under a prefix (as candle's VarBuilder): <c>w.Scope("transformer_blocks").Scope(0)</c>
/// then <c>w.Get("norm1.linear.weight", 6 * d, d)</c>. Errors name the file, the full tensor name and expected vs
/// actual shape or dtype.
/// </summary>
public sealed class WeightScope
{
    private readonly Checkpoint _checkpoint;

    internal WeightScope(Checkpoint checkpoint, IBackend backend, DType dtype, string prefix, IWeightPatch? patch = null)
    {
        _checkpoint = checkpoint;
        Backend = backend;
        DType = dtype;
        Prefix = prefix;
        Patch = patch;
    }

    /// <summary>What changes tensors as they are read (LoRA adapters fused into the weights); null reads them as stored.</summary>
    public IWeightPatch? Patch { get; }

    /// <summary>The same scope, reading through <paramref name="patch"/> (null: as stored).</summary>
    public WeightScope WithPatch(IWeightPatch? patch) => new(_checkpoint, Backend, DType, Prefix, patch);

    public IBackend Backend { get; }

    /// <summary>The dtype tensors are converted to when loaded.</summary>
    public DType DType { get; }

    public string Prefix { get; }

    public Checkpoint Checkpoint => _checkpoint;

    public WeightScope Scope(string name) => new(_checkpoint, Backend, DType, Join(name), Patch);

    public WeightScope Scope(int index) => Scope(index.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>The same prefix, loading as another dtype (e.g. norms kept in float32).</summary>
    public WeightScope As(DType dtype) => new(_checkpoint, Backend, dtype, Prefix, Patch);

    public string Join(string name) => Prefix.Length == 0 ? name : $"{Prefix}.{name}";

    public bool Contains(string name) => _checkpoint.Contains(Join(name));

    /// <summary>Loads a tensor, checking its shape when one is given (no dims = any shape).</summary>
    public Tensor Get(string name, params int[] shape)
    {
        LoadCancellation.Current.ThrowIfCancellationRequested();
        var full = Join(name);
        if (Patch is null || !Patch.Changes(full) || !DType.IsFloat()) return Read(full, name, shape, DType);
        // Patched in float32 on the loading backend, rounded once to the dtype it is held in.
        using var stored = Read(full, name, shape, DType.F32);
        using var patched = Patch.Apply(full, stored);
        return patched.To(DType);
    }

    private Tensor Read(string full, string name, int[] shape, DType dtype)
    {
        if (_checkpoint.IsRandom) return _checkpoint.LoadRandom(full, shape, Backend, dtype);
        if (!_checkpoint.Contains(full))
            throw new WeightsException($"{_checkpoint.Source}: no tensor '{full}'{(shape.Length > 0 ? $" (expected shape {Layout.Format(shape)})" : "")}; {Nearby(name)}");
        var file = _checkpoint.FileOf(full);
        var entry = file.Entry(full);
        if (shape.Length > 0 && !entry.Shape.AsSpan().SequenceEqual(shape))
            throw new WeightsException($"{file.Path}: tensor '{full}' has shape {Layout.Format(entry.Shape)}, expected {Layout.Format(shape)}");
        if (entry.DType.IsFloat() != dtype.IsFloat())
            throw new WeightsException($"{file.Path}: tensor '{full}' is {entry.DType.Name()}, expected {(dtype.IsFloat() ? "a float tensor (F32, F16 or BF16)" : "an integer tensor (I64)")} to load as {dtype.Name()}");
        return _checkpoint.Load(full, Backend, dtype);
    }

    public Tensor? GetOptional(string name, params int[] shape) => Contains(name) ? Get(name, shape) : null;

    /// <summary>The dtype a tensor is stored in (null for random weights, which have no file).</summary>
    public DType? StoredDType(string name)
    {
        var full = Join(name);
        if (_checkpoint.IsRandom || !_checkpoint.Contains(full)) return null;
        return _checkpoint.Entry(full).DType;
    }

    /// <summary>What the checkpoint does hold under this prefix, most similar names first, for a missing-tensor message.</summary>
    private string Nearby(string name)
    {
        var under = Prefix.Length == 0
            ? _checkpoint.Names.ToList()
            : _checkpoint.Names.Where(n => n.StartsWith(Prefix + ".", StringComparison.Ordinal)).Select(n => n[(Prefix.Length + 1)..]).ToList();
        if (under.Count == 0) return $"nothing in the checkpoint starts with '{Prefix}.'";
        var shown = string.Join(", ", under.OrderByDescending(n => Similarity(n, name)).ThenBy(n => n, StringComparer.Ordinal).Take(8));
        var where = Prefix.Length == 0 ? "the checkpoint holds" : $"under '{Prefix}.' it holds";
        return $"{where} {shown}{(under.Count > 8 ? $" and {under.Count - 8} more" : "")}";
    }

    /// <summary>Length of the common prefix plus the common suffix: "to_k.weight" is close to "to_x.weight".</summary>
    private static int Similarity(string a, string b)
    {
        int prefix = a.AsSpan().CommonPrefixLength(b);
        int suffix = 0;
        while (suffix < Math.Min(a.Length, b.Length) - prefix && a[^(suffix + 1)] == b[^(suffix + 1)]) suffix++;
        return prefix + suffix;
    }
}
