namespace CogVideoX.Engine.Testing;

/// <summary>
/// One op case: builds its inputs from deterministic host data on a given backend and returns the output. The same
/// case run on two backends sees the same input values, so their outputs can be compared element by element.
/// A decomposed case runs its capability on the backend under test as the reference decomposition
/// (<see cref="Decompositions"/>), so it checks the decomposition there against the reference backend's kernel.
/// </summary>
public sealed record OpCase(string Op, DType DType, string Sizes, Func<OpInputs, Tensor> Body, double? Tolerance = null, bool Decomposed = false)
{
    /// <summary>Normalised-error bound for this case: its own, or the dtype's default.</summary>
    public double Bound => Tolerance ?? OpCatalogue.DefaultTolerance(DType);

    public override string ToString() => $"{Op} {DType.Name()} {Sizes}";
}

/// <summary>The result of one case on a backend under test against the reference backend.</summary>
public sealed record OpComparison(OpCase Case, double MaxAbsError, double NormalisedError, bool Passed, string? Failure, TimeSpan Elapsed);

/// <summary>
/// Creates a case's inputs on one backend. Every call draws from the case's own seeded generator in call order,
/// so the n-th input of a case is identical on every backend.
/// </summary>
public sealed class OpInputs
{
    // SplitMix64: fast, and the same sequence on every machine (large timing inputs need millions of values).
    private SplitMix64 _random;

    public OpInputs(IBackend backend, DType dtype, int seed)
    {
        Backend = backend;
        DType = dtype;
        _random = new SplitMix64(0x9E3779B97F4A7C15UL * (ulong)(seed + 1));
    }

    public IBackend Backend { get; }

    public DType DType { get; }

    /// <summary>Uniform values in [lo, hi) in the case's dtype.</summary>
    public Tensor Uniform(int[] shape, float lo = -1f, float hi = 1f, DType? dtype = null)
    {
        long n = 1;
        foreach (var d in shape) n *= d;
        var data = new float[n];
        for (long i = 0; i < n; i++) data[i] = lo + _random.NextSingle() * (hi - lo);
        return Tensor.FromArray(data, shape, Backend, dtype ?? DType);
    }

    public Tensor Rand(params int[] shape) => Uniform(shape);

    /// <summary>Integers in [0, max) as I64, with the first and last allowed value always present.</summary>
    public Tensor Ids(int max, params int[] shape)
    {
        long n = 1;
        foreach (var d in shape) n *= d;
        var ids = new long[n];
        for (long i = 0; i < n; i++) ids[i] = (long)(_random.NextSingle() * max) % max;
        if (n > 0) ids[0] = 0;
        if (n > 1) ids[n - 1] = max - 1;
        return Tensor.FromArray(ids, shape, Backend);
    }

    public Tensor Zeros(params int[] shape) => Tensor.Zeros(Backend, DType, shape);
}

/// <summary>
/// Every backend op over awkward sizes (1, primes, non-multiples of 8/16/32/64), strided and broadcast inputs and
/// each float dtype, in the manner of ggml's test-backend-ops: run a case on a backend under test and on the CPU
/// reference and compare by normalised error ‖a − b‖ / ‖b‖.
/// </summary>
public static class OpCatalogue
{
    private static readonly DType[] Floats = [DType.F32, DType.F16, DType.BF16];

    /// <summary>float32: both sides compute in float32, so only rounding order differs. Half types: one rounding of every input and output.</summary>
    public static double DefaultTolerance(DType dtype) => dtype == DType.F32 ? 1e-5 : 1e-2;

    public static IReadOnlyList<OpCase> All()
    {
        var cases = new List<OpCase>();
        void Add(string op, string sizes, Func<OpInputs, Tensor> body, double? f32Tolerance = null)
        {
            foreach (var dt in Floats)
                cases.Add(new OpCase(op, dt, sizes, body, dt == DType.F32 ? f32Tolerance : null));
        }

        AddLayout(cases, Add);
        AddElementwise(Add);
        AddRows(Add);
        AddProducts(Add);
        AddAttention(Add);
        AddSage8Attention(cases);
        AddFp8(cases, Add);
        AddFp8Norm(cases);
        // Every capability's cases once more as its decomposition: the fused kernel and the decomposition must agree.
        var decomposed = cases.Where(c => CapabilityOf(c.Op) is { } capability && HasDecomposition(capability))
            .Select(c => c with { Sizes = "decomposed " + c.Sizes, Decomposed = true })
            .ToList();
        cases.AddRange(decomposed);
        return cases;
    }

    /// <summary>The capability a case's op runs through, or null for core ops.</summary>
    public static Capability? CapabilityOf(string op) => op switch
    {
        "linear" => Capability.Linear,
        "softmax" => Capability.Softmax,
        "layer_norm" => Capability.LayerNorm,
        "rms_norm" => Capability.RmsNorm,
        "group_norm" => Capability.GroupNorm,
        "modulated_layer_norm" => Capability.ModulatedLayerNorm,
        "add_mul" => Capability.GatedResidual,
        "spatial_group_norm" => Capability.SpatialGroupNorm,
        "upsample" => Capability.UpsampleNearest,
        "attention" => Capability.Attention,
        "rotary" => Capability.Rotary,
        "layer_norm_rotary" => Capability.LayerNormRotary,
        "sage8_attention" or "sage8_attention_prepass" => Capability.Sage8Attention,
        "linear_fp8" or "fp8_quantize" => Capability.Fp8Linear,
        "modulated_layer_norm_fp8" => Capability.ModulatedLayerNormFp8,
        _ => null,
    };

    /// <summary>
    /// Whether a capability has a reference decomposition into core ops. FP8 linears have none (E4M3 rounding is no
    /// core op): their reference is the CPU backend's emulation, and a backend without the kernel refuses them. The
    /// norm written as FP8 codes decomposes into the norm and the FP8 quantization, so it needs that kernel too (its
    /// cases compare it with the two on the same backend).
    /// </summary>
    public static bool HasDecomposition(Capability capability) => capability is not (Capability.Fp8Linear or Capability.ModulatedLayerNormFp8);

