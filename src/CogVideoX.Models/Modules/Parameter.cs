using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Modules;

/// <summary>
/// One tensor a <see cref="Module"/> holds, declared once: its name under the module, the shape it is held in, the
/// checkpoint tensors it is made from and the rule for its dtype. Loading, streaming (<see cref="Module.Bind"/>),
/// parameter lists, random weights and memory estimates all read the declaration; the tensor itself
/// (<see cref="Value"/>) is bound later and can be swapped for another of the same shape and dtype.
/// </summary>
public sealed class Parameter
{
    private readonly string[] _sources;
    private readonly int[] _sourceShape;
    private readonly Parameter? _copyOf;
    private readonly DType _copyDType;
    private readonly Fp8Source? _fp8;
    private Tensor? _value;

    internal Parameter(Module owner, string name, int[] shape, string[] sources, int[] sourceShape, ParameterPrecision precision,
        string? preferredAlias = null, Parameter? copyOf = null, DType copyDType = DType.F32, Fp8Source? fp8 = null)
    {
        _fp8 = fp8;
        Owner = owner;
        Name = name;
        Shape = shape;
        _sources = sources;
        _sourceShape = sourceShape;
        Precision = precision;
        PreferredAlias = preferredAlias;
        _copyOf = copyOf;
        _copyDType = copyDType;
    }

    public Module Owner { get; }

    /// <summary>The name under <see cref="Owner"/> (a stacked parameter joins its sources' names with '+').</summary>
    public string Name { get; }

    /// <summary>The full name from the root of the tree (the checkpoint name of a plain parameter).</summary>
    public string Path => Module.Join(Owner.Path, Name);

    /// <summary>The shape the module holds it in.</summary>
    public int[] Shape { get; }

    public long ElementCount => Shape.Aggregate(1L, (n, d) => n * d);

    public ParameterPrecision Precision { get; }

    /// <summary>A checkpoint name read instead of the declared one when the checkpoint holds it (T5's embed_tokens).</summary>
    public string? PreferredAlias { get; }

    /// <summary>Whether this is a converted copy of another parameter (no checkpoint tensor of its own).</summary>
    public bool IsCopy => _copyOf is not null;

    /// <summary>
    /// Whether this is half of a linear weight held as FP8 E4M3 (its codes or its per-channel scales), quantized from
    /// the checkpoint's tensors as they are read; the exact weight is never kept.
    /// </summary>
    public bool IsFp8 => _fp8 is not null;

    public bool IsBound => _value is not null;

    /// <summary>The bound tensor.</summary>
    public Tensor Value => _value ?? throw new InvalidOperationException($"parameter '{Path}' has no tensor bound (the module was not loaded)");

    /// <summary>The checkpoint tensors it is made from, names under <see cref="Owner"/>, with their shapes.</summary>
    internal IEnumerable<(string Name, int[] Shape)> Sources => _sources.Select(s => (s, _sourceShape));

    /// <summary>
    /// The dtype it is held in for a model in <paramref name="model"/> whose checkpoint stores it as
    /// <paramref name="stored"/> (null: no file, e.g. random weights or an estimate from configs).
    /// </summary>
    public DType DTypeFor(DType model, DType? stored) => _copyOf is not null ? _copyDType : _fp8 is not null ? _fp8.DTypeOf(this) : Precision switch
    {
        // Kept in the checkpoint's own half type (widened when used: exact); a float32 checkpoint stays float32.
        ParameterPrecision.Float32Compute => (stored ?? model) is DType.F16 or DType.BF16 ? (stored ?? model) : DType.F32,
        _ => model,
    };

    /// <summary>Bytes held for a model in <paramref name="model"/>, checkpoint dtypes assumed to be the model's.</summary>
    public long Bytes(DType model) => ElementCount * DTypeFor(model, null).SizeOf();

    /// <summary>The dtype it is held in when loaded through <paramref name="scope"/> (the owner's scope).</summary>
    internal DType DTypeIn(WeightScope scope) =>
        DTypeFor(scope.DType, _sources.Length == 1 && _fp8 is null ? scope.StoredDType(ReadName(scope)) : null);

    private string ReadName(WeightScope scope) =>
        PreferredAlias is not null && scope.Contains(PreferredAlias) ? PreferredAlias : _sources[0];

