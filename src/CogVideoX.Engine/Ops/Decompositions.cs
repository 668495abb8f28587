namespace CogVideoX.Engine;

/// <summary>
/// The reference form of every <see cref="Capability"/>, built from <see cref="Ops"/> over core kernels: what a
/// backend without the fused kernel runs, and what the op catalogue checks the fused kernels against. Each method has
/// its kernel interface's signature and contract (inputs validated and broadcast, y allocated by the caller) so a
/// backend may also call one for the cases its own kernel does not cover. Intermediates are float32, so every step
/// is rounded once in float32 as the fused kernels promise; only y takes the caller's dtype. They trade memory and
/// passes for simplicity (attention is the exception: it works through query rows in blocks).
/// </summary>
public static class Decompositions
{
    /// <summary>Score elements one block of the attention decomposition may hold.</summary>
    private const long AttentionScoreElements = 1L << 24;

    [ThreadStatic] private static int t_forced;

    /// <summary>True while <see cref="Force"/> is in effect on this thread.</summary>
    public static bool Forced => t_forced > 0;

    /// <summary>
    /// Until disposed, <see cref="Ops"/> on this thread runs every capability as its decomposition even where the
    /// backend has the kernel (the op catalogue compares the two on one backend this way).
    /// </summary>
    public static IDisposable Force()
    {
        t_forced++;
        return new ForceScope();
    }