    private static void AddLayout(List<OpCase> cases, Action<string, string, Func<OpInputs, Tensor>, double?> add)
    {
        void Add(string op, string sizes, Func<OpInputs, Tensor> body) => add(op, sizes, body, null);
        Add("copy", "[5,7,11] permute(2,0,1)", c => { using var x = c.Rand(5, 7, 11); using var p = x.Permute(2, 0, 1); return p.Contiguous(); });
        Add("copy", "[33,17] transpose", c => { using var x = c.Rand(33, 17); using var p = x.Transpose(0, 1); return p.Contiguous(); });
        Add("copy", "[9,40] narrow(1,3,29) slice(0,1,9,2)", c =>
        {
            using var x = c.Rand(9, 40);
            using var n = x.Narrow(1, 3, 29);
            using var s = n.Slice(0, 1, 9, 2);
            return s.Contiguous();
        });
        Add("copy", "[1,13] broadcast [7,13]", c => { using var x = c.Rand(1, 13); using var b = x.BroadcastTo(7, 13); return b.Contiguous(); });
        Add("copy", "[2,3,1,4,5,3] permute(5,3,1,0,4,2)", c =>
        {
            using var x = c.Rand(2, 3, 1, 4, 5, 3);
            using var p = x.Permute(5, 3, 1, 0, 4, 2);
            return p.Contiguous();
        });
        Add("copy", "[3,2,5,2,3,2,2] permute rank 7", c =>
        {
            using var x = c.Rand(3, 2, 5, 2, 3, 2, 2);
            using var p = x.Permute(6, 0, 5, 1, 4, 2, 3);
            return p.Contiguous();
        });
        Add("copy", "into [10,12] view slice(0,0,10,3) narrow(1,2,7)", c =>
        {
            var y = c.Zeros(10, 12);
            using var src = c.Rand(4, 7);
            using var a = y.Slice(0, 0, 10, 3);
            using var v = a.Narrow(1, 2, 7);
            src.CopyTo(v);
            return y;
        });
        foreach (var from in Floats)
            foreach (var to in Floats)
            {
                if (from == to) continue;
                cases.Add(new OpCase("convert", to, $"{from.Name()}→{to.Name()} [23,19] transposed", c =>
                {
                    using var x = c.Uniform([23, 19], -3f, 3f, from);
                    using var t = x.Transpose(0, 1);
                    return t.To(to);
                }));
            }
        cases.Add(new OpCase("copy", DType.I64, "[6,35] transpose", c =>
        {
            using var ids = c.Ids(1000, 6, 35);
            using var t = ids.Transpose(0, 1);
            return t.Contiguous();
        }));
        Add("fill", "[17,5] = 0.3", c => Tensor.Full(c.Backend, c.DType, 0.3, 17, 5));
        Add("fill", "[6,10] view slice(1,1,10,3) = -2.5", c =>
        {
            var y = c.Zeros(6, 10);
            using var v = y.Slice(1, 1, 10, 3);
            c.Backend.Fill(v, -2.5);
            return y;
        });
        Add("concat", "dim 1: [3,4,5] + [3,2,5]ᵀ-view", c =>
        {
            using var a = c.Rand(3, 4, 5);
            using var b0 = c.Rand(3, 5, 2);
            using var b = b0.Transpose(1, 2);
            return Ops.Concat(1, a, b);
        });
        Add("pad", "[2,3,7] (1,0)(2,1)(0,3) value 0.5", c => { using var x = c.Rand(2, 3, 7); return x.Pad([(1, 0), (2, 1), (0, 3)], 0.5f); });
        // The VAE encoder's down-sampler: one zero row below and column right, after compress_time's average of frame
        // pairs read through strided time views (the first frame of an odd count kept).
        Add("pad", "[1,5,3,9,13] (0,0)(0,0)(0,0)(0,1)(0,1)", c => { using var x = c.Rand(1, 5, 3, 9, 13); return x.Pad([(0, 0), (0, 0), (0, 0), (0, 1), (0, 1)]); });
        Add("binary", "[1,6,9,5,7] time pairs slice(2,1,9,2) + slice(2,2,9,2), ×½", c =>
        {
            using var x = c.Rand(1, 6, 9, 5, 7);
            using var even = x.Slice(2, 1, 9, 2);
            using var odd = x.Slice(2, 2, 9, 2);
            using var sum = even.Add(odd);
            return sum.Scale(0.5f);
        });
        Add("upsample", "[1,3,5,7] ×(2,2)", c => { using var x = c.Rand(1, 3, 5, 7); return x.UpsampleNearest(2, 2); });
        Add("upsample", "[1,4,3,5,4] ×(2,2,2)", c => { using var x = c.Rand(1, 4, 3, 5, 4); return x.UpsampleNearest(2, 2, 2); });
        Add("upsample", "[2,3,2,3,12] ×(1,4,2)", c => { using var x = c.Rand(2, 3, 2, 3, 12); return x.UpsampleNearest(1, 4, 2); });
        Add("repeat", "[2,3,5] ×(2,1,3)", c => { using var x = c.Rand(2, 3, 5); return x.Repeat(2, 1, 3); });
        // Inner dims that are multiples of 8 take the GPU kernels' 16-byte paths.
        Add("copy", "[2,17,3,64] permute(0,2,1,3)", c => { using var x = c.Rand(2, 17, 3, 64); using var p = x.Permute(0, 2, 1, 3); return p.Contiguous(); });
        Add("copy", "[3,40,24] narrow(1,8,24)", c => { using var x = c.Rand(3, 40, 24); using var n = x.Narrow(1, 8, 24); return n.Contiguous(); });
        Add("gather", "table [50,33], ids [7]", c => { using var t = c.Rand(50, 33); using var ids = c.Ids(50, 7); return t.Embedding(ids); });
        Add("gather", "table [11,64], ids [2,3]", c => { using var t = c.Rand(11, 64); using var ids = c.Ids(11, 2, 3); return t.Embedding(ids); });
    }

    private static void AddElementwise(Action<string, string, Func<OpInputs, Tensor>, double?> add)
    {
        void Add(string op, string sizes, Func<OpInputs, Tensor> body) => add(op, sizes, body, null);
        foreach (var op in Enum.GetValues<UnaryOp>())
        {
            (float lo, float hi) = op switch
            {
                UnaryOp.Log or UnaryOp.Sqrt or UnaryOp.Rsqrt => (0.05f, 4f),
                UnaryOp.Exp => (-4f, 4f),
                _ => (-3f, 3f),
            };
            Add(op.ToString().ToLowerInvariant(), "[37,41] transposed", c =>
            {
                using var x = c.Uniform([37, 41], lo, hi);
                using var t = x.Transpose(0, 1);
                return t.Unary(op);
            });
        }
        Add("silu", "[1]", c => { using var x = c.Uniform([1], -3f, 3f); return x.Silu(); });
        Add("silu", "[4096] contiguous", c => { using var x = c.Uniform([4096], -3f, 3f); return x.Silu(); });
        Add("add", "[64,1920] + [1920] broadcast row", c => { using var a = c.Rand(64, 1920); using var b = c.Rand(1920); return a.Add(b); });
        Add("mul", "[3,5,48] · [3,5,48] contiguous", c => { using var a = c.Rand(3, 5, 48); using var b = c.Rand(3, 5, 48); return a.Mul(b); });
        Add("add_mul", "[2,13,64] + [2,13,64] ⊙ gate [2,1,64]", c =>
        {
            using var x = c.Rand(2, 13, 64);
            using var h = c.Rand(2, 13, 64);
            using var g = c.Rand(2, 1, 64);
            return x.AddMul(h, g);
        });
        Add("add_mul", "in place on narrow(1,3,9) of [2,12,40], gate from chunk of [2,120]", c =>
        {
            // The transformer's gated residual: hidden[:, text:] += h[:, text:] ⊙ gate, gate a chunk of the modulation.
            var x = c.Rand(2, 12, 40);
            using var h = c.Rand(2, 12, 40);
            using var modulation = c.Rand(2, 120);
            using var gate = modulation.Narrow(1, 40, 40);
            using var g = gate.Unsqueeze(1);
            using var target = x.Narrow(1, 3, 9);
            using var part = h.Narrow(1, 3, 9);
            target.AddMulInto(part, g, target);
            return x;
        });
        Add("add_mul", "[3,7,33] ⊙ [33] (odd width)", c => { using var x = c.Rand(3, 7, 33); using var h = c.Rand(3, 7, 33); using var g = c.Rand(33); return x.AddMul(h, g); });
        Add("gelu_tanh", "[100003]", c => { using var x = c.Uniform([100003], -5f, 5f); return x.GeluTanh(); });
        Add("affine", "[67,33] ×1.7 −0.3", c => { using var x = c.Rand(67, 33); return x.Affine(1.7f, -0.3f); });
        Add("clamp", "[67,33] [−0.5, 0.25]", c => { using var x = c.Rand(67, 33); return x.Clamp(-0.5f, 0.25f); });
        foreach (var op in Enum.GetValues<BinaryOp>())
        {
            string name = op.ToString().ToLowerInvariant();
            (float lo, float hi) = op == BinaryOp.Div ? (0.5f, 2f) : (-1f, 1f);
            Add(name, "[29,31] · [29,31]", c => { using var a = c.Rand(29, 31); using var b = c.Uniform([29, 31], lo, hi); return a.Binary(b, op); });
            Add(name, "[7,1,13] · [5,1] broadcast", c => { using var a = c.Rand(7, 1, 13); using var b = c.Uniform([5, 1], lo, hi); return a.Binary(b, op); });
            Add(name, "[19,23]ᵀ · [23]", c =>
            {
                using var a0 = c.Rand(19, 23);
                using var a = a0.Transpose(0, 1);
                using var b = c.Uniform([19], lo, hi);
                return a.Binary(b, op);
            });
        }
    }

