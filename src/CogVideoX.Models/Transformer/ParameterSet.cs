using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Transformer;

/// <summary>
/// The tensors one component holds, loaded through a <see cref="WeightScope"/>: released together, counted together
/// (so a memory policy can move one block at a time), and the checkpoint names read are remembered (so tests can hold
/// the loader to the declared parameter list).
/// </summary>
internal sealed class ParameterSet : IDisposable
{
    private readonly List<Tensor> _tensors = new();
    private readonly List<string> _read = new();

    /// <summary>Checkpoint names read, in order.</summary>
    public IReadOnlyList<string> NamesRead => _read;

    /// <summary>The tensors kept, in the order they were loaded or kept.</summary>
    public IReadOnlyList<Tensor> Tensors => _tensors;

    /// <summary>Bytes held on the backend.</summary>
    public long Bytes => _tensors.Sum(t => t.ElementCount * t.DType.SizeOf());

    /// <summary>Loads <paramref name="name"/> under <paramref name="w"/>, checking its shape, and keeps it.</summary>
    public Tensor Load(WeightScope w, string name, params int[] shape)
    {
        var t = w.Get(name, shape);
        _read.Add(w.Join(name));
        _tensors.Add(t);
        return t;
    }

    /// <summary>Loads a tensor only to derive another from it (e.g. fused projections): read, not kept.</summary>
    public Tensor LoadTransient(WeightScope w, string name, params int[] shape)
    {
        var t = w.Get(name, shape);
        _read.Add(w.Join(name));
        return t;
    }

    /// <summary>Keeps a derived tensor.</summary>
    public Tensor Keep(Tensor t)
    {
        _tensors.Add(t);
        return t;
    }

    public void Dispose()
    {
        foreach (var t in _tensors) t.Dispose();
        _tensors.Clear();
    }
}
