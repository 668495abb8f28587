namespace CogVideoX.Engine;

public static partial class Ops
{
    /// <summary>act(x · weightᵀ + bias) over the last dim: x [..., K], weight [N, K], bias [N] → [..., N].</summary>
    public static Tensor Linear(this Tensor x, Tensor weight, Tensor? bias = null, Activation activation = Activation.None)
    {
        SameBackend(x, weight, "linear");
        SameDType(x, weight, "linear");
        Float(x, "linear");
        RankAtLeast(x, 1, "linear", "input");
        Rank(weight, 2, "linear", "weight");
        int k = x.Dim(-1), n = weight.Dim(0);
        if (weight.Dim(1) != k)
            throw new ArgumentException($"linear: input {x.ShapeString} has {k} features but weight {weight.ShapeString} expects {weight.Dim(1)}");
        CheckLinearBias(x, bias, n, "linear");
        return OverRows(x, k, n, "linear", (x2, y) =>
        {
            if (Kernel<ILinearKernel>(x) is { } kernel) kernel.Linear(x2, weight, bias, activation, y);
            else Decompositions.Linear(x2, weight, bias, activation, y);
        });
    }

    /// <summary>A linear's bias, when given: on x's backend, in x's dtype, shaped [N].</summary>
    private static void CheckLinearBias(Tensor x, Tensor? bias, int n, string op)
    {
        if (bias is null) return;
        SameBackend(x, bias, op);
        SameDType(x, bias, op);
        if (bias.Rank != 1 || bias.Dim(0) != n)
            throw new ArgumentException($"{op}: bias {bias.ShapeString} does not match {n} outputs");
    }

    /// <summary>
    /// The frame of the linears: x [..., K] viewed as rows [M, K], <paramref name="run"/> writing a new [M, N] in x's
    /// dtype (not called when there are no outputs), the result reshaped to [..., N].
    /// </summary>
    private static Tensor OverRows(Tensor x, int k, int n, string op, Action<Tensor, Tensor> run)
    {
        var outShape = x.ShapeArray();
        outShape[^1] = n;
        long m = 1;
        foreach (var d in outShape[..^1]) m *= d;
        using var x2 = x.Reshape((int)m, k);
        var y = Tensor.Empty(x.Backend, x.DType, (int)m, n);
        if (y.ElementCount > 0)
        {
            if (k == 0) throw new ArgumentException($"{op}: input has zero features");
            run(x2, y);
        }
        using (y) return y.Reshape(outShape);
    }

    /// <summary>Batched matrix product with broadcast batch dims: a [..., M, K] · b [..., K, N].</summary>
    public static Tensor MatMul(this Tensor a, Tensor b)
    {
        SameBackend(a, b, "matmul");
        SameDType(a, b, "matmul");
        Float(a, "matmul");
        RankAtLeast(a, 2, "matmul", "a");
        RankAtLeast(b, 2, "matmul", "b");
        int m = a.Dim(-2), k = a.Dim(-1), n = b.Dim(-1);
        if (b.Dim(-2) != k)
            throw new ArgumentException($"matmul: {a.ShapeString} · {b.ShapeString}: inner dims {k} and {b.Dim(-2)} differ");
        var batch = BroadcastShape(a.Shape[..^2], b.Shape[..^2]);
        var outShape = batch.Concat(new[] { m, n }).ToArray();
        var y = Like(a, outShape);
        if (y.ElementCount == 0) return y;
        if (k == 0) { a.Backend.Fill(y, 0); return y; }
        using var ab = a.BroadcastTo(batch.Concat(new[] { m, k }).ToArray());
        using var bb = b.BroadcastTo(batch.Concat(new[] { k, n }).ToArray());
        a.Backend.MatMul(ab, bb, y);
        return y;
    }