    private static void AddRows(Action<string, string, Func<OpInputs, Tensor>, double?> add)
    {
        void Add(string op, string sizes, Func<OpInputs, Tensor> body) => add(op, sizes, body, null);
        foreach (var op in Enum.GetValues<ReduceOp>())
        {
            string name = op.ToString().ToLowerInvariant();
            Add(name, "[13]", c => { using var x = c.Rand(13); return x.Reduce(op); });
            Add(name, "[7,1000]", c => { using var x = c.Rand(7, 1000); return x.Reduce(op); });
            Add(name, "[33,17]ᵀ", c => { using var x0 = c.Rand(33, 17); using var x = x0.Transpose(0, 1); return x.Reduce(op); });
        }
        Add("softmax", "[1,1]", c => { using var x = c.Rand(1, 1); return x.Softmax(); });
        Add("softmax", "[7,33]", c => { using var x = c.Uniform([7, 33], -8f, 8f); return x.Softmax(); });
        Add("softmax", "[3,5,1000]", c => { using var x = c.Uniform([3, 5, 1000], -8f, 8f); return x.Softmax(); });
        Add("softmax", "[17,19]ᵀ", c => { using var x0 = c.Rand(17, 19); using var x = x0.Transpose(0, 1); return x.Softmax(); });

        Add("layer_norm", "[1,1] affine", c => { using var x = c.Rand(1, 1); using var g = c.Rand(1); using var b = c.Rand(1); return x.LayerNorm(g, b, 1e-5f); });
        Add("layer_norm", "[7,33]", c => { using var x = c.Uniform([7, 33], -2f, 3f); return x.LayerNorm(null, null, 1e-6f); });
        Add("layer_norm", "[5,1027] affine", c => { using var x = c.Rand(5, 1027); using var g = c.Rand(1027); using var b = c.Rand(1027); return x.LayerNorm(g, b, 1e-5f); });
        Add("layer_norm", "[9,16]ᵀ affine", c =>
        {
            using var x0 = c.Rand(16, 9);
            using var x = x0.Transpose(0, 1);
            using var g = c.Rand(16);
            using var b = c.Rand(16);
            return x.LayerNorm(g, b, 1e-5f);
        });
        foreach (var d in new[] { 40, 64, 1920, 3072, 4096 })
            Add("layer_norm", $"[6,{d}] affine", c => { using var x = c.Uniform([6, d], -2f, 3f); using var g = c.Rand(d); using var b = c.Rand(d); return x.LayerNorm(g, b, 1e-5f); });
        Add("layer_norm", "heads of packed [2,37,3,3,64] affine", c =>
        {
            // The transformer's query/key norm: a [B, H, N, hd] view of the QKV projection, normalised without a copy.
            using var qkv = c.Rand(2, 37, 3, 3, 64);
            using var q = qkv.Select(2, 1);
            using var heads = q.Permute(0, 2, 1, 3);
            using var g = c.Rand(64);
            using var b = c.Rand(64);
            return heads.LayerNorm(g, b, 1e-6f);
        });
        Add("modulated_layer_norm", "[2,11,64] scale/shift [2,1,64] affine", c =>
        {
            using var x = c.Uniform([2, 11, 64], -2f, 3f);
            using var g = c.Rand(64);
            using var b = c.Rand(64);
            using var scale = c.Rand(2, 1, 64);
            using var shift = c.Rand(2, 1, 64);
            return x.ModulatedLayerNorm(g, b, scale, shift, 1e-5f);
        });
        Add("modulated_layer_norm", "narrow(1,2,7) of [2,9,48] into a view, modulation chunks of [2,288]", c =>
        {
            // LayerNormZero's text/video split: each part normalised straight into its rows of the output.
            using var x = c.Uniform([2, 9, 48], -2f, 3f);
            var y = c.Zeros(2, 9, 48);
            using var modulation = c.Rand(2, 288);
            using var shift0 = modulation.Narrow(1, 96, 48);
            using var scale0 = modulation.Narrow(1, 144, 48);
            using var shift = shift0.Unsqueeze(1);
            using var scale = scale0.Unsqueeze(1);
            using var part = x.Narrow(1, 2, 7);
            using var target = y.Narrow(1, 2, 7);
            part.ModulatedLayerNormInto(null, null, scale, shift, 1e-6f, target);
            return y;
        });
        Add("modulated_layer_norm", "[3,5,33] scale/shift [3,1,33] (odd width)", c =>
        {
            using var x = c.Rand(3, 5, 33);
            using var g = c.Rand(33);
            using var b = c.Rand(33);
            using var scale = c.Rand(3, 1, 33);
            using var shift = c.Rand(3, 1, 33);
            return x.ModulatedLayerNorm(g, b, scale, shift, 1e-5f);
        });
        Add("rms_norm", "[7,33]", c => { using var x = c.Rand(7, 33); using var g = c.Rand(33); return x.RmsNorm(g, 1e-6f); });
        Add("rms_norm", "[5,1027]", c => { using var x = c.Rand(5, 1027); using var g = c.Rand(1027); return x.RmsNorm(g, 1e-6f); });
        Add("rms_norm", "[3,64] no gamma", c => { using var x = c.Rand(3, 64); return x.RmsNorm(null, 1e-6f); });

        Add("group_norm", "[2,12,5,7] g3 affine silu", c =>
        {
            using var x = c.Uniform([2, 12, 5, 7], -2f, 3f);
            using var g = c.Rand(12);
            using var b = c.Rand(12);
            return x.GroupNorm(3, g, b, 1e-6f, Activation.Silu);
        });
        Add("group_norm", "[1,32,3,5,7] g32 affine", c =>
        {
            using var x = c.Rand(1, 32, 3, 5, 7);
            using var g = c.Rand(32);
            using var b = c.Rand(32);
            return x.GroupNorm(32, g, b, 1e-6f);
        });
        Add("group_norm", "[3,6,1] g1", c => { using var x = c.Rand(3, 6, 1); return x.GroupNorm(1, null, null, 1e-5f); });
        Add("group_norm", "[1,64,4,9,11] g32 gelu", c =>
        {
            using var x = c.Rand(1, 64, 4, 9, 11);
            using var g = c.Rand(64);
            using var b = c.Rand(64);
            return x.GroupNorm(32, g, b, 1e-6f, Activation.Gelu);
        });
        Add("group_norm", "[1,128,3,30,45] g32 silu", c =>
        {
            using var x = c.Uniform([1, 128, 3, 30, 45], -2f, 2f);
            using var g = c.Rand(128);
            using var b = c.Rand(128);
            return x.GroupNorm(32, g, b, 1e-6f, Activation.Silu);
        });
        Add("group_norm", "[1,32,2,6,8] g32 silu (spatial multiple of 8)", c =>
        {
            using var x = c.Uniform([1, 32, 2, 6, 8], -2f, 2f);
            using var g = c.Rand(32);
            using var b = c.Rand(32);
            return x.GroupNorm(32, g, b, 1e-6f, Activation.Silu);
        });
        foreach (var (x, z, act) in new (int[], int[], Activation)[]
        {
            ([1, 32, 3, 16, 24], [1, 32, 3, 2, 3], Activation.Silu),
            ([2, 8, 2, 6, 16], [2, 8, 2, 3, 8], Activation.None),
            ([1, 16, 1, 4, 8], [1, 16, 1, 4, 8], Activation.Silu),
            ([1, 8, 2, 6, 9], [1, 8, 2, 3, 3], Activation.Silu),
        })
        {
            Add("spatial_group_norm", $"x {Layout.Format(x)} modulation {Layout.Format(z)} {act.ToString().ToLowerInvariant()}", c =>
            {
                using var xt = c.Uniform(x, -2f, 3f);
                using var g = c.Rand(x[1]);
                using var b = c.Rand(x[1]);
                using var scale = c.Rand(z);
                using var shift = c.Rand(z);
                return xt.SpatialGroupNorm(Math.Min(8, x[1]), g, b, scale, shift, 1e-6f, act);
            });
        }
        Add("rotary", "in place on narrow(2,3,14) of [2,3,17,64]", c =>
        {
            // The 5b transformer rotates only the video tokens of q and k, in place.
            var x = c.Rand(2, 3, 17, 64);
            using var cos = c.Rand(14, 64);
            using var sin = c.Rand(14, 64);
            using var video = x.Narrow(2, 3, 14);
            video.RotaryInto(cos, sin, video);
            return x;
        });
        // Attention's q/k: a head view of a [B, N, 3, H, D] projection, normed per head, the video tokens rotated.
        foreach (var (n, m, d) in new[] { (17, 14, 64), (300, 300, 64), (9, 0, 64), (5, 3, 12), (40, 33, 128) })
        {
            Add("layer_norm_rotary", $"qkv view [2,{n},3,3,{d}] → [2,3,{n},{d}], last {m} rotated", c =>
            {
                using var qkv = c.Uniform([2, n, 3, 3, d], -2f, 3f);
                using var q = qkv.Select(2, 0).Permute(0, 2, 1, 3);
                using var g = c.Rand(d);
                using var b = c.Rand(d);
                using var cos = c.Rand(m, d);
                using var sin = c.Rand(m, d);
                return q.LayerNormRotary(g, b, 1e-6f, cos, sin);
            });
        }
        Add("layer_norm_rotary", "contiguous [1,2,20,64], no affine, last 16 rotated", c =>
        {
            using var x = c.Rand(1, 2, 20, 64);
            using var cos = c.Rand(16, 64);
            using var sin = c.Rand(16, 64);
            return x.LayerNormRotary(null, null, 1e-5f, cos, sin);
        });
        Add("rotary", "x [1,2,17,64]", c =>
        {
            using var x = c.Rand(1, 2, 17, 64);
            using var cos = c.Rand(17, 64);
            using var sin = c.Rand(17, 64);
            return x.Rotary(cos, sin);
        });
        Add("rotary", "x [1,2,300,64] (a (b, h) block over several thread blocks)", c =>
        {
            using var x = c.Rand(1, 2, 300, 64);
            using var cos = c.Rand(300, 64);
            using var sin = c.Rand(300, 64);
            return x.Rotary(cos, sin);
        });
        Add("rotary", "x [2,2,5,12] (head dim not a multiple of 8: pair by pair)", c =>
        {
            using var x = c.Rand(2, 2, 5, 12);
            using var cos = c.Rand(5, 12);
            using var sin = c.Rand(5, 12);
            return x.Rotary(cos, sin);
        });
        Add("rotary", "x [2,9,3,32] permuted to [2,3,9,32]", c =>
        {
            using var x0 = c.Rand(2, 9, 3, 32);
            using var x = x0.Permute(0, 2, 1, 3);
            using var cos = c.Rand(9, 32);
            using var sin = c.Rand(9, 32);
            return x.Rotary(cos, sin);
        });
    }

