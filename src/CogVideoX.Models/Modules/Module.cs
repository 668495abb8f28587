using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Modules;

/// <summary>
/// A node of a model's module tree, mirroring the checkpoint names (as candle's VarBuilder and stable-diffusion.cpp's
/// GGMLBlock): a module is built from its config alone and declares each of its parameters once, in its constructor
/// (<see cref="Weight"/>, <see cref="Stacked"/>, <see cref="Reshaped"/>, <see cref="Copy"/>, <see cref="QuantizedFp8"/>), and its sub-modules
/// (<see cref="Child{T}"/>). Everything else derives from that one tree: <see cref="Load"/> reads each parameter
/// from a checkpoint, <see cref="CheckpointTensors"/> lists what a checkpoint must hold (random-weight folders, name
/// checks), <see cref="Bytes"/> sizes it (memory estimates), and <see cref="Bind"/> swaps the storage of every
/// parameter at once (streamed blocks run over device slots without being rebuilt).
/// </summary>
/// <remarks>
/// <para>Ownership, one rule for every model component (T5 encoder, transformer, VAE and their parts): a module owns
/// the tensors bound to its parameters (Dispose releases them). A method borrows its tensor arguments (the caller
/// still owns and disposes them; a method that writes into one, as <c>TransformerBlock.Forward</c> updates the residual
/// stream, says so) and returns results the caller owns. The one exception is spelled in the name: a method ending in
/// <c>Consuming</c> (the VAE's stages) takes over its first argument and releases it as early as it can, which is what
/// bounds the decoder's working set. A model constructed over a block source (streaming) takes the source over.</para>
/// </remarks>
public abstract class Module : IDisposable
{
    // Parameters and sub-modules in declaration order (the order of Parameters, and of a streamed block's layout).
    private readonly List<object> _entries = new();
    private string _name = "";

    /// <summary>The module this one was declared in (null for a root).</summary>
    public Module? Parent { get; private set; }

    /// <summary>The path from the root of the tree ("" for a root): "transformer_blocks.3.norm1".</summary>
    public string Path => Parent is null ? "" : Join(Parent.Path, _name);

    /// <summary>Every parameter of this module and its sub-modules, in declaration order.</summary>
    public IReadOnlyList<Parameter> Parameters
    {
        get
        {
            var list = new List<Parameter>();
            Collect(list);
            return list;
        }
    }

    /// <summary>The bound tensors, in the order of <see cref="Parameters"/>.</summary>
    public IReadOnlyList<Tensor> Tensors => Parameters.Select(p => p.Value).ToList();