    /// <summary>3D convolution with zero padding: x [N, Cin, T, H, W], weight [Cout, Cin, kT, kH, kW].</summary>
    public static Tensor Conv3d(this Tensor x, Tensor weight, Tensor? bias, Conv3dParams p)
    {
        var y = Like(x, Conv3dShape(x, weight, bias, p));
        if (y.ElementCount > 0) x.Backend.Conv3d(x, weight, bias, p, y);
        return y;
    }

    /// <summary>
    /// <see cref="Conv3d(Tensor, Tensor, Tensor?, Conv3dParams)"/> into <paramref name="y"/>, a contiguous tensor of the
    /// output's shape and x's dtype on x's backend (a slot the caller already holds: no output is allocated).
    /// </summary>
    public static void Conv3dInto(this Tensor x, Tensor weight, Tensor? bias, Conv3dParams p, Tensor y)
    {
        var shape = Conv3dShape(x, weight, bias, p);
        SameBackend(x, y, "conv3d");
        SameDType(x, y, "conv3d");
        if (!y.Shape.SequenceEqual(shape) || !y.IsContiguous)
            throw new ArgumentException($"conv3d: the output {y.ShapeString} must be a contiguous [{string.Join(", ", shape)}]");
        if (y.ElementCount > 0) x.Backend.Conv3d(x, weight, bias, p, y);
    }

    private static int[] Conv3dShape(Tensor x, Tensor weight, Tensor? bias, Conv3dParams p)
    {
        SameBackend(x, weight, "conv3d");
        SameDType(x, weight, "conv3d");
        Float(x, "conv3d");
        Rank(x, 5, "conv3d", "input");
        Rank(weight, 5, "conv3d", "weight");
        if (x.Dim(1) != weight.Dim(1))
            throw new ArgumentException($"conv3d: input {x.ShapeString} has {x.Dim(1)} channels, weight {weight.ShapeString} expects {weight.Dim(1)}");
        if (bias is not null && (bias.Rank != 1 || bias.Dim(0) != weight.Dim(0)))
            throw new ArgumentException($"conv3d: bias {bias.ShapeString} does not match {weight.Dim(0)} output channels");
        if (p.StrideT < 1 || p.StrideH < 1 || p.StrideW < 1 || p.PadT < 0 || p.PadH < 0 || p.PadW < 0)
            throw new ArgumentException($"conv3d: invalid stride/padding {p}");
        int to = (x.Dim(2) + 2 * p.PadT - weight.Dim(2)) / p.StrideT + 1;
        int ho = (x.Dim(3) + 2 * p.PadH - weight.Dim(3)) / p.StrideH + 1;
        int wo = (x.Dim(4) + 2 * p.PadW - weight.Dim(4)) / p.StrideW + 1;
        if (to <= 0 || ho <= 0 || wo <= 0)
            throw new ArgumentException($"conv3d: kernel {weight.ShapeString} is larger than the padded input {x.ShapeString}");
        return [x.Dim(0), weight.Dim(0), to, ho, wo];
    }

    /// <summary>2D convolution: x [N, Cin, H, W], weight [Cout, Cin, kH, kW] (run as a 3D convolution with kT = 1).</summary>
    public static Tensor Conv2d(this Tensor x, Tensor weight, Tensor? bias, int stride = 1, int padding = 0)
    {
        Rank(x, 4, "conv2d", "input");
        Rank(weight, 4, "conv2d", "weight");
        using var x5 = x.Unsqueeze(2);
        using var w5 = weight.Unsqueeze(2);
        using var y5 = x5.Conv3d(w5, bias, new Conv3dParams(1, stride, stride, 0, padding, padding));
        return y5.Squeeze(2);
    }

    public static Tensor GroupNorm(this Tensor x, int groups, Tensor? gamma, Tensor? beta, float eps, Activation activation = Activation.None)
    {
        Float(x, "group_norm");
        RankAtLeast(x, 2, "group_norm", "input");
        CheckGroups(x, groups, gamma, beta, "group_norm");
        var y = Like(x);
        if (y.ElementCount == 0) return y;
        if (Kernel<IGroupNormKernel>(x) is { } kernel) kernel.GroupNorm(x, groups, gamma, beta, eps, activation, y);
        else Decompositions.GroupNorm(x, groups, gamma, beta, eps, activation, y);
        return y;
    }