    private static void AddProducts(Action<string, string, Func<OpInputs, Tensor>, double?> add)
    {
        void Add(string op, string sizes, Func<OpInputs, Tensor> body) => add(op, sizes, body, null);
        foreach (var (m, k, n, bias, act) in new (int, int, int, bool, Activation)[]
        {
            (1, 1, 1, false, Activation.None),
            (7, 13, 5, true, Activation.None),
            (33, 64, 17, true, Activation.GeluTanh),
            (130, 257, 95, true, Activation.Silu),
            (16, 96, 48, false, Activation.Relu),
            (9, 40, 11, true, Activation.Gelu),
            (3, 8, 24, false, Activation.GeluTanh),
            (515, 320, 640, true, Activation.GeluTanh),
        })
        {
            Add("linear", $"[{m},{k}]·[{n},{k}]ᵀ{(bias ? " +bias" : "")}{(act == Activation.None ? "" : " " + act.ToString().ToLowerInvariant())}", c =>
            {
                using var x = c.Rand(m, k);
                using var w = c.Uniform([n, k], -0.5f, 0.5f);
                using var b = bias ? c.Rand(n) : null;
                return x.Linear(w, b, act);
            });
        }
        Add("linear", "[2,7,24]·([24,10] transposed view) +bias", c =>
        {
            using var x = c.Rand(2, 7, 24);
            using var w0 = c.Rand(24, 10);
            using var w = w0.Transpose(0, 1);
            using var b = c.Rand(10);
            return x.Linear(w, b);
        });
        Add("linear", "[11,30] narrowed from [11,33]", c =>
        {
            using var x0 = c.Rand(11, 33);
            using var x = x0.Narrow(1, 2, 30);
            using var w = c.Rand(6, 30);
            return x.Linear(w);
        });
        Add("matmul", "[1,1]·[1,1]", c => { using var a = c.Rand(1, 1); using var b = c.Rand(1, 1); return a.MatMul(b); });
        Add("matmul", "[3,17,33]·[3,33,7]", c => { using var a = c.Rand(3, 17, 33); using var b = c.Rand(3, 33, 7); return a.MatMul(b); });
        Add("matmul", "[2,1,5,9]·[1,3,9,11] broadcast", c => { using var a = c.Rand(2, 1, 5, 9); using var b = c.Rand(1, 3, 9, 11); return a.MatMul(b); });
        Add("matmul", "[4,16,24]·[4,40,24]ᵀ", c =>
        {
            using var a = c.Rand(4, 16, 24);
            using var b0 = c.Rand(4, 40, 24);
            using var b = b0.Transpose(1, 2);
            return a.MatMul(b);
        });
        Add("matmul", "[129,257]·[257,67]", c => { using var a = c.Rand(129, 257); using var b = c.Rand(257, 67); return a.MatMul(b); });
        Add("matmul", "[2,3,31,8]·[2,3,8,29] permuted", c =>
        {
            using var a0 = c.Rand(2, 31, 3, 8);
            using var a = a0.Permute(0, 2, 1, 3);
            using var b = c.Rand(2, 3, 8, 29);
            return a.MatMul(b);
        });

        foreach (var (x, w, p, bias) in new (int[], int[], Conv3dParams, bool)[]
        {
            ([1, 3, 4, 6, 5], [4, 3, 3, 3, 3], new Conv3dParams(1, 1, 1, 1, 1, 1), true),
            ([2, 5, 3, 7, 9], [7, 5, 1, 3, 3], new Conv3dParams(1, 2, 2, 0, 1, 1), false),
            ([1, 8, 5, 6, 7], [6, 8, 1, 1, 1], new Conv3dParams(1, 1, 1, 0, 0, 0), true),
            ([1, 4, 9, 8, 8], [4, 4, 3, 3, 3], new Conv3dParams(2, 2, 2, 0, 1, 1), true),
            ([1, 32, 3, 30, 45], [32, 32, 3, 3, 3], new Conv3dParams(1, 1, 1, 0, 1, 1), true),
            // The VAE encoder's down-sampler: a per-frame 3×3 kernel of stride 2 over a padded odd-sized input.
            ([1, 6, 3, 10, 14], [6, 6, 1, 3, 3], new Conv3dParams(1, 2, 2, 0, 0, 0), true),
        })
        {
            Add("conv3d", $"x {Layout.Format(x)} w {Layout.Format(w)} s({p.StrideT},{p.StrideH},{p.StrideW}) p({p.PadT},{p.PadH},{p.PadW})", c =>
            {
                using var xt = c.Rand(x);
                using var wt = c.Uniform(w, -0.3f, 0.3f);
                using var bt = bias ? c.Rand(w[0]) : null;
                return xt.Conv3d(wt, bt, p);
            });
        }
        Add("conv2d", "x [2,3,11,13] w [5,3,3,3] s2 p1", c =>
        {
            using var x = c.Rand(2, 3, 11, 13);
            using var w = c.Rand(5, 3, 3, 3);
            using var b = c.Rand(5);
            return x.Conv2d(w, b, 2, 1);
        });
    }