    /// <summary>A new tensor of this parameter read through <paramref name="scope"/> (the owner's scope); the caller owns it.</summary>
    internal Tensor Read(WeightScope scope)
    {
        if (_copyOf is not null) return _copyOf.Value.To(_copyDType);
        if (_fp8 is not null) return _fp8.Read(this, scope);
        return ReadAs(scope, DTypeIn(scope));
    }

    /// <summary>The checkpoint tensors read through <paramref name="scope"/> in <paramref name="dtype"/>, stacked or reshaped to the held shape.</summary>
    private Tensor ReadAs(WeightScope scope, DType dtype)
    {
        var typed = scope.As(dtype);
        if (_sources.Length > 1)
        {
            // Stacked along dim 0 (to_q/to_k/to_v run as one GEMM).
            var parts = new Tensor[_sources.Length];
            try
            {
                for (int i = 0; i < parts.Length; i++) parts[i] = typed.Get(_sources[i], _sourceShape);
                return Ops.Concat(0, parts);
            }
            finally
            {
                foreach (var p in parts) p?.Dispose();
            }
        }
        if (PreferredAlias is not null && !scope.Contains(PreferredAlias) && !scope.Contains(_sources[0]))
            throw new WeightsException($"{scope.Checkpoint.Source}: no tensor '{scope.Join(_sources[0])}' or '{scope.Join(PreferredAlias)}' (expected shape {Layout.Format(_sourceShape)})");
        var t = typed.Get(ReadName(scope), _sourceShape);
        if (_sourceShape.AsSpan().SequenceEqual(Shape)) return t;
        using (t) return t.Reshape(Shape);
    }

    /// <summary>Binds <paramref name="tensor"/> (taken over: released with the module or when replaced).</summary>
    internal void Bind(Tensor tensor)
    {
        if (tensor.Rank != Shape.Length || !tensor.Shape.SequenceEqual(Shape))
            throw new InvalidOperationException($"parameter '{Path}' is {Layout.Format(Shape)}, a tensor {tensor.ShapeString} was bound to it");
        _value?.Dispose();
        _value = tensor;
    }

    internal void Release()
    {
        _value?.Dispose();
        _value = null;
        _fp8?.Forget();
    }

    /// <summary>
    /// A linear weight [N, K] held as FP8 E4M3 in two parameters: the codes [N, K] and the per-output-channel scales [N]
    /// (<see cref="Ops.QuantizeFp8"/>). Reading the codes reads the checkpoint's tensors in the model's dtype (LoRA
    /// fused, stacked as declared) onto the scope's backend, quantizes them there and releases the exact tensor at once;
    /// the scales made with them wait here for the scales parameter, read next (declared right after).
    /// </summary>
    internal sealed class Fp8Source
    {
        private Parameter? _codes;
        private Tensor? _pendingScales;

        public void Declare(Parameter codes) => _codes = codes;

        public DType DTypeOf(Parameter p) => ReferenceEquals(p, _codes) ? DType.F8E4M3 : DType.F32;

        public Tensor Read(Parameter p, WeightScope scope)
        {
            if (!ReferenceEquals(p, _codes) && _pendingScales is { } ready)
            {
                _pendingScales = null;
                return ready;
            }
            Fp8Weight quantized;
            using (var exact = _codes!.ReadAs(scope, scope.DType)) quantized = exact.QuantizeFp8();
            if (ReferenceEquals(p, _codes))
            {
                Forget();
                _pendingScales = quantized.Scales;
                return quantized.Codes;
            }
            // The scales read on their own (not right after the codes): quantized again, the codes dropped.
            quantized.Codes.Dispose();
            return quantized.Scales;
        }

        /// <summary>Drops scales made but not taken (a load that failed between the two reads).</summary>
        public void Forget()
        {
            _pendingScales?.Dispose();
            _pendingScales = null;
        }
    }
}

/// <summary>How a parameter's dtype follows the model's.</summary>
public enum ParameterPrecision
{
    /// <summary>The model's dtype.</summary>
    Model,

    /// <summary>Used in float32 (T5's <c>wo</c> under F16): held in the checkpoint's half type when it has one, else float32.</summary>
    Float32Compute,
}
