namespace CogVideoX.Engine;

/// <summary>
/// Collects every tensor created on this thread while it is the innermost scope and disposes them when the scope
/// ends, except those handed out with <see cref="Keep"/>. Model code uses one per forward call so intermediates are
/// released deterministically without a using on each.
/// </summary>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic] private static TensorScope? t_current;

    private readonly TensorScope? _parent;
    private readonly List<Tensor> _tensors = new();
    private bool _disposed;

    public TensorScope()
    {
        _parent = t_current;
        t_current = this;
    }

    internal static void Register(Tensor tensor) => t_current?._tensors.Add(tensor);

    /// <summary>Moves a tensor out of this scope into the enclosing one (or to the caller, when there is none).</summary>
    public Tensor Keep(Tensor tensor)
    {
        for (int i = _tensors.Count - 1; i >= 0; i--)
        {
            if (ReferenceEquals(_tensors[i], tensor))
            {
                _tensors.RemoveAt(i);
                break;
            }
        }
        _parent?._tensors.Add(tensor);
        return tensor;
    }

    /// <summary>
    /// Takes a tensor out of the innermost scope without handing it to an enclosing one: the caller owns it from
    /// now on (a cache that outlives the call that fills it).
    /// </summary>
    public static Tensor Detach(Tensor tensor)
    {
        var scope = t_current;
        if (scope is not null)
        {
            for (int i = scope._tensors.Count - 1; i >= 0; i--)
            {
                if (ReferenceEquals(scope._tensors[i], tensor))
                {
                    scope._tensors.RemoveAt(i);
                    break;
                }
            }
        }
        return tensor;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (!ReferenceEquals(t_current, this))
            throw new InvalidOperationException("tensor scopes must be disposed innermost first");
        t_current = _parent;
        foreach (var t in _tensors)
            t.Dispose();
        _tensors.Clear();
    }
}
