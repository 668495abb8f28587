using System.Numerics.Tensors;

namespace CogVideoX.Engine;

public sealed unsafe partial class CpuBackend
{
    private const long ElementChunk = 1 << 15;

    public void Unary(UnaryOp op, Tensor x, Tensor y) => MapChunks(x, y, (src, dst) => UnarySpan(op, src, dst));

    /// <summary>One chunk of an element-wise map: dst[i] = f(src[i]), the two spans of equal length.</summary>
    private delegate void ChunkMap(ReadOnlySpan<float> src, Span<float> dst);

    /// <summary>
    /// y = f(x) element by element, in float32, over chunks of <see cref="ElementChunk"/> run in parallel; one
    /// delegate call per chunk, the vector work inside it.
    /// </summary>
    private static void MapChunks(Tensor x, Tensor y, ChunkMap map)
    {
        using var xc = F32(x);
        float* xp = Ptr<float>(xc);
        WriteF32Parallel(y, y.ElementCount, ElementChunk, (yp, s, e) =>
            map(new ReadOnlySpan<float>(xp + s, (int)(e - s)), new Span<float>(yp + s, (int)(e - s))));
    }

    /// <summary>y = op(x); x and y may be the same span (fused activations run in place).</summary>
    internal static void UnarySpan(UnaryOp op, ReadOnlySpan<float> x, Span<float> y)
    {
        switch (op)
        {
            case UnaryOp.Neg: TensorPrimitives.Negate(x, y); break;
            case UnaryOp.Exp: TensorPrimitives.Exp(x, y); break;
            case UnaryOp.Log: TensorPrimitives.Log(x, y); break;
            case UnaryOp.Sqrt: TensorPrimitives.Sqrt(x, y); break;
            case UnaryOp.Rsqrt: TensorPrimitives.ReciprocalSqrt(x, y); break;
            case UnaryOp.Sin: TensorPrimitives.Sin(x, y); break;
            case UnaryOp.Cos: TensorPrimitives.Cos(x, y); break;
            case UnaryOp.Tanh: TensorPrimitives.Tanh(x, y); break;
            case UnaryOp.Sigmoid: TensorPrimitives.Sigmoid(x, y); break;
            case UnaryOp.Abs: TensorPrimitives.Abs(x, y); break;
            case UnaryOp.Square: TensorPrimitives.Multiply(x, x, y); break;
            case UnaryOp.Relu: VectorMath.Map<ReluOperator>(x, y); break;
            case UnaryOp.Silu: VectorMath.Map<SiluOperator>(x, y); break;
            case UnaryOp.GeluTanh: VectorMath.Map<GeluTanhOperator>(x, y); break;
            case UnaryOp.Gelu:
                for (int i = 0; i < x.Length; i++)
                {
                    float v = x[i];
                    y[i] = 0.5f * v * (1f + Erf(v * 0.70710678118654752f));
                }
                break;
            default: throw new ArgumentOutOfRangeException(nameof(op));
        }
    }

    /// <summary>erf with |error| &lt; 1.2e-7 (W. J. Cody's rational approximations), enough for float32.</summary>
    internal static float Erf(float xf)
    {
        double x = xf;
        double ax = Math.Abs(x);
        double r;
        if (ax < 0.46875)
        {
            double t = x * x;
            double num = (((0.1857777061846031526730 * t + 3.161123743870565596947) * t + 113.8641541510501556495) * t + 377.4852376853020208137) * t + 3209.377589138469472562;
            double den = (((t + 23.60129095234412093499) * t + 244.0246379344441733056) * t + 1282.616526077372275645) * t + 2844.236833439170622273;
            return (float)(x * num / den);
        }
        if (ax < 4.0)
        {
            // Cody's leading coefficient is the tiny 2.15e-8 and the constant term 1230.34 (they were swapped once).
            double num = (((((((0.0000000215311535474403846 * ax + 0.5641884969886700891) * ax + 8.883149794388375941) * ax + 66.11919063714162948) * ax + 298.6351381974001311) * ax + 881.9522212417690904) * ax + 1712.047612634070583) * ax + 2051.078377826071465) * ax + 1230.339354797997253;
            double den = ((((((((ax + 15.74492611070983473) * ax + 117.6939508913124993) * ax + 537.1811018620098575) * ax + 1621.389574566690189) * ax + 3290.799235733459627) * ax + 4362.619090143247158) * ax + 3439.367674143721637) * ax + 1230.339357707891949);
            r = 1.0 - Math.Exp(-ax * ax) * num / den;
        }
        else
        {
            double z = 1.0 / (ax * ax);
            double num = ((((0.0163153871373020978498 * z + 0.305326634961232344) * z + 0.360344899949804439) * z + 0.125781726111229246) * z + 0.0160837851487422766) * z + 0.000658749161529837803;
            double den = ((((z + 2.56852019228982242) * z + 1.87295284992346725) * z + 0.527905102951428412) * z + 0.0605183413124413191) * z + 0.00233520497626869185;
            r = 1.0 - Math.Exp(-ax * ax) / ax * (0.564189583547756287 - z * num / den);
        }
        return (float)(x < 0 ? -r : r);
    }

    public void Affine(Tensor x, float scale, float shift, Tensor y) => MapChunks(x, y, (src, dst) =>
    {
        TensorPrimitives.Multiply(src, scale, dst);
        TensorPrimitives.Add(dst, shift, dst);
    });

    public void Clamp(Tensor x, float min, float max, Tensor y) =>
        MapChunks(x, y, (src, dst) => TensorPrimitives.Clamp(src, min, max, dst));