    /// <summary>
    /// <see cref="GroupNorm"/> written into <paramref name="y"/> (x's shape and dtype, contiguous), which may be x itself:
    /// the kernels read the statistics first and then each element before writing it, so a norm in place needs no
    /// second tensor (the decomposition, which has no such guarantee, goes through a temporary then).
    /// </summary>
    public static void GroupNormInto(this Tensor x, int groups, Tensor? gamma, Tensor? beta, float eps, Activation activation, Tensor y)
    {
        SameBackend(x, y, "group_norm");
        if (!x.Shape.SequenceEqual(y.Shape) || x.DType != y.DType || !y.IsContiguous)
            throw new ArgumentException($"group_norm: the output {y.ShapeString} ({y.DType.Name()}) must be contiguous with the input's shape {x.ShapeString} and dtype {x.DType.Name()}");
        if (Kernel<IGroupNormKernel>(x) is { } kernel && x.IsContiguous)
        {
            Float(x, "group_norm");
            CheckGroups(x, groups, gamma, beta, "group_norm");
            if (y.ElementCount > 0) kernel.GroupNorm(x, groups, gamma, beta, eps, activation, y);
            return;
        }
        using var normed = x.GroupNorm(groups, gamma, beta, eps, activation);
        normed.CopyTo(y);
    }

    /// <summary>
    /// A VAE's spatial norm in one pass: act((GroupNorm(x)·gamma + beta)·scale + shift) for x [N, C, T, H, W], with
    /// scale and shift [N, C, T, h, w] nearest-upsampled to H × W.
    /// </summary>
    public static Tensor SpatialGroupNorm(this Tensor x, int groups, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Activation activation = Activation.None)
    {
        Float(x, "spatial_group_norm");
        Rank(x, 5, "spatial_group_norm", "input");
        CheckGroups(x, groups, gamma, beta, "spatial_group_norm");
        int c = x.Dim(1);
        foreach (var (m, what) in new[] { (scale, "scale"), (shift, "shift") })
        {
            SameBackend(x, m, "spatial_group_norm");
            SameDType(x, m, "spatial_group_norm");
            if (m.Rank != 5 || m.Dim(0) != x.Dim(0) || m.Dim(1) != c || m.Dim(2) != x.Dim(2) || m.Dim(3) == 0 || m.Dim(4) == 0
                || x.Dim(3) % m.Dim(3) != 0 || x.Dim(4) % m.Dim(4) != 0)
                throw new ArgumentException($"spatial_group_norm: {what} {m.ShapeString} must be [{x.Dim(0)}, {c}, {x.Dim(2)}, h, w] with h, w dividing {x.Dim(3)} × {x.Dim(4)}");
        }
        var y = Like(x);
        if (y.ElementCount == 0) return y;
        if (Kernel<ISpatialGroupNormKernel>(x) is { } kernel) kernel.SpatialGroupNorm(x, groups, gamma, beta, scale, shift, eps, activation, y);
        else Decompositions.SpatialGroupNorm(x, groups, gamma, beta, scale, shift, eps, activation, y);
        return y;
    }

    /// <summary>The checks every group norm makes: x's channels (dim 1) split into the groups, gamma and beta of one value per channel.</summary>
    private static void CheckGroups(Tensor x, int groups, Tensor? gamma, Tensor? beta, string op)
    {
        int c = x.Dim(1);
        if (groups < 1 || c % groups != 0)
            throw new ArgumentException($"{op}: {c} channels do not split into {groups} groups");
        CheckAffine(x, gamma, c, op, "gamma");
        CheckAffine(x, beta, c, op, "beta");
    }

