namespace CogVideoX.Diffusion;

/// <summary>
/// A port of PyTorch's CPU generator (<c>torch.Generator("cpu")</c>): the same seed gives the same stream of
/// numbers, and <see cref="Normal"/> / <see cref="Randn"/> give the float32 values <c>torch.randn(shape,
/// generator=g)</c> gives, bit for bit, so <c>--seed 42</c> starts from the latents diffusers starts from. Successive
/// draws continue one stream, as the DPM scheduler's per-step noise does after the initial latents.
/// </summary>
/// <remarks>
/// torch has two float32 paths, chosen by the element count: 16 or more contiguous elements take the vectorised
/// Box–Muller (all uniforms drawn first, then converted 16 at a time, the last 16 redrawn and recomputed when the count
/// is not a multiple of 16); fewer take the scalar double-precision Box–Muller, which caches its second value in the
/// generator for the next scalar draw. The vectorised path is torch's AVX2 kernel (x86-64 CPUs with AVX2, AVX-512
/// ones included: torch never dispatches <c>normal_</c> to AVX-512), reproduced in <see cref="CephesAvx2"/>.
/// Not thread-safe: one generator belongs to one run.
/// </remarks>
public sealed class TorchGenerator
{
    private const float TwoPiF = (float)(2.0 * Math.PI);
    private const int VectorBlock = 16;
    private const int HalfBlock = VectorBlock / 2;

    private readonly Mt19937 _engine;
    private double? _nextDoubleNormal;

    /// <summary>As <c>torch.Generator().manual_seed(seed)</c>; a negative seed is taken as its two's complement, as torch does.</summary>
    public TorchGenerator(long seed)
    {
        _engine = new Mt19937(unchecked((ulong)seed));
        InitialSeed = unchecked((ulong)seed);
    }

    /// <summary>The seed last given (torch's <c>initial_seed()</c>); only its low 32 bits shape the stream.</summary>
    public ulong InitialSeed { get; private set; }

    /// <summary>Restarts the stream as <c>manual_seed</c> does (the cached scalar normal is dropped too).</summary>
    public void ManualSeed(long seed)
    {
        InitialSeed = unchecked((ulong)seed);
        _engine.Seed(InitialSeed);
        _nextDoubleNormal = null;
    }

    /// <summary>One 32-bit word (torch's <c>random()</c>).</summary>
    public uint NextUInt32() => _engine.Next();

    /// <summary>Two words, the first as the high half (torch's <c>random64()</c>).</summary>
    public ulong NextUInt64()
    {
        ulong hi = _engine.Next();
        ulong lo = _engine.Next();
        return (hi << 32) | lo;
    }

    /// <summary>A float in [0, 1) from the low 24 bits of one word (torch's <c>uniform_real_distribution&lt;float&gt;</c>).</summary>
    public float NextUniformSingle() => (_engine.Next() & ((1u << 24) - 1)) * (1.0f / (1 << 24));

    /// <summary>A double in [0, 1) from the low 53 bits of <see cref="NextUInt64"/> (torch's <c>uniform_real_distribution&lt;double&gt;</c>).</summary>
    public double NextUniformDouble() => (NextUInt64() & ((1ul << 53) - 1)) * (1.0 / (1ul << 53));

    /// <summary>
    /// <c>torch.randn(shape, generator=this)</c> in float32, C order. The returned array has the shape's element count.
    /// </summary>
    public float[] Randn(params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"randn shape [{string.Join(", ", shape)}] has a negative dimension", nameof(shape));
            count *= d;
            if (count > Array.MaxLength) throw new ArgumentException($"randn shape [{string.Join(", ", shape)}] has more elements than one array holds", nameof(shape));
        }
        var values = new float[count];
        Normal(values);
        return values;
    }

    /// <summary>
    /// Fills a contiguous float32 buffer as <c>tensor.normal_(mean, std, generator=this)</c> does (what <c>randn</c>
    /// calls with mean 0, std 1).
    /// </summary>
    public void Normal(Span<float> destination, double mean = 0.0, double std = 1.0)
    {
        if (!(std >= 0.0)) throw new ArgumentOutOfRangeException(nameof(std), std, "normal expects std >= 0");
        if (destination.Length >= VectorBlock) NormalVectorised(destination, (float)mean, (float)std);
        else NormalScalar(destination, mean, std);
    }

    private void NormalVectorised(Span<float> data, float mean, float std)
    {
        int size = data.Length;
        for (int i = 0; i < size; i++) data[i] = NextUniformSingle();
        for (int i = 0; i + VectorBlock <= size; i += VectorBlock) BoxMuller16(data.Slice(i, VectorBlock), mean, std);
        if (size % VectorBlock != 0)
        {
            // torch redraws the last 16 uniforms (overwriting normals already made) and converts them again.
            var tail = data[(size - VectorBlock)..];
            for (int i = 0; i < VectorBlock; i++) tail[i] = NextUniformSingle();
            BoxMuller16(tail, mean, std);
        }
    }

    /// <summary>torch's <c>normal_fill_16_AVX2</c>: pairs (j, j+8) of uniforms become two normals each.</summary>
    private static void BoxMuller16(Span<float> block, float mean, float std)
    {
        for (int j = 0; j < HalfBlock; j++)
        {
            float u1 = 1f - block[j]; // [0, 1) → (0, 1] for the log
            float u2 = block[j + HalfBlock];
            float radius = MathF.Sqrt(-2f * CephesAvx2.Log(u1));
            CephesAvx2.SinCos(TwoPiF * u2, out float sin, out float cos);
            block[j] = MathF.FusedMultiplyAdd(radius * cos, std, mean);
            block[j + HalfBlock] = MathF.FusedMultiplyAdd(radius * sin, std, mean);
        }
    }

    private void NormalScalar(Span<float> data, double mean, double std)
    {
        for (int i = 0; i < data.Length; i++)
        {
            double z;
            if (_nextDoubleNormal is double cached)
            {
                z = cached;
                _nextDoubleNormal = null;
            }
            else
            {
                double u1 = NextUniformDouble();
                double u2 = NextUniformDouble();
                // torch takes log1p(-u2); 1 − u2 is exact for a 53-bit uniform, so log(1 − u2) is the same number up
                // to libm's last-bit rounding, which the float32 result does not see.
                double r = Math.Sqrt(-2.0 * Math.Log(1.0 - u2));
                double theta = 2.0 * Math.PI * u1;
                _nextDoubleNormal = r * Math.Sin(theta);
                z = r * Math.Cos(theta);
            }
            data[i] = (float)Math.FusedMultiplyAdd(z, std, mean);
        }
    }
}