    private static void AddAttention(Action<string, string, Func<OpInputs, Tensor>, double?> add)
    {
        void Add(string op, string sizes, Func<OpInputs, Tensor> body) => add(op, sizes, body, null);
        foreach (var (b, h, nq, nk, d, bias) in new (int, int, int, int, int, int[]?)[]
        {
            (1, 1, 1, 1, 64, null),
            (2, 3, 17, 33, 64, null),
            (1, 2, 77, 77, 64, [1, 1, 77, 77]),
            (1, 2, 130, 67, 40, [1, 2, 130, 67]),
            (1, 1, 65, 129, 128, null),
            (1, 2, 9, 9, 96, [9, 9]),
            (2, 2, 5, 7, 8, null),
            (1, 1, 33, 40, 160, null),
            (1, 2, 300, 517, 64, null),
            (1, 3, 45, 70, 20, [1, 3, 45, 70]),
        })
        {
            string sizes = $"q [{b},{h},{nq},{d}] kv [{nk}]{(bias is null ? "" : " bias " + Layout.Format(bias))}";
            Add("attention", sizes, c =>
            {
                using var q = c.Rand(b, h, nq, d);
                using var k = c.Rand(b, h, nk, d);
                using var v = c.Rand(b, h, nk, d);
                using var bt = bias is null ? null : c.Uniform(bias, -2f, 2f);
                return Ops.Attention(q, k, v, bt, 1f / MathF.Sqrt(d));
            });
        }
        Add("attention", "q,k,v narrowed from [1,2,50,66] (rows not 16-byte aligned)", c =>
        {
            using var q0 = c.Rand(1, 2, 50, 66);
            using var k0 = c.Rand(1, 2, 50, 66);
            using var v0 = c.Rand(1, 2, 50, 66);
            using var q = q0.Narrow(3, 1, 64);
            using var k = k0.Narrow(3, 1, 64);
            using var v = v0.Narrow(3, 1, 64);
            return Ops.Attention(q, k, v, null, 0.125f);
        });
        Add("attention", "q,k,v from packed qkv [2,70,3,2,64], y view of [2,70,2,64]", c =>
        {
            // Exactly the transformer's layout: one QKV projection [B, N, 3, H, D], heads merged by the output view.
            using var qkv = c.Rand(2, 70, 3, 2, 64);
            using var q0 = qkv.Select(2, 0);
            using var k0 = qkv.Select(2, 1);
            using var v0 = qkv.Select(2, 2);
            using var q = q0.Permute(0, 2, 1, 3);
            using var k = k0.Permute(0, 2, 1, 3);
            using var v = v0.Permute(0, 2, 1, 3);
            var y = c.Zeros(2, 70, 2, 64);
            using var yv = y.Permute(0, 2, 1, 3);
            Ops.AttentionInto(q, k, v, null, 0.125f, yv);
            return y;
        });
        Add("attention", "q,k,v,y strided views of [1,70,2,64]", c =>
            OnHeadViews(c, 1, 70, 2, 64, (q, k, v, y) => Ops.AttentionInto(q, k, v, null, 0.125f, y)));
    }

    /// <summary>
    /// An attention run on the transformer's layout: q, k, v and y are [B, N, H, D] tensors (projections as they come)
    /// viewed as [B, H, N, D] without a copy; returns y.
    /// </summary>
    private static Tensor OnHeadViews(OpInputs c, int b, int n, int heads, int d, Action<Tensor, Tensor, Tensor, Tensor> attention)
    {
        using var q0 = c.Rand(b, n, heads, d);
        using var k0 = c.Rand(b, n, heads, d);
        using var v0 = c.Rand(b, n, heads, d);
        using var q = q0.Permute(0, 2, 1, 3);
        using var k = k0.Permute(0, 2, 1, 3);
        using var v = v0.Permute(0, 2, 1, 3);
        var y = c.Zeros(b, n, heads, d);
        using var yv = y.Permute(0, 2, 1, 3);
        attention(q, k, v, yv);
        return y;
    }

    /// <summary>
    /// The 8-bit attention (an opt-in mode; F16/BF16 and head dim 64 only, as its GPU kernels): each backend kernel
    /// (<see cref="Sage8Kernel"/>: the sm_90 wgmma kernel and the portable mma.sync one, forced per case and named first
    /// in its sizes, the portable one first so that a fault of the newer one cannot hide its results; a backend with one
    /// kernel ignores the choice) against the CPU's exact emulation of the same
    /// quantization. The quantized steps agree bit for bit; the float sums run in another order (K's mean, exp2), which
    /// moves a rare INT8 or E4M3 value across a rounding tie, so the half types' bound applies. Keys with a channel bias
    /// (K smoothing at work); partial tiles of rows and keys; more key tiles than the wgmma kernel's stages (its ring
    /// wraps) and more rows than one of its blocks; the transformer's strided views.
    /// </summary>
    private static void AddSage8Attention(List<OpCase> cases)
    {
        foreach (var kernel in new[] { Sage8Kernel.MmaSync, Sage8Kernel.Wgmma })
        {
            string name = Sage8KernelChoice.Name(kernel);
            foreach (var dt in new[] { DType.F16, DType.BF16 })
            {
                // Softmax scale 0.125 with K biased (smoothing at work); then large scores for the wgmma kernel's linear
                // exponentials: at scale 3 its per-row bound fails and the row minima show no clamp is needed, at 8 rows
                // span more than 127 octaves and it clamps (at 0.125 the bound holds everywhere):
                // scripts/kernels/sage8-lin-paths.py replays the tests on such inputs.
                foreach (var (b, h, nq, nk, scale) in new[]
                {
                    (1, 1, 1, 1, 0.125f), (2, 3, 17, 33, 0.125f), (1, 2, 130, 67, 0.125f), (1, 2, 300, 517, 0.125f), (2, 2, 64, 64, 0.125f),
                    (1, 2, 200, 1100, 0.125f), (1, 2, 200, 1100, 3f), (1, 2, 200, 1100, 8f),
                })
                {
                    string what = scale == 0.125f ? "k biased" : $"scale {scale}";
                    cases.Add(new OpCase("sage8_attention", dt, $"{name}: q [{b},{h},{nq},64] kv [{nk}] {what}", c =>
                    {
                        using var q = c.Rand(b, h, nq, 64);
                        using var k = c.Uniform([b, h, nk, 64], 1f, 3f);
                        using var v = c.Rand(b, h, nk, 64);
                        var y = c.Zeros(b, h, nq, 64);
                        using (Sage8KernelChoice.Force(kernel)) Ops.Sage8AttentionInto(q, k, v, scale, y);
                        return y;
                    }));
                }
                cases.Add(new OpCase("sage8_attention", dt, $"{name}: q,k,v,y views of [2,70,2,64] (transformer)", c =>
                    OnHeadViews(c, 2, 70, 2, 64, (q, k, v, y) =>
                    {
                        using (Sage8KernelChoice.Force(kernel)) Ops.Sage8AttentionInto(q, k, v, 0.125f, y);
                    })));
                // Rows 16-byte aligned but not 64 apart (loaded as they are), and rows starting off 16-byte boundaries
                // (the CUDA pre-pass copies those first).
                foreach (var (start, what) in new[] { (8, "aligned"), (3, "unaligned") })
                {
                    cases.Add(new OpCase("sage8_attention", dt, $"{name}: [1,2,77,72] narrowed at {start}: {what}", c =>
                    {
                        using var q0 = c.Rand(1, 2, 77, 72);
                        using var k0 = c.Uniform([1, 2, 77, 72], 1f, 3f);
                        using var v0 = c.Rand(1, 2, 77, 72);
                        using var q = q0.Narrow(3, start, 64);
                        using var k = k0.Narrow(3, start, 64);
                        using var v = v0.Narrow(3, start, 64);
                        var y = c.Zeros(1, 2, 77, 64);
                        using (Sage8KernelChoice.Force(kernel)) Ops.Sage8AttentionInto(q, k, v, 0.125f, y);
                        return y;
                    }));
                }
                AddSage8PrepassIdentity(cases, kernel, name, dt);
            }
        }
    }

    /// <summary>
    /// The 8-bit attention's two pre-pass forms (sage8_attention_prepass: <see cref="Sage8KernelChoice.ForceLegacyPrepass"/>;
    /// a backend with one form runs it twice) must give the same output bit for bit, degenerate scale groups included (all-zero groups,
    /// subnormal BF16 scales, ±∞ and NaN values): the case's value is the count of output elements whose bits differ,
    /// 0 on every backend. Shapes: one key, partial row and key tiles, several scan chunks and K/V blocks, the
    /// transformer's strided views and unaligned rows.
    /// </summary>
    private static void AddSage8PrepassIdentity(List<OpCase> cases, Sage8Kernel kernel, string name, DType dt)
    {
        foreach (var (b, h, nq, nk, edges) in new[]
        {
            (1, 1, 1, 1, false), (2, 3, 17, 33, false), (1, 2, 300, 517, false), (1, 2, 200, 1100, false), (1, 3, 40, 600, true),
        })
        {
            cases.Add(new OpCase("sage8_attention_prepass", dt, $"{name}: q [{b},{h},{nq},64] kv [{nk}]{(edges ? " edge groups" : "")}", c =>
            {
                using var q = edges ? Sage8Edges(c, [b, h, nq, 64], 'q') : c.Rand(b, h, nq, 64);
                using var k = edges ? Sage8Edges(c, [b, h, nk, 64], 'k') : c.Uniform([b, h, nk, 64], 1f, 3f);
                using var v = edges ? Sage8Edges(c, [b, h, nk, 64], 'v') : c.Rand(b, h, nk, 64);
                return Sage8PrepassMismatches(c, kernel, q, k, v);
            }, Tolerance: 0));
        }
        // Q, K and V as views of larger tensors: the transformer's head-major permutation, and rows narrowed off their
        // 16-byte alignment (which the host copies first).
        foreach (var (label, shape, view) in new (string, int[], Func<Tensor, Tensor>)[]
        {
            ("views of [2,70,2,64] (transformer)", [2, 70, 2, 64], t => t.Permute(0, 2, 1, 3)),
            ("narrowed from [1,2,77,72] (unaligned rows)", [1, 2, 77, 72], t => t.Narrow(3, 3, 64)),
        })
        {
            cases.Add(new OpCase("sage8_attention_prepass", dt, $"{name}: {label}", c =>
            {
                using var q0 = c.Rand(shape);
                using var k0 = c.Rand(shape);
                using var v0 = c.Rand(shape);
                using var q = view(q0);
                using var k = view(k0);
                using var v = view(v0);
                return Sage8PrepassMismatches(c, kernel, q, k, v);
            }, Tolerance: 0));
        }
    }