    public static Tensor LayerNorm(this Tensor x, Tensor? gamma, Tensor? beta, float eps) => LayerNormCore(x, gamma, beta, eps, null)!;

    /// <summary><see cref="LayerNorm"/> written into output (x's shape and dtype, any strides).</summary>
    public static void LayerNormInto(this Tensor x, Tensor? gamma, Tensor? beta, float eps, Tensor output) =>
        LayerNormCore(x, gamma, beta, eps, output);

    private static Tensor? LayerNormCore(Tensor x, Tensor? gamma, Tensor? beta, float eps, Tensor? output)
    {
        Float(x, "layer_norm");
        RankAtLeast(x, 1, "layer_norm", "input");
        CheckAffine(x, gamma, x.Dim(-1), "layer_norm", "gamma");
        CheckAffine(x, beta, x.Dim(-1), "layer_norm", "beta");
        var y = OutputLike(x, output, "layer_norm");
        if (y.ElementCount == 0) return ResultOf(y, output);
        if (Kernel<ILayerNormKernel>(x) is { } kernel) kernel.LayerNorm(x, gamma, beta, eps, y);
        else Decompositions.LayerNorm(x, gamma, beta, eps, y);
        return ResultOf(y, output);
    }

    /// <summary>
    /// Attention's query/key preparation in one op: the per-head LayerNorm of x [B, H, N, D] over D (rounded to x's
    /// dtype, as the norm alone is), then the rotary embedding (<see cref="Rotary"/>) of the last M tokens, cos/sin
    /// [M, D] with M ≤ N (the video tokens after the text ones). Returns a contiguous [B, H, N, D] in x's dtype.
    /// </summary>
    public static Tensor LayerNormRotary(this Tensor x, Tensor? gamma, Tensor? beta, float eps, Tensor cos, Tensor sin)
    {
        const string op = "layer_norm_rotary";
        Float(x, op);
        Rank(x, 4, op, "x");
        SameBackend(x, cos, op);
        SameBackend(x, sin, op);
        SameDType(x, cos, op);
        SameDType(x, sin, op);
        int n = x.Dim(2), d = x.Dim(3);
        CheckAffine(x, gamma, d, op, "gamma");
        CheckAffine(x, beta, d, op, "beta");
        if (d % 2 != 0) throw new ArgumentException($"{op}: head dim {d} must be even");
        if (cos.Rank != 2 || cos.Dim(0) > n || cos.Dim(1) != d || !sin.Shape.SequenceEqual(cos.Shape))
            throw new ArgumentException($"{op}: cos {cos.ShapeString} / sin {sin.ShapeString} must be [M, {d}] with M ≤ {n} for x {x.ShapeString}");
        var y = Like(x);
        if (y.ElementCount == 0) return y;
        if (Kernel<ILayerNormRotaryKernel>(x) is { } kernel) kernel.LayerNormRotary(x, gamma, beta, eps, cos, sin, y);
        else Decompositions.LayerNormRotary(x, gamma, beta, eps, cos, sin, y);
        return y;
    }

    /// <summary>
    /// A DiT block's adaptive LayerNorm in one pass: (LayerNorm(x)·gamma + beta)·(1 + scale) + shift, with scale and
    /// shift broadcastable to x (e.g. [B, 1, D] for one modulation per batch item).
    /// </summary>
    public static Tensor ModulatedLayerNorm(this Tensor x, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps) =>
        ModulatedLayerNormCore(x, gamma, beta, scale, shift, eps, null)!;

    /// <summary><see cref="ModulatedLayerNorm"/> written into output (x's shape and dtype, any strides).</summary>
    public static void ModulatedLayerNormInto(this Tensor x, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Tensor output) =>
        ModulatedLayerNormCore(x, gamma, beta, scale, shift, eps, output);

