namespace CogVideoX.Engine;

/// <summary>
/// The tensor operations: shape inference and validation here, kernels in the tensor's backend (a capability's
/// decomposition where the backend lacks it). One ownership rule: arguments are borrowed, results owned — an op that
/// returns a tensor hands the caller a new reference to dispose, and an op that writes a caller's destination
/// (CopyTo, the *Into forms) returns nothing.
/// </summary>
public static partial class Ops
{
    private static void SameBackend(Tensor a, Tensor b, string op)
    {
        a.ThrowIfDisposed();
        b.ThrowIfDisposed();
        if (!ReferenceEquals(a.Backend, b.Backend))
            throw new ArgumentException($"{op}: tensors live on different backends ({a.Device} and {b.Device})");
    }

    private static void SameDType(Tensor a, Tensor b, string op)
    {
        if (a.DType != b.DType)
            throw new ArgumentException($"{op}: dtypes differ ({a.DType.Name()} and {b.DType.Name()}); convert one with To()");
    }

    private static void Float(Tensor t, string op)
    {
        t.ThrowIfDisposed();
        if (!t.DType.IsFloat())
            throw new ArgumentException($"{op}: needs a float tensor, got {t.DType.Name()}");
    }

    private static void RankAtLeast(Tensor t, int rank, string op, string what)
    {
        if (t.Rank < rank)
            throw new ArgumentException($"{op}: {what} must have at least {rank} dims, got {t.ShapeString}");
    }

    private static void Rank(Tensor t, int rank, string op, string what)
    {
        if (t.Rank != rank)
            throw new ArgumentException($"{op}: {what} must have {rank} dims, got {t.ShapeString}");
    }

    /// <summary>The backend's own kernel for a capability, or null (no kernel, or decompositions forced on this thread).</summary>
    private static T? Kernel<T>(Tensor x) where T : class => Decompositions.Forced ? null : x.Backend as T;

    private static Tensor Like(Tensor x, int[]? shape = null, DType? dtype = null) =>
        Tensor.Empty(x.Backend, dtype ?? x.DType, shape ?? x.ShapeArray());

    /// <summary>numpy broadcasting of two shapes.</summary>
    public static int[] BroadcastShape(ReadOnlySpan<int> a, ReadOnlySpan<int> b)
    {
        int r = Math.Max(a.Length, b.Length);
        var shape = new int[r];
        for (int i = 0; i < r; i++)
        {
            int da = i - (r - a.Length) >= 0 ? a[i - (r - a.Length)] : 1;
            int db = i - (r - b.Length) >= 0 ? b[i - (r - b.Length)] : 1;
            if (da != db && da != 1 && db != 1)
                throw new ArgumentException($"shapes {Layout.Format(a)} and {Layout.Format(b)} do not broadcast");
            shape[i] = da == 1 ? db : da;
        }
        return shape;
    }
}