    /// <summary>
    /// LayerNormZero's split, written into views: each (start, length, chunk) range of x's rows [b, s, d] modulated by
    /// its own chunk of <paramref name="modulation"/> [b, 4d] (shift at chunk·d, scale at (chunk + 1)·d), once as FP8 codes
    /// and row scales (modulated_layer_norm_fp8) and once as the plain norm in x's dtype. The caller disposes both.
    /// </summary>
    internal static (Fp8Activation Fused, Tensor Normed) SplitModulatedNorms(Tensor x, Tensor? gamma, Tensor? beta, Tensor modulation,
        float eps, (int Start, int Length, int Chunk)[] parts)
    {
        int b = x.Dim(0), s = x.Dim(1), d = x.Dim(2);
        var fused = Fp8Activation.Empty(x.Backend, x.DType, b, s, d);
        var normed = Tensor.Empty(x.Backend, x.DType, b, s, d);
        foreach (var (start, length, chunk) in parts)
        {
            using var shift0 = modulation.Narrow(1, chunk * d, d);
            using var scale0 = modulation.Narrow(1, (chunk + 1) * d, d);
            using var shift = shift0.Unsqueeze(1);
            using var scale = scale0.Unsqueeze(1);
            using var rows = x.Narrow(1, start, length);
            using var codes = fused.Codes.Narrow(1, start, length);
            using var scales = fused.Scales.Narrow(1, start, length);
            rows.ModulatedLayerNormFp8Into(gamma, beta, scale, shift, eps, codes, scales);
            using var target = normed.Narrow(1, start, length);
            rows.ModulatedLayerNormInto(gamma, beta, scale, shift, eps, target);
        }
        return (fused, normed);
    }

    /// <summary>The count of output elements whose bits differ between the legacy and the default pre-pass, as [1] F32.</summary>
    private static Tensor Sage8PrepassMismatches(OpInputs c, Sage8Kernel kernel, Tensor q, Tensor k, Tensor v)
    {
        int b = q.Dim(0), h = q.Dim(1), nq = q.Dim(2);
        using var fast = c.Zeros(b, h, nq, 64);
        using var legacy = c.Zeros(b, h, nq, 64);
        using (Sage8KernelChoice.Force(kernel))
        {
            Ops.Sage8AttentionInto(q, k, v, 0.125f, fast);
            using (Sage8KernelChoice.ForceLegacyPrepass()) Ops.Sage8AttentionInto(q, k, v, 0.125f, legacy);
        }
        var x = fast.ToFloatArray();
        var y = legacy.ToFloatArray();
        int differ = 0;
        for (int i = 0; i < x.Length; i++)
            if (BitConverter.SingleToInt32Bits(x[i]) != BitConverter.SingleToInt32Bits(y[i])) differ++;
        return Tensor.FromArray([differ], [1], c.Backend);
    }

    /// <summary>
    /// Q ('q'), K ('k') or V ('v') inputs whose scale groups are degenerate, beside ordinary ones in the same warps: in
    /// the first head, values scaled to about 1e-38 (subnormal group scales in BF16; F16 flushes them to all-zero groups)
    /// in Q's row groups r mod 8 even, all of K, and V's channels c mod 3 = 0; in the second head (or the first) Q's rows
    /// 3 and 11 (one group) and V's channel 5 all zero; in the last head one +∞ (Q, V) or NaN (K), which decides its
    /// group's or channel's scale.
    /// </summary>
    private static Tensor Sage8Edges(OpInputs c, int[] shape, char kind)
    {
        using var r = kind == 'k' ? c.Uniform(shape, 1f, 3f, DType.F32) : c.Uniform(shape, -1f, 1f, DType.F32);
        var data = r.ToFloatArray();
        int heads = shape[0] * shape[1], n = shape[2], zeroHead = Math.Min(1, heads - 1);
        for (int hd = 0; hd < heads; hd++)
            for (int t = 0; t < n; t++)
                for (int ch = 0; ch < 64; ch++)
                {
                    long i = ((long)hd * n + t) * 64 + ch;
                    bool tiny = kind switch { 'q' => t % 2 == 0, 'k' => true, _ => ch % 3 == 0 };
                    if (hd == 0 && tiny) data[i] *= 1e-38f;
                    if (hd == zeroHead && (kind == 'q' ? t % 16 is 3 or 11 : kind == 'v' && ch == 5)) data[i] = 0f;
                }
        data[((long)(heads - 1) * n + n / 2) * 64 + 7] = kind == 'k' ? float.NaN : float.PositiveInfinity;
        return Tensor.FromArray(data, shape, c.Backend, c.DType);
    }