    /// <summary>
    /// The checkpoint tensors this tree reads (names relative to this module, each once), with their shapes, in
    /// declaration order: what a checkpoint must hold, what a random-weight folder writes.
    /// </summary>
    public IReadOnlyList<(string Name, int[] Shape)> CheckpointTensors
    {
        get
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var list = new List<(string Name, int[] Shape)>();
            foreach (var p in Parameters)
                foreach (var (name, shape) in p.Sources)
                {
                    var full = Join(Relative(p.Owner), name);
                    if (seen.Add(full)) list.Add((full, shape));
                }
            return list;
        }
    }

    /// <summary>Bytes of all parameters held for a model in <paramref name="dtype"/> (checkpoint dtypes assumed to be the model's).</summary>
    public long Bytes(DType dtype) => Parameters.Sum(p => p.Bytes(dtype));

    /// <summary>Bytes of the tensors bound now (on whatever backend they are).</summary>
    public long BoundBytes => Parameters.Where(p => p.IsBound).Sum(p => p.Value.ElementCount * p.Value.DType.SizeOf());

    /// <summary>The (shape, dtype) each parameter takes when read through <paramref name="scope"/> (this module's scope).</summary>
    public IReadOnlyList<(int[] Shape, DType DType)> Placements(WeightScope scope) =>
        Parameters.Select(p => (p.Shape, p.DTypeIn(ScopeOf(p, scope)))).ToList();

    /// <summary>
    /// Reads every parameter from the checkpoint through <paramref name="scope"/> (this module's place in it), onto the
    /// scope's backend, converted as each parameter's rule says. On failure nothing stays bound.
    /// </summary>
    public void Load(WeightScope scope)
    {
        ArgumentNullException.ThrowIfNull(scope);
        try
        {
            foreach (var p in Parameters) p.Bind(p.Read(ScopeOf(p, scope)));
        }
        catch
        {
            Release();
            throw;
        }
    }

    /// <summary>
    /// Reads every parameter through <paramref name="scope"/> into <paramref name="storage"/> (one tensor per parameter,
    /// of its shape and dtype: views into a packed image), and binds the storage.
    /// </summary>
    public void LoadInto(WeightScope scope, IReadOnlyList<Tensor> storage)
    {
        var parameters = Parameters;
        CheckCount(parameters, storage);
        for (int i = 0; i < parameters.Count; i++)
        {
            using (var t = parameters[i].Read(ScopeOf(parameters[i], scope))) t.CopyTo(storage[i]);
            parameters[i].Bind(storage[i]);
        }
    }

    /// <summary>
    /// Swaps the storage of every parameter: binds <paramref name="tensors"/> (one per parameter, in the order of
    /// <see cref="Parameters"/>, same shapes), taking them over and releasing what was bound before.
    /// </summary>
    public void Bind(IReadOnlyList<Tensor> tensors)
    {
        var parameters = Parameters;
        CheckCount(parameters, tensors);
        for (int i = 0; i < parameters.Count; i++) parameters[i].Bind(tensors[i]);
    }

    /// <summary>Releases every bound tensor of the tree.</summary>
    public void Release()
    {
        foreach (var p in Parameters) p.Release();
    }

    /// <summary>
    /// Disposes every sub-module (one may hold more than parameters: a cached positional table, FP8 copies) and
    /// releases the tree's parameters. Overrides release their own state and then call this.
    /// </summary>
    public virtual void Dispose()
    {
        foreach (var entry in _entries)
            if (entry is Module child) child.Dispose();
        Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>A parameter read as it is stored: <c>name</c> of shape <paramref name="shape"/>, in the model's dtype.</summary>
    protected Parameter Weight(string name, params int[] shape) =>
        Add(new Parameter(this, name, shape, [name], shape, ParameterPrecision.Model));

    /// <summary>A parameter used in float32 but kept in the checkpoint's half type (see <see cref="ParameterPrecision.Float32Compute"/>).</summary>
    protected Parameter Float32Compute(string name, params int[] shape) =>
        Add(new Parameter(this, name, shape, [name], shape, ParameterPrecision.Float32Compute));

    /// <summary><c>name</c>, read as <paramref name="preferredAlias"/> when the checkpoint holds that name.</summary>
    protected Parameter WeightOrAlias(string name, string preferredAlias, params int[] shape) =>
        Add(new Parameter(this, name, shape, [name], shape, ParameterPrecision.Model, preferredAlias));

    /// <summary>Checkpoint tensors of one shape, held concatenated along dim 0 (fused projections).</summary>
    protected Parameter Stacked(string[] names, params int[] shape)
    {
        var held = (int[])shape.Clone();
        held[0] *= names.Length;
        return Add(new Parameter(this, string.Join("+", names), held, names, shape, ParameterPrecision.Model));
    }

    /// <summary>
    /// A linear weight held as FP8 E4M3 only: the checkpoint tensors <paramref name="names"/> (each of
    /// <paramref name="shape"/> [out, in], stacked along dim 0 when several) quantized with one scale per output channel
    /// as they are read (<see cref="Ops.QuantizeFp8"/> on the loading backend), the exact weight released at once.
    /// Two parameters, declared together: the codes [N, K] (F8_E4M3) and the scales [N] (F32).
    /// </summary>
    protected (Parameter Codes, Parameter Scales) QuantizedFp8(string[] names, params int[] shape)
    {
        var held = (int[])shape.Clone();
        held[0] *= names.Length;
        string name = string.Join("+", names);
        var source = new Parameter.Fp8Source();
        var codes = Add(new Parameter(this, name + ":f8_codes", held, names, shape, ParameterPrecision.Model, fp8: source));
        source.Declare(codes);
        var scales = Add(new Parameter(this, name + ":f8_scales", [held[0]], names, shape, ParameterPrecision.Model, fp8: source));
        return (codes, scales);
    }

    /// <summary>A checkpoint tensor of shape <paramref name="stored"/>, held reshaped to <paramref name="held"/>.</summary>
    protected Parameter Reshaped(string name, int[] stored, int[] held) =>
        Add(new Parameter(this, name, held, [name], stored, ParameterPrecision.Model));

    /// <summary>A copy of <paramref name="source"/> (declared before) converted to <paramref name="dtype"/>; no checkpoint tensor of its own.</summary>
    protected Parameter Copy(Parameter source, DType dtype) =>
        Add(new Parameter(this, $"{source.Name}:{dtype.Name()}", source.Shape, [], source.Shape, ParameterPrecision.Model, copyOf: source, copyDType: dtype));

    /// <summary>Declares <paramref name="module"/> as the sub-module <paramref name="name"/> ("norm1", "resnets.0").</summary>
    protected T Child<T>(string name, T module) where T : Module
    {
        if (module.Parent is not null) throw new InvalidOperationException($"module '{module.Path}' is already part of a tree");
        module.Parent = this;
        module._name = name;
        _entries.Add(module);
        return module;
    }

    public static string Join(string prefix, string name) => prefix.Length == 0 ? name : name.Length == 0 ? prefix : $"{prefix}.{name}";

    private Parameter Add(Parameter p)
    {
        _entries.Add(p);
        return p;
    }

    private void Collect(List<Parameter> into)
    {
        foreach (var e in _entries)
        {
            if (e is Parameter p) into.Add(p);
            else ((Module)e).Collect(into);
        }
    }

    /// <summary>The path of <paramref name="descendant"/> below this module.</summary>
    private string Relative(Module descendant)
    {
        var parts = new List<string>();
        for (var m = descendant; !ReferenceEquals(m, this); m = m.Parent!)
        {
            if (m.Parent is null) throw new InvalidOperationException($"module '{descendant.Path}' is not below '{Path}'");
            parts.Add(m._name);
        }
        parts.Reverse();
        return string.Join(".", parts);
    }

    private WeightScope ScopeOf(Parameter p, WeightScope scope)
    {
        var relative = Relative(p.Owner);
        return relative.Length == 0 ? scope : scope.Scope(relative);
    }

    private static void CheckCount(IReadOnlyList<Parameter> parameters, IReadOnlyList<Tensor> tensors)
    {
        if (tensors.Count != parameters.Count)
            throw new InvalidOperationException($"{tensors.Count} tensors given for a module of {parameters.Count} parameters");
    }
}