    public void AddMul(Tensor x, Tensor h, Tensor gate, Tensor y)
    {
        using var xc = F32(x);
        using var hc = F32(h);
        using var gc = F32(gate);
        float* xp = Ptr<float>(xc);
        float* hp = Ptr<float>(hc);
        float* gp = Ptr<float>(gc);
        WriteF32Parallel(y, y.ElementCount, ElementChunk, (yp, s, e) =>
        {
            // The product is rounded to float before the sum (no fused multiply-add), as the GPU kernels do.
            for (long i = s; i < e; i++)
            {
                float product = hp[i] * gp[i];
                yp[i] = xp[i] + product;
            }
        });
    }

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        // Widen half inputs once; broadcast (stride-0) views stay views so nothing is materialised.
        using var af = F32View(a);
        using var bf = F32View(b);
        var (shape, sa, sb) = Collapse(y.Shape, af.Layout.Strides, bf.Layout.Strides);
        // The output WriteF32 hands over is contiguous, so collapsing keeps its rows contiguous: row r starts at r * inner.
        int inner = shape[^1];
        long saI = sa[^1], sbI = sb[^1];
        float* ap = Ptr<float>(af);
        float* bp = Ptr<float>(bf);
        WriteF32Parallel(y, y.ElementCount / inner, Math.Max(1, ElementChunk / inner), (yp, r0, r1) =>
        {
            for (long r = r0; r < r1; r++)
            {
                long rem = r, ao = 0, bo = 0;
                for (int d = shape.Length - 2; d >= 0; d--)
                {
                    long i = rem % shape[d];
                    rem /= shape[d];
                    ao += i * sa[d];
                    bo += i * sb[d];
                }
                BinaryRow(op, ap + ao, saI, bp + bo, sbI, yp + r * inner, inner);
            }
        });
    }

    private static void BinaryRow(BinaryOp op, float* a, long sa, float* b, long sb, float* y, int n)
    {
        var ys = new Span<float>(y, n);
        // A scalar first operand of a commutative op changes sides, so the (span, scalar) forms below serve it too.
        if (sa == 0 && sb == 1 && op is not (BinaryOp.Sub or BinaryOp.Div))
        {
            float* t = a;
            a = b;
            b = t;
            (sa, sb) = (sb, sa);
        }
        if (sa == 1 && sb == 1)
        {
            var xa = new ReadOnlySpan<float>(a, n);
            var xb = new ReadOnlySpan<float>(b, n);
            switch (op)
            {
                case BinaryOp.Add: TensorPrimitives.Add(xa, xb, ys); return;
                case BinaryOp.Sub: TensorPrimitives.Subtract(xa, xb, ys); return;
                case BinaryOp.Mul: TensorPrimitives.Multiply(xa, xb, ys); return;
                case BinaryOp.Div: TensorPrimitives.Divide(xa, xb, ys); return;
                case BinaryOp.Max: TensorPrimitives.Max(xa, xb, ys); return;
                case BinaryOp.Min: TensorPrimitives.Min(xa, xb, ys); return;
            }
        }
        if (sa == 1 && sb == 0)
        {
            var xa = new ReadOnlySpan<float>(a, n);
            float vb = *b;
            switch (op)
            {
                case BinaryOp.Add: TensorPrimitives.Add(xa, vb, ys); return;
                case BinaryOp.Sub: TensorPrimitives.Subtract(xa, vb, ys); return;
                case BinaryOp.Mul: TensorPrimitives.Multiply(xa, vb, ys); return;
                case BinaryOp.Div: TensorPrimitives.Divide(xa, vb, ys); return;
                case BinaryOp.Max: TensorPrimitives.Max(xa, vb, ys); return;
                case BinaryOp.Min: TensorPrimitives.Min(xa, vb, ys); return;
            }
        }
        if (sa == 0 && sb == 1)
        {
            var xb = new ReadOnlySpan<float>(b, n);
            float va = *a;
            switch (op)
            {
                case BinaryOp.Sub: TensorPrimitives.Subtract(va, xb, ys); return;
                case BinaryOp.Div: TensorPrimitives.Divide(va, xb, ys); return;
            }
        }
        for (int i = 0; i < n; i++)
            ys[i] = Apply(op, a[i * sa], b[i * sb]);
    }

    internal static float Apply(BinaryOp op, float a, float b) => op switch
    {
        BinaryOp.Add => a + b,
        BinaryOp.Sub => a - b,
        BinaryOp.Mul => a * b,
        BinaryOp.Div => a / b,
        BinaryOp.Max => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : Math.Max(a, b),
        BinaryOp.Min => float.IsNaN(a) || float.IsNaN(b) ? float.NaN : Math.Min(a, b),
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    public void Reduce(ReduceOp op, Tensor x, Tensor y)
    {
        using var xc = F32(x);
        int k = xc.Dim(-1);
        float* xp = Ptr<float>(xc);
        WriteF32Parallel(y, y.ElementCount, Math.Max(1, ElementChunk / Math.Max(k, 1)), (yp, s, e) =>
        {
            for (long r = s; r < e; r++)
            {
                var row = new ReadOnlySpan<float>(xp + r * k, k);
                yp[r] = op switch
                {
                    ReduceOp.Sum => (float)VectorMath.Sum(row),
                    ReduceOp.Mean => (float)(VectorMath.Sum(row) / k),
                    ReduceOp.Max => TensorPrimitives.Max(row),
                    ReduceOp.Min => TensorPrimitives.Min(row),
                    _ => throw new ArgumentOutOfRangeException(nameof(op)),
                };
            }
        });
    }
}