    private sealed class ForceScope : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            t_forced--;
        }
    }

    /// <summary>t as float32: itself (new reference, any layout) when it already is, else a converted copy.</summary>
    private static Tensor Wide(Tensor t) => t.DType == DType.F32 ? t.Alias() : t.To(DType.F32);

    private static void Store(Tensor result, Tensor y) => y.Backend.Copy(result, y);

    public static void Linear(Tensor x, Tensor weight, Tensor? bias, Activation activation, Tensor y)
    {
        using var scope = new TensorScope();
        var product = Wide(x).MatMul(Wide(weight).Transpose(0, 1));
        var biased = bias is null ? product : product.Add(Wide(bias));
        Store(biased.Apply(activation), y);
    }

    public static void Softmax(Tensor x, Tensor y)
    {
        using var scope = new TensorScope();
        var xf = Wide(x);
        var shifted = xf.Sub(xf.Reduce(ReduceOp.Max).Unsqueeze(-1));
        var e = shifted.Exp();
        Store(e.Div(e.Sum().Unsqueeze(-1)), y);
    }

    /// <summary>(x − mean) / sqrt(var + eps) over the last dim of a float32 tensor (biased variance).</summary>
    private static Tensor Normalise(Tensor xf, float eps)
    {
        using var mean = xf.Mean();
        using var meanColumn = mean.Unsqueeze(-1);
        using var centred = xf.Sub(meanColumn);
        using var squares = centred.Unary(UnaryOp.Square);
        using var variance = squares.Mean();
        using var padded = variance.Affine(1f, eps);
        using var inverse = padded.Unary(UnaryOp.Rsqrt);
        using var inverseColumn = inverse.Unsqueeze(-1);
        return centred.Mul(inverseColumn);
    }

    /// <summary>(norm(x)·gamma + beta) in float32.</summary>
    private static Tensor AffineLayerNorm(Tensor x, Tensor? gamma, Tensor? beta, float eps)
    {
        using var scope = new TensorScope();
        var y = Normalise(Wide(x), eps);
        if (gamma is not null) y = y.Mul(Wide(gamma));
        if (beta is not null) y = y.Add(Wide(beta));
        return scope.Keep(y);
    }

    public static void LayerNorm(Tensor x, Tensor? gamma, Tensor? beta, float eps, Tensor y)
    {
        using var normed = AffineLayerNorm(x, gamma, beta, eps);
        Store(normed, y);
    }

    public static void RmsNorm(Tensor x, Tensor? gamma, float eps, Tensor y)
    {
        using var scope = new TensorScope();
        var xf = Wide(x);
        var inverse = xf.Unary(UnaryOp.Square).Mean().Affine(1f, eps).Unary(UnaryOp.Rsqrt);
        var normed = xf.Mul(inverse.Unsqueeze(-1));
        Store(gamma is null ? normed : normed.Mul(Wide(gamma)), y);
    }

    /// <summary>act(GroupNorm(x)·gamma + beta) in float32, x's shape.</summary>
    private static Tensor AffineGroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, float eps)
    {
        using var scope = new TensorScope();
        var normed = Normalise(Wide(x).Reshape(x.Dim(0), groups, -1), eps).Reshape(x.ShapeArray());
        // gamma and beta [C] apply along dim 1: viewed as [C, 1, ...] they broadcast over the trailing dims.
        var perChannel = new int[x.Rank - 1];
        Array.Fill(perChannel, 1);
        perChannel[0] = x.Dim(1);
        if (gamma is not null) normed = normed.Mul(Wide(gamma).Reshape(perChannel));
        if (beta is not null) normed = normed.Add(Wide(beta).Reshape(perChannel));
        return scope.Keep(normed);
    }

    public static void GroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, float eps, Activation activation, Tensor y)
    {
        using var scope = new TensorScope();
        Store(AffineGroupNorm(x, groups, gamma, beta, eps).Apply(activation), y);
    }

    public static void ModulatedLayerNorm(Tensor x, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Tensor y)
    {
        using var scope = new TensorScope();
        var normed = AffineLayerNorm(x, gamma, beta, eps);
        Store(normed.Mul(Wide(scale).Affine(1f, 1f)).Add(Wide(shift)), y);
    }

    /// <summary>
    /// The norm into a tensor of x's dtype (so its values are rounded as the norm alone stores them), then its rows
    /// quantized as an FP8 linear quantizes its input, the codes and scales copied into their (possibly strided) places.
    /// </summary>
    public static void ModulatedLayerNormFp8(Tensor x, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Tensor codes, Tensor scales)
    {
        using var normed = x.ModulatedLayerNorm(gamma, beta, scale, shift, eps);
        int d = x.Dim(-1);
        using var rows = normed.Reshape((int)(normed.ElementCount / d), d);
        using var quantized = rows.QuantizeFp8();
        using var c = quantized.Codes.Reshape(codes.ShapeArray());
        using var s = quantized.Scales.Reshape(scales.ShapeArray());
        CopyRows(c, codes);
        CopyRows(s, scales);
    }

    /// <summary>
    /// Copies a contiguous tensor into a view of its shape as contiguous pieces where the view is strided: a backend
    /// need not copy strided FP8 codes (no element conversion exists for them), only whole rows.
    /// </summary>
    private static void CopyRows(Tensor source, Tensor destination)
    {
        if (destination.IsContiguous || destination.DType != DType.F8E4M3 || destination.Rank <= 1)
        {
            source.Backend.Copy(source, destination);
            return;
        }
        for (int i = 0; i < destination.Dim(0); i++)
        {
            using var from = source.Select(0, i);
            using var to = destination.Select(0, i);
            CopyRows(from, to);
        }
    }

    public static void AddMul(Tensor x, Tensor h, Tensor gate, Tensor y)
    {
        // The sum is complete before y is written, so y may be x.
        using var scope = new TensorScope();
        Store(Wide(x).Add(Wide(h).Mul(Wide(gate))), y);
    }

    public static void SpatialGroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Activation activation, Tensor y)
    {
        using var scope = new TensorScope();
        int fh = x.Dim(3) / scale.Dim(3), fw = x.Dim(4) / scale.Dim(4);
        var normed = AffineGroupNorm(x, groups, gamma, beta, eps);
        var modulated = normed.Mul(Wide(scale).UpsampleNearest(fh, fw)).Add(Wide(shift).UpsampleNearest(fh, fw));
        Store(modulated.Apply(activation), y);
    }

    public static void UpsampleNearest(Tensor x, Tensor y)
    {
        var (source, destination) = Ops.NearestUpsampleViews(x, y);
        using (source)
        using (destination)
            y.Backend.Copy(source, destination);
    }

    public static void Attention(Tensor q, Tensor k, Tensor v, Tensor? bias, float scale, Tensor y)
    {
        using var scope = new TensorScope();
        int b = q.Dim(0), h = q.Dim(1), nq = q.Dim(2), nk = k.Dim(2);
        var keysT = Wide(k).Transpose(2, 3);
        var values = Wide(v);
        // Query rows in blocks, so the scores held at once stay bounded whatever the sequence length.
        int rows = (int)Math.Clamp(AttentionScoreElements / Math.Max(1L * b * h * nk, 1), 1, nq);
        for (int start = 0; start < nq; start += rows)
        {
            using var block = new TensorScope();
            int n = Math.Min(rows, nq - start);
            var scores = Wide(q.Narrow(2, start, n)).MatMul(keysT).Scale(scale);
            if (bias is not null) scores = scores.Add(Wide(bias.Narrow(2, start, n)));
            Store(scores.Softmax().MatMul(values), y.Narrow(2, start, n));
        }
    }

    /// <summary>The norm into y (so its result is rounded to y's dtype, x's), then the trailing tokens rotated in place.</summary>
    public static void LayerNormRotary(Tensor x, Tensor? gamma, Tensor? beta, float eps, Tensor cos, Tensor sin, Tensor y)
    {
        x.LayerNormInto(gamma, beta, eps, y);
        int m = cos.Dim(0);
        if (m == 0) return;
        using var rotated = y.Narrow(2, y.Dim(2) - m, m);
        rotated.RotaryInto(cos, sin, rotated);
    }

    public static void Rotary(Tensor x, Tensor cos, Tensor sin, Tensor y)
    {
        // rotated pairs (−x[2i+1], x[2i]); y = x·cos + rotated·sin, complete before y (which may be x) is written.
        using var scope = new TensorScope();
        int b = x.Dim(0), h = x.Dim(1), n = x.Dim(2), d = x.Dim(3);
        var xf = Wide(x);
        var pairs = xf.Reshape(b, h, n, d / 2, 2);
        var rotated = Ops.Stack(-1, pairs.Select(4, 1).Neg(), pairs.Select(4, 0)).Reshape(b, h, n, d);
        Store(xf.Mul(Wide(cos)).Add(rotated.Mul(Wide(sin))), y);
    }
}