    /// <summary>
    /// FP8 linears (<see cref="Capability.Fp8Linear"/>, opt-in): the quantized weight must equal the CPU emulation's
    /// code for code and scale for scale (tolerance 0: the dequantized values are compared), and the linear agrees within
    /// float32 accumulation order — 1e-3 for F32, as Hopper's FP8 tensor cores keep about 14 bits between promotions to
    /// float32 (DeepSeek-V3 report, §3.3.2). Inner dims are multiples of 16 (cuBLASLt's FP8 rule).
    /// A backend without the capability fails these cases with the reason.
    /// </summary>
    private static void AddFp8(List<OpCase> cases, Action<string, string, Func<OpInputs, Tensor>, double?> add)
    {
        foreach (var dt in Floats)
        {
            cases.Add(new OpCase("fp8_quantize", dt, "[48,64] dequantized", c =>
            {
                using var w = c.Uniform([48, 64], -3f, 3f);
                using var q = w.QuantizeFp8();
                return Dequantized(q);
            }, Tolerance: 0));
            cases.Add(new OpCase("fp8_quantize", dt, "[5,32] zeros, subnormals, large, flushed, ±448", c =>
            {
                var data = new float[5 * 32];
                for (int i = 0; i < 32; i++)
                {
                    data[32 + i] = (i - 16) * 1e-3f;           // subnormal codes after scaling
                    data[64 + i] = (i - 16) * 1000f;           // large magnitudes
                    data[96 + i] = i == 7 ? 1f : 1e-6f;        // one large value, the rest flushed towards zero
                    data[128 + i] = (i % 3 - 1) * 0.0625f;     // values that scale to exactly ±448
                }
                using var w = Tensor.FromArray(data, [5, 32], c.Backend, c.DType);
                using var q = w.QuantizeFp8();
                return Dequantized(q);
            }, Tolerance: 0));
            // Each register layout of the CUDA quantize kernels (fp8_quantize_lanes: threads a row and vectors a thread;
            // fp8_quantize_block: one block a row), and past them fp8_quantize_rows8.
            foreach (var (rows, cols, path) in new[]
            {
                (9, 8, "lanes v1"), (7, 16, "lanes v2"), (5, 1920, "lanes v8, 2b's attention output"), (3, 3072, "lanes v12, 5b's"),
                (4, 4096, "lanes v16"), (3, 7680, "block of 128 v8, 2b's GELU output"), (2, 12288, "block of 256 v8, 5b's"),
                (2, 24576, "block v12"), (1, 32768, "block v16"), (2, 32776, "rows8, wider than the register kernels"),
            })
            {
                cases.Add(new OpCase("fp8_quantize", dt, $"[{rows},{cols}] dequantized ({path})", c =>
                {
                    using var w = c.Uniform([rows, cols], -3f, 3f);
                    using var q = w.QuantizeFp8();
                    return Dequantized(q);
                }, Tolerance: 0));
            }
            foreach (var cols in new[] { 1920, 7680 })
            {
                cases.Add(new OpCase("fp8_quantize", dt, $"[5,{cols}] zeros, subnormals, large, flushed, ±448 (register kernels)", c =>
                {
                    var data = new float[5 * cols];
                    for (int i = 0; i < cols; i++)
                    {
                        data[cols + i] = (i % 32 - 16) * 1e-3f;
                        data[2 * cols + i] = (i % 32 - 16) * 1000f;
                        data[3 * cols + i] = i == 7 ? 1f : 1e-6f;
                        data[4 * cols + i] = (i % 3 - 1) * 0.0625f;
                    }
                    using var w = Tensor.FromArray(data, [5, cols], c.Backend, c.DType);
                    using var q = w.QuantizeFp8();
                    return Dequantized(q);
                }, Tolerance: 0));
            }
            // An activation whose rows are 8 elements apart more than their width: the register kernels' row stride.
            cases.Add(new OpCase("fp8_quantize", dt, "[37,1920] rows of a [37,1928] (strided rows, lanes v8)", c =>
            {
                using var wide = c.Uniform([37, 1928], -3f, 3f);
                using var w = wide.Narrow(1, 8, 1920);
                using var q = w.QuantizeFp8();
                return Dequantized(q);
            }, Tolerance: 0));
        }
        add("linear_fp8", "[37,64]·[48,64]ᵀ + bias", c =>
        {
            using var x = c.Uniform([37, 64], -4f, 4f);
            using var w = c.Uniform([48, 64], -0.2f, 0.2f);
            using var b = c.Rand(48);
            using var q = w.QuantizeFp8();
            return x.LinearFp8(q, b);
        }, 1e-3);
        add("linear_fp8", "[2,19,128]·[80,128]ᵀ + bias, gelu-tanh", c =>
        {
            using var x = c.Rand(2, 19, 128);
            using var w = c.Uniform([80, 128], -0.1f, 0.1f);
            using var b = c.Rand(80);
            using var q = w.QuantizeFp8();
            return x.LinearFp8(q, b, Activation.GeluTanh);
        }, 1e-3);
        add("linear_fp8", "[1,16]·[3,16]ᵀ, no bias", c =>
        {
            using var x = c.Rand(1, 16);
            using var w = c.Rand(3, 16);
            using var q = w.QuantizeFp8();
            return x.LinearFp8(q);
        }, 1e-3);
        // Rows 36 elements apart: the activation quantized element by element (the 8-wide kernel needs row strides that
        // are multiples of 8; input features stay a multiple of 16, which cuBLASLt's FP8 GEMM requires).
        add("linear_fp8", "[7,32] rows of a [7,36]·[16,32]ᵀ + bias (row stride not a multiple of 8)", c =>
        {
            using var full = c.Rand(7, 36);
            using var x = full.Narrow(1, 0, 32);
            using var w = c.Rand(16, 32);
            using var b = c.Rand(16);
            using var q = w.QuantizeFp8();
            return x.LinearFp8(q, b);
        }, 1e-3);
        // A narrow output: cuBLASLt has no FP8 GEMM for it, so the CUDA backend runs it widened to float32 (same products),
        // then its epilogue kernel with bias and activation.
        add("linear_fp8", "[5,32]·[3,32]ᵀ + bias, gelu-tanh (narrow output)", c =>
        {
            using var x = c.Rand(5, 32);
            using var w = c.Rand(3, 32);
            using var b = c.Rand(3);
            using var q = w.QuantizeFp8();
            return x.LinearFp8(q, b, Activation.GeluTanh);
        }, 1e-3);
        // GELU without a bias (cuBLASLt's GELU epilogue, or its DEFAULT one and the bias/activation kernel), and exact GELU,
        // which no cuBLASLt epilogue has (the scaled GEMM's DEFAULT epilogue and the bias/activation kernel on CUDA).
        add("linear_fp8", "[24,64]·[40,64]ᵀ, no bias, gelu-tanh", c =>
        {
            using var x = c.Uniform([24, 64], -2f, 2f);
            using var w = c.Uniform([40, 64], -0.2f, 0.2f);
            using var q = w.QuantizeFp8();
            return x.LinearFp8(q, null, Activation.GeluTanh);
        }, 1e-3);
        add("linear_fp8", "[16,32]·[24,32]ᵀ + bias, gelu (erf)", c =>
        {
            using var x = c.Rand(16, 32);
            using var w = c.Uniform([24, 32], -0.3f, 0.3f);
            using var b = c.Rand(24);
            using var q = w.QuantizeFp8();
            return x.LinearFp8(q, b, Activation.Gelu);
        }, 1e-3);
        // FP8-only streamed blocks (--linear fp8 under --memory balanced/low): the weight quantized on the CPU as the host
        // images are, its codes and scales at an offset in packed arenas uploaded byte for byte, the linear reading views.
        add("linear_fp8", "[64,128]·[96,128]ᵀ + bias, weight quantized on the host, codes and scales in uploaded arenas", c =>
        {
            using var x = c.Uniform([64, 128], -2f, 2f);
            using var w = c.Uniform([96, 128], -0.1f, 0.1f);
            using var b = c.Rand(96);
            using var hostWeight = w.To(CpuBackend.Instance);
            using var host = hostWeight.QuantizeFp8();
            using var codesImage = Tensor.Empty(CpuBackend.Instance, DType.F8E4M3, 256 + 96 * 128);
            using var scalesImage = Tensor.Empty(CpuBackend.Instance, DType.F32, 64 + 96);
            using (var at = codesImage.Narrow(0, 256, 96 * 128)) using (var codes = at.Reshape(96, 128)) host.Codes.CopyTo(codes);
            using (var at = scalesImage.Narrow(0, 64, 96)) host.Scales.CopyTo(at);
            using var codesArena = codesImage.To(c.Backend);
            using var scalesArena = scalesImage.To(c.Backend);
            using var codesAt = codesArena.Narrow(0, 256, 96 * 128);
            using var q = new Fp8Weight(codesAt.Reshape(96, 128), scalesArena.Narrow(0, 64, 96));
            return x.LinearFp8(q, b);
        }, 1e-3);
        add("linear_fp8", "[300,256] strided rows·[272,256]ᵀ + bias", c =>
        {
            using var wide = c.Rand(300, 320);
            using var x = wide.Narrow(1, 32, 256);
            using var w = c.Uniform([272, 256], -0.05f, 0.05f);
            using var b = c.Rand(272);
            using var q = w.QuantizeFp8();
            return x.LinearFp8(q, b);
        }, 1e-3);
    }

