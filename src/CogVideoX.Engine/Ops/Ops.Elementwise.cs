namespace CogVideoX.Engine;

public static partial class Ops
{
    public static Tensor Unary(this Tensor x, UnaryOp op)
    {
        Float(x, op.ToString());
        var y = Like(x);
        if (y.ElementCount > 0) x.Backend.Unary(op, x, y);
        return y;
    }

    public static Tensor Silu(this Tensor x) => x.Unary(UnaryOp.Silu);

    public static Tensor GeluTanh(this Tensor x) => x.Unary(UnaryOp.GeluTanh);

    public static Tensor Gelu(this Tensor x) => x.Unary(UnaryOp.Gelu);

    public static Tensor Exp(this Tensor x) => x.Unary(UnaryOp.Exp);

    public static Tensor Sin(this Tensor x) => x.Unary(UnaryOp.Sin);

    public static Tensor Cos(this Tensor x) => x.Unary(UnaryOp.Cos);

    public static Tensor Neg(this Tensor x) => x.Unary(UnaryOp.Neg);

    public static Tensor Apply(this Tensor x, Activation activation) => activation switch
    {
        Activation.None => x.Alias(),
        Activation.GeluTanh => x.Unary(UnaryOp.GeluTanh),
        Activation.Gelu => x.Unary(UnaryOp.Gelu),
        Activation.Silu => x.Unary(UnaryOp.Silu),
        Activation.Relu => x.Unary(UnaryOp.Relu),
        _ => throw new ArgumentOutOfRangeException(nameof(activation)),
    };

    /// <summary>x * scale + shift.</summary>
    public static Tensor Affine(this Tensor x, float scale, float shift = 0f)
    {
        Float(x, "affine");
        var y = Like(x);
        if (y.ElementCount > 0) x.Backend.Affine(x, scale, shift, y);
        return y;
    }

    public static Tensor Scale(this Tensor x, float scale) => x.Affine(scale, 0f);

    public static Tensor Clamp(this Tensor x, float min, float max)
    {
        Float(x, "clamp");
        var y = Like(x);
        if (y.ElementCount > 0) x.Backend.Clamp(x, min, max, y);
        return y;
    }

    public static Tensor Binary(this Tensor a, Tensor b, BinaryOp op)
    {
        SameBackend(a, b, op.ToString());
        SameDType(a, b, op.ToString());
        Float(a, op.ToString());
        var shape = BroadcastShape(a.Shape, b.Shape);
        var y = Like(a, shape);
        if (y.ElementCount == 0) return y;
        using var ab = a.BroadcastTo(shape);
        using var bb = b.BroadcastTo(shape);
        a.Backend.Binary(op, ab, bb, y);
        return y;
    }

    public static Tensor Add(this Tensor a, Tensor b) => a.Binary(b, BinaryOp.Add);

    /// <summary>y = a + b for a and b of y's shape and dtype; y may be a itself (each element is read before it is written).</summary>
    public static void AddInto(this Tensor a, Tensor b, Tensor y)
    {
        SameBackend(a, y, "add");
        SameBackend(b, y, "add");
        if (!a.Shape.SequenceEqual(y.Shape) || !b.Shape.SequenceEqual(y.Shape) || a.DType != y.DType || b.DType != y.DType)
            throw new ArgumentException($"add: operands {a.ShapeString} and {b.ShapeString} must have the output's shape {y.ShapeString} and dtype {y.DType.Name()}");
        Float(a, "add");
        if (y.ElementCount > 0) y.Backend.Binary(BinaryOp.Add, a, b, y);
    }

    public static Tensor Sub(this Tensor a, Tensor b) => a.Binary(b, BinaryOp.Sub);

    public static Tensor Mul(this Tensor a, Tensor b) => a.Binary(b, BinaryOp.Mul);

    public static Tensor Div(this Tensor a, Tensor b) => a.Binary(b, BinaryOp.Div);

    public static Tensor Maximum(this Tensor a, Tensor b) => a.Binary(b, BinaryOp.Max);

    public static Tensor Minimum(this Tensor a, Tensor b) => a.Binary(b, BinaryOp.Min);

    /// <summary>Reduces the last dim.</summary>
    public static Tensor Reduce(this Tensor x, ReduceOp op)
    {
        Float(x, op.ToString());
        RankAtLeast(x, 1, op.ToString(), "input");
        if (x.Dim(-1) == 0 && op is ReduceOp.Max or ReduceOp.Min or ReduceOp.Mean)
            throw new ArgumentException($"{op} over an empty dimension of {x.ShapeString}");
        var shape = x.ShapeArray()[..^1];
        var y = Like(x, shape);
        if (y.ElementCount > 0) x.Backend.Reduce(op, x, y);
        return y;
    }

    public static Tensor Sum(this Tensor x) => x.Reduce(ReduceOp.Sum);

    public static Tensor Mean(this Tensor x) => x.Reduce(ReduceOp.Mean);
}