    private static Tensor? ModulatedLayerNormCore(Tensor x, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Tensor? output)
    {
        Float(x, "modulated_layer_norm");
        RankAtLeast(x, 1, "modulated_layer_norm", "input");
        CheckAffine(x, gamma, x.Dim(-1), "modulated_layer_norm", "gamma");
        CheckAffine(x, beta, x.Dim(-1), "modulated_layer_norm", "beta");
        using var s = CompanionOperand(scale, x, "modulated_layer_norm", "scale");
        using var t = CompanionOperand(shift, x, "modulated_layer_norm", "shift");
        var y = OutputLike(x, output, "modulated_layer_norm");
        if (y.ElementCount == 0) return ResultOf(y, output);
        if (Kernel<IModulatedLayerNormKernel>(x) is { } kernel) kernel.ModulatedLayerNorm(x, gamma, beta, s, t, eps, y);
        else Decompositions.ModulatedLayerNorm(x, gamma, beta, s, t, eps, y);
        return ResultOf(y, output);
    }

    /// <summary>x + h ⊙ gate with h and gate broadcastable to x (a gated residual, e.g. gate [B, 1, D]).</summary>
    public static Tensor AddMul(this Tensor x, Tensor h, Tensor gate) => AddMulCore(x, h, gate, null)!;

    /// <summary><see cref="AddMul"/> written into output (x's shape and dtype, any strides; x itself for an in-place update).</summary>
    public static void AddMulInto(this Tensor x, Tensor h, Tensor gate, Tensor output) => AddMulCore(x, h, gate, output);

    private static Tensor? AddMulCore(Tensor x, Tensor h, Tensor gate, Tensor? output)
    {
        Float(x, "add_mul");
        using var hb = CompanionOperand(h, x, "add_mul", "h");
        using var gb = CompanionOperand(gate, x, "add_mul", "gate");
        var y = OutputLike(x, output, "add_mul");
        if (y.ElementCount == 0) return ResultOf(y, output);
        if (Kernel<IGatedResidualKernel>(x) is { } kernel) kernel.AddMul(x, hb, gb, y);
        else Decompositions.AddMul(x, hb, gb, y);
        return ResultOf(y, output);
    }

    /// <summary>An operand of x's op checked (x's backend and dtype) and viewed with x's shape, or a clear error.</summary>
    private static Tensor CompanionOperand(Tensor operand, Tensor x, string op, string what)
    {
        SameBackend(x, operand, op);
        SameDType(x, operand, op);
        return BroadcastOperand(operand, x, op, what);
    }

    /// <summary>operand viewed with x's shape (numpy broadcasting), or a clear error.</summary>
    private static Tensor BroadcastOperand(Tensor operand, Tensor x, string op, string what)
    {
        try
        {
            var shape = BroadcastShape(operand.Shape, x.Shape);
            if (!shape.AsSpan().SequenceEqual(x.Shape)) throw new ArgumentException("");
        }
        catch (ArgumentException)
        {
            throw new ArgumentException($"{op}: {what} {operand.ShapeString} does not broadcast to {x.ShapeString}");
        }
        return operand.BroadcastTo(x.ShapeArray());
    }

    /// <summary>The caller's output (checked against x, still the caller's) or a new tensor like x.</summary>
    private static Tensor OutputLike(Tensor x, Tensor? output, string op)
    {
        if (output is null) return Like(x);
        SameBackend(x, output, op);
        if (!output.Shape.SequenceEqual(x.Shape) || output.DType != x.DType)
            throw new ArgumentException($"{op}: output {output} must be {x.DType.Name()} {x.ShapeString}");
        return output;
    }

    /// <summary>Arguments are borrowed and results owned: a new tensor goes to the caller, a written output does not.</summary>
    private static Tensor? ResultOf(Tensor y, Tensor? output) => output is null ? y : null;