    /// <summary>
    /// The adaptive norm written as an FP8 linear's input (<see cref="Capability.ModulatedLayerNormFp8"/>). "fused = norm
    /// then quantize" cases run the op and, on the same backend, the norm into the model dtype followed by the
    /// activation quantization, and return how many codes and scales differ: tolerance 0, the fused kernel must be the
    /// two kernels bit for bit. The other cases compare its dequantized output with the CPU's, where the norm's own
    /// rounding may differ in the last bit (the modulated norm's F32 tolerance is 1e-5, not 0), so that a code may sit
    /// one E4M3 step away: 1e-2. Widths cover each register layout of the CUDA kernel (vectors per lane 1 to 16: 2b's
    /// 1920, 5b's 3072, 4096) and an odd one that it leaves to the decomposition.
    /// </summary>
    private static void AddFp8Norm(List<OpCase> cases)
    {
        foreach (var dt in Floats)
        {
            foreach (var (b, s, d, affine) in new[] { (2, 11, 64, true), (2, 5, 1920, true), (1, 3, 3072, true), (3, 2, 4096, false), (4, 7, 40, false), (2, 300, 128, true) })
            {
                cases.Add(new OpCase("modulated_layer_norm_fp8", dt, $"[{b},{s},{d}]{(affine ? " affine" : "")}: fused = norm then quantize (mismatches)", c =>
                {
                    using var x = c.Uniform([b, s, d], -2f, 3f);
                    using var g = affine ? c.Rand(d) : null;
                    using var beta = affine ? c.Rand(d) : null;
                    using var scale = c.Rand(b, 1, d);
                    using var shift = c.Rand(b, 1, d);
                    using var fused = x.ModulatedLayerNormFp8(g, beta, scale, shift, 1e-5f);
                    using var normed = x.ModulatedLayerNorm(g, beta, scale, shift, 1e-5f);
                    using var rows = normed.Reshape(b * s, d);
                    using var unfused = rows.QuantizeFp8();
                    return Mismatches(fused.Codes, fused.Scales, unfused.Codes, unfused.Scales);
                }, Tolerance: 0));
            }
            cases.Add(new OpCase("modulated_layer_norm_fp8", dt, "LayerNormZero's split of [2,9,48] into views, chunks of [2,288]: fused = norm then quantize (mismatches)", c =>
            {
                using var x = c.Uniform([2, 9, 48], -2f, 3f);
                using var modulation = c.Rand(2, 288);
                var (fusedRows, normedRows) = SplitModulatedNorms(x, null, null, modulation, 1e-6f, [(2, 7, 0), (0, 2, 3)]);
                using var fused = fusedRows;
                using var normed = normedRows;
                using var rows = normed.Reshape(18, 48);
                using var unfused = rows.QuantizeFp8();
                return Mismatches(fused.Codes, fused.Scales, unfused.Codes, unfused.Scales);
            }, Tolerance: 0));
            foreach (var (b, s, d) in new[] { (2, 11, 64), (2, 5, 1920), (1, 3, 3072), (3, 5, 33) })
            {
                cases.Add(new OpCase("modulated_layer_norm_fp8", dt, $"[{b},{s},{d}] affine, dequantized", c =>
                {
                    using var x = c.Uniform([b, s, d], -2f, 3f);
                    using var g = c.Rand(d);
                    using var beta = c.Rand(d);
                    using var scale = c.Rand(b, 1, d);
                    using var shift = c.Rand(b, 1, d);
                    using var fused = x.ModulatedLayerNormFp8(g, beta, scale, shift, 1e-5f);
                    using var codes = fused.Codes.Reshape(b * s, d);
                    using var scales = fused.Scales.Reshape(b * s);
                    using var q = new Fp8Weight(codes.Alias(), scales.Alias());
                    return Dequantized(q);
                }, Tolerance: 1e-2));
            }
            // The linear on codes a producer wrote: the same as on the values they quantize (here exact inputs, so the
            // same codes on every backend), within the linears' float32 accumulation order.
            cases.Add(new OpCase("linear_fp8", dt, "[3,37,64] already quantized · [48,64]ᵀ + bias, gelu-tanh", c =>
            {
                using var x = c.Uniform([3 * 37, 64], -4f, 4f);
                using var w = c.Uniform([48, 64], -0.2f, 0.2f);
                using var bias = c.Rand(48);
                using var wq = w.QuantizeFp8();
                using var xq = x.QuantizeFp8();
                using var codes = xq.Codes.Reshape(3, 37, 64);
                using var scales = xq.Scales.Reshape(3, 37);
                using var act = new Fp8Activation(codes.Alias(), scales.Alias(), c.DType);
                return act.LinearFp8(wq, bias, Activation.GeluTanh);
            }, Tolerance: dt == DType.F32 ? 1e-3 : null));
        }
    }

    /// <summary>[codes that differ, scales that differ] between two quantizations of the same rows (read back to the host).</summary>
    private static Tensor Mismatches(Tensor codes, Tensor scales, Tensor otherCodes, Tensor otherScales)
    {
        byte[] Bytes(Tensor t)
        {
            using var contiguous = t.IsContiguous ? t.Alias() : throw new ArgumentException("contiguous codes expected");
            var bytes = new byte[t.ElementCount];
            t.Backend.CopyToHost(t.Storage, t.Layout.Offset, bytes);
            return bytes;
        }
        byte[] a = Bytes(codes), b = Bytes(otherCodes);
        float[] sa = scales.ToFloatArray(), sb = otherScales.ToFloatArray();
        int codeMismatches = a.Length == b.Length ? a.Where((v, i) => v != b[i]).Count() : Math.Max(a.Length, b.Length);
        int scaleMismatches = sa.Length == sb.Length ? sa.Where((v, i) => BitConverter.SingleToInt32Bits(v) != BitConverter.SingleToInt32Bits(sb[i])).Count() : Math.Max(sa.Length, sb.Length);
        return Tensor.FromArray([codeMismatches, scaleMismatches], [2], codes.Backend);
    }

    /// <summary>codes · scale per row, as float32 on the codes' backend (the codes read back as bytes).</summary>
    private static Tensor Dequantized(Fp8Weight q)
    {
        var bytes = new byte[q.Codes.ElementCount];
        q.Codes.Backend.CopyToHost(q.Codes.Storage, q.Codes.Layout.Offset, bytes);
        var scales = q.Scales.ToFloatArray();
        var values = new float[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) values[i] = E4M3.ToFloat(bytes[i]) * scales[i / q.InFeatures];
        return Tensor.FromArray(values, q.Codes.ShapeArray(), q.Codes.Backend);
    }

    /// <summary>Runs a case on the backend under test and on the reference and compares the outputs.</summary>
    public static OpComparison Compare(OpCase c, IBackend target, IBackend reference, int seed)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        float[] expected, actual;
        int[] expectedShape, actualShape;
        try
        {
            (expected, expectedShape) = Run(c, reference, seed);
        }
        catch (Exception e)
        {
            return new OpComparison(c, double.NaN, double.NaN, false, $"reference failed: {e.GetType().Name}: {e.Message}", clock.Elapsed);
        }
        try
        {
            using (c.Decomposed ? Decompositions.Force() : null)
                (actual, actualShape) = Run(c, target, seed);
            target.Synchronize();
        }
        catch (Exception e)
        {
            return new OpComparison(c, double.NaN, double.NaN, false, $"{e.GetType().Name}: {e.Message}", clock.Elapsed);
        }
        clock.Stop();
        if (!expectedShape.SequenceEqual(actualShape))
            return new OpComparison(c, double.NaN, double.NaN, false, $"shape {Layout.Format(actualShape)}, expected {Layout.Format(expectedShape)}", clock.Elapsed);
        var (maxAbs, normalised, nanMismatch) = Errors(actual, expected);
        bool passed = nanMismatch == 0 && normalised <= c.Bound;
        string? failure = nanMismatch > 0 ? $"{nanMismatch} NaN/Inf where the reference is finite (or the reverse)" : null;
        return new OpComparison(c, maxAbs, normalised, passed, failure, clock.Elapsed);
    }

    private static (float[] Values, int[] Shape) Run(OpCase c, IBackend backend, int seed)
    {
        using var scope = new TensorScope();
        var inputs = new OpInputs(backend, c.DType, seed);
        var result = scope.Keep(c.Body(inputs));
        using (result) return (result.ToFloatArray(), result.ShapeArray());
    }

    /// <summary>Max |a − b|, ‖a − b‖ / ‖b‖ (absolute when ‖b‖ = 0) and the count of elements not finite on one side only.</summary>
    public static (double MaxAbs, double Normalised, int NonFiniteMismatches) Errors(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double maxAbs = 0, diff2 = 0, ref2 = 0;
        int mismatches = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            float a = actual[i], b = expected[i];
            bool fa = float.IsFinite(a), fb = float.IsFinite(b);
            if (!fa || !fb)
            {
                if (fa != fb || (float.IsNaN(a) != float.IsNaN(b)) || (!float.IsNaN(a) && a != b)) mismatches++;
                continue;
            }
            double d = (double)a - b;
            maxAbs = Math.Max(maxAbs, Math.Abs(d));
            diff2 += d * d;
            ref2 += (double)b * b;
        }
        double normalised = ref2 > 0 ? Math.Sqrt(diff2 / ref2) : Math.Sqrt(diff2);
        return (maxAbs, normalised, mismatches);
    }
}
