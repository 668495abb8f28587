using CogVideoX.Engine;

namespace CogVideoX.Weights;

/// <summary>
/// Deterministic random weights made on the backend that asks for them, for benchmarks at full size without files:
/// a pool of 4 Mi standard-normal values is uploaded once per backend and dtype, and every tensor is a scaled window of
/// it (offset by a hash of its name). Matrices get a standard deviation of 1/√fan_in, biases 0.02, norm weights
/// 1 ± 0.05, so activations keep a sane range; speed does not depend on the values. The one random-weight
/// distribution: random checkpoints (<see cref="Checkpoint.Random"/>) and random-weight files (<see cref="WriteFile"/>)
/// both come from it.
/// </summary>
public sealed class RandomWeights : IDisposable
{
    private const int PoolSize = 1 << 22;
    private const int Window = PoolSize / 2;

    private readonly int _seed;
    private readonly Dictionary<(IBackend, DType), Tensor> _pools = new();

    internal RandomWeights(int seed) => _seed = seed;

    /// <summary>
    /// A .safetensors file of <paramref name="tensors"/> in <paramref name="dtype"/> holding the values a random
    /// checkpoint of <paramref name="seed"/> gives them, made and written one tensor at a time.
    /// </summary>
    public static void WriteFile(string path, IReadOnlyList<(string Name, int[] Shape)> tensors, DType dtype, int seed,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        using var random = new RandomWeights(seed);
        SafetensorsWriter.Write(path, tensors.Select(t => (t.Name, dtype, t.Shape)).ToList(),
            i => random.Make(tensors[i].Name, tensors[i].Shape, CpuBackend.Instance, dtype), metadata);
    }

    internal Tensor Make(string name, int[] shape, IBackend backend, DType dtype)
    {
        if (!dtype.IsFloat()) throw new WeightsException($"random weights: '{name}' was asked for as {dtype.Name()}; only float tensors can be made");
        var t = Tensor.Empty(backend, dtype, shape);
        long n = t.ElementCount;
        if (n == 0) return t;
        var (scale, shift) = Distribution(name, shape);
        var pool = Pool(backend, dtype);
        long start = (uint)StableHash(name) % (PoolSize - Window);
        using var flat = t.Reshape(-1);
        for (long at = 0; at < n; at += Window)
        {
            int length = (int)Math.Min(Window, n - at);
            using var source = pool.Narrow(0, (int)start, length);
            using var target = flat.Narrow(0, (int)at, length);
            backend.Affine(source, scale, shift, target);
        }
        return t;
    }

    private static (float Scale, float Shift) Distribution(string name, int[] shape)
    {
        if (shape.Length >= 2)
        {
            long fanIn = 1;
            for (int i = 1; i < shape.Length; i++) fanIn *= shape[i];
            return ((float)(1.0 / Math.Sqrt(Math.Max(fanIn, 1))), 0f);
        }
        return name.EndsWith("bias", StringComparison.Ordinal) ? (0.02f, 0f) : (0.05f, 1f);
    }

    private Tensor Pool(IBackend backend, DType dtype)
    {
        if (_pools.TryGetValue((backend, dtype), out var pool)) return pool;
        var values = new float[PoolSize];
        var random = new Random(_seed);
        for (int i = 0; i < PoolSize; i += 2)
        {
            // Box-Muller: two normal values from two uniform ones.
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            double r = Math.Sqrt(-2.0 * Math.Log(u1));
            values[i] = (float)(r * Math.Cos(2 * Math.PI * u2));
            values[i + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
        }
        pool = Tensor.FromArray(values, [PoolSize], backend, dtype);
        _pools[(backend, dtype)] = pool;
        return pool;
    }

    /// <summary>FNV-1a: the same window for the same name in every run (string.GetHashCode is randomised per process).</summary>
    private static int StableHash(string s)
    {
        uint h = 2166136261;
        foreach (char c in s) h = (h ^ c) * 16777619;
        return (int)h;
    }

    public void Dispose()
    {
        foreach (var p in _pools.Values) p.Dispose();
        _pools.Clear();
    }
}