    public static Tensor RmsNorm(this Tensor x, Tensor? gamma, float eps)
    {
        Float(x, "rms_norm");
        RankAtLeast(x, 1, "rms_norm", "input");
        CheckAffine(x, gamma, x.Dim(-1), "rms_norm", "gamma");
        var y = Like(x);
        if (y.ElementCount == 0) return y;
        if (Kernel<IRmsNormKernel>(x) is { } kernel) kernel.RmsNorm(x, gamma, eps, y);
        else Decompositions.RmsNorm(x, gamma, eps, y);
        return y;
    }

    private static void CheckAffine(Tensor x, Tensor? p, int size, string op, string what)
    {
        if (p is null) return;
        SameBackend(x, p, op);
        if (p.Rank != 1 || p.Dim(0) != size)
            throw new ArgumentException($"{op}: {what} {p.ShapeString} does not match {size} features of {x.ShapeString}");
    }

    public static Tensor Softmax(this Tensor x)
    {
        Float(x, "softmax");
        RankAtLeast(x, 1, "softmax", "input");
        var y = Like(x);
        if (y.ElementCount == 0) return y;
        if (Kernel<ISoftmaxKernel>(x) is { } kernel) kernel.Softmax(x, y);
        else Decompositions.Softmax(x, y);
        return y;
    }

    /// <summary>
    /// Scaled dot-product attention, q [B, H, Nq, D], k/v [B, H, Nk, D], optional additive bias broadcastable to
    /// [B, H, Nq, Nk]; the result is a contiguous [B, H, Nq, D] tensor.
    /// </summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, Tensor? bias, float scale) => AttentionCore(q, k, v, bias, scale, null)!;

    /// <summary><see cref="Attention"/> written into output (shape [B, H, Nq, D], any strides).</summary>
    public static void AttentionInto(Tensor q, Tensor k, Tensor v, Tensor? bias, float scale, Tensor output) =>
        AttentionCore(q, k, v, bias, scale, output);

    /// <summary>Checks q [B, H, Nq, D], k and v [B, H, Nk, D] (one backend, one float dtype) for <paramref name="op"/>.</summary>
    private static (int B, int H, int Nq, int D, int Nk) AttentionShapes(Tensor q, Tensor k, Tensor v, string op)
    {
        SameBackend(q, k, op);
        SameBackend(q, v, op);
        SameDType(q, k, op);
        SameDType(q, v, op);
        Float(q, op);
        Rank(q, 4, op, "q");
        Rank(k, 4, op, "k");
        Rank(v, 4, op, "v");
        int b = q.Dim(0), h = q.Dim(1), nq = q.Dim(2), d = q.Dim(3), nk = k.Dim(2);
        if (k.Dim(0) != b || k.Dim(1) != h || k.Dim(3) != d || !v.Shape.SequenceEqual(k.Shape))
            throw new ArgumentException($"{op}: q {q.ShapeString}, k {k.ShapeString}, v {v.ShapeString} do not agree");
        return (b, h, nq, d, nk);
    }

    private static Tensor? AttentionCore(Tensor q, Tensor k, Tensor v, Tensor? bias, float scale, Tensor? output)
    {
        var (b, h, nq, d, nk) = AttentionShapes(q, k, v, "attention");
        Tensor? biasView = null;
        if (bias is not null)
        {
            SameBackend(q, bias, "attention");
            SameDType(q, bias, "attention");
            biasView = bias.BroadcastTo(b, h, nq, nk);
        }
        using (biasView)
        {
            if (output is not null)
            {
                SameBackend(q, output, "attention");
                if (!output.Shape.SequenceEqual(new[] { b, h, nq, d }))
                    throw new ArgumentException($"attention: output {output.ShapeString} must be [{b}, {h}, {nq}, {d}]");
            }
            var y = output ?? Like(q, new[] { b, h, nq, d });
            if (y.ElementCount > 0)
            {
                if (nk == 0) q.Backend.Fill(y, 0);
                else if (Kernel<IAttentionKernel>(q) is { } kernel) kernel.Attention(q, k, v, biasView, scale, y);
                else Decompositions.Attention(q, k, v, biasView, scale, y);
            }
            return ResultOf(y, output);
        }
    }

    /// <summary>
    /// The 8-bit attention (<see cref="Engine.Sage8Attention"/>: INT8 Q·Kᵀ with smoothed K, FP8 P·V) of q [B, H, Nq, D],
    /// k and v [B, H, Nk, D], written into output ([B, H, Nq, D], any strides). The backend's kernel where it has one,
    /// else the reference through the host (slow: meant for fidelity checks), in the same emulated numerics as the CPU's
    /// kernel (<see cref="Sage8KernelChoice.EmulatedKernel"/>), so that a decomposed run agrees with it.
    /// </summary>
    public static void Sage8AttentionInto(Tensor q, Tensor k, Tensor v, float scale, Tensor output)
    {
        var (b, h, nq, d, nk) = AttentionShapes(q, k, v, "8-bit attention");
        SameBackend(q, output, "8-bit attention");
        if (!output.Shape.SequenceEqual(new[] { b, h, nq, d }))
            throw new ArgumentException($"8-bit attention: output {output.ShapeString} must be [{b}, {h}, {nq}, {d}]");
        if (output.ElementCount == 0) return;
        if (nk == 0) q.Backend.Fill(output, 0);
        else if (Kernel<ISage8AttentionKernel>(q) is { } kernel) kernel.Sage8Attention(q, k, v, scale, output);
        else Engine.Sage8Attention.Reference(q, k, v, scale, output);
    }

    /// <summary>
    /// Interleaved-pair rotary embedding (diffusers' use_real_unbind_dim=-1): x [B, H, N, D], cos/sin [N, D].
    /// </summary>
    public static Tensor Rotary(this Tensor x, Tensor cos, Tensor sin) => RotaryCore(x, cos, sin, null)!;

    /// <summary><see cref="Rotary"/> written into output (x's shape and dtype, any strides; x itself to rotate in place).</summary>
    public static void RotaryInto(this Tensor x, Tensor cos, Tensor sin, Tensor output) => RotaryCore(x, cos, sin, output);

    private static Tensor? RotaryCore(Tensor x, Tensor cos, Tensor sin, Tensor? output)
    {
        SameBackend(x, cos, "rotary");
        SameBackend(x, sin, "rotary");
        SameDType(x, cos, "rotary");
        SameDType(x, sin, "rotary");
        Rank(x, 4, "rotary", "x");
        int n = x.Dim(2), d = x.Dim(3);
        if (d % 2 != 0) throw new ArgumentException($"rotary: head dim {d} must be even");
        if (cos.Rank != 2 || cos.Dim(0) != n || cos.Dim(1) != d || !sin.Shape.SequenceEqual(cos.Shape))
            throw new ArgumentException($"rotary: cos {cos.ShapeString} / sin {sin.ShapeString} must be [{n}, {d}] for x {x.ShapeString}");
        var y = OutputLike(x, output, "rotary");
        if (y.ElementCount == 0) return ResultOf(y, output);
        if (Kernel<IRotaryKernel>(x) is { } kernel) kernel.Rotary(x, cos, sin, y);
        else Decompositions.Rotary(x, cos, sin, y);
        return ResultOf(y, output);
    }

    /// <summary>Embedding lookup: table [V, D], ids I64 of any shape → [..ids, D].</summary>
    public static Tensor Embedding(this Tensor table, Tensor ids)
    {
        SameBackend(table, ids, "embedding");
        Rank(table, 2, "embedding", "table");
        if (ids.DType != DType.I64) throw new ArgumentException($"embedding: ids must be I64, got {ids.DType.Name()}");
        var shape = ids.ShapeArray().Append(table.Dim(1)).ToArray();
        using var flat = ids.Reshape(-1);
        var y = Tensor.Empty(table.Backend, table.DType, (int)ids.ElementCount, table.Dim(1));
        if (y.ElementCount > 0) table.Backend.Gather(table, flat, y);
        using (y) return y.Reshape(shape);
    }
}
