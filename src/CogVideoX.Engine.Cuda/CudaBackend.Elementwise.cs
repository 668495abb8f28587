namespace CogVideoX.Engine.Cuda;

public sealed partial class CudaBackend
{
    public void Copy(Tensor source, Tensor destination)
    {
        using var profiled = Profile("copy", destination, source.IsContiguous ? "contiguous" : "strided");
        if (!source.Shape.SequenceEqual(destination.Shape))
            throw new ArgumentException($"copy: shapes differ ({source.ShapeString} → {destination.ShapeString})");
        long count = destination.ElementCount;
        if (count == 0) return;
        MakeCurrent();
        if (source.DType == destination.DType && source.IsContiguous && destination.IsContiguous)
        {
            long bytes = count * source.DType.SizeOf();
            CudaDriver.Check(CudaDriver.cuMemcpyDtoDAsync_v2(Ptr(destination), Ptr(source), (nuint)bytes, _stream), "cuMemcpyDtoDAsync");
            return;
        }
        var args = new CopyArgs
        {
            Source = Ptr(source),
            Destination = Ptr(destination),
            Map = IndexMap3.Create(destination.Shape, source.Layout.Strides, destination.Layout.Strides, default),
        };
        if (source.DType != DType.I64 && destination.DType != DType.I64)
            args.Map.TryVectorise(2, [args.Source, args.Destination]);
        Launch(Function("copy", $"copy_{Suffix(source.DType)}_{Suffix(destination.DType)}"), Blocks(count), 1, 256, ref args);
    }

    public void Fill(Tensor destination, double value)
    {
        using var profiled = Profile("fill", destination);
        long count = destination.ElementCount;
        if (count == 0) return;
        MakeCurrent();
        // The bit pattern is computed here exactly as the CPU backend rounds the value.
        ulong bits = destination.DType switch
        {
            DType.F32 => BitConverter.SingleToUInt32Bits((float)value),
            DType.F16 => BitConverter.HalfToUInt16Bits((Half)value),
            DType.BF16 => DTypes.FloatToBF16((float)value),
            DType.I64 => (ulong)(long)value,
            _ => throw new ArgumentOutOfRangeException(nameof(destination)),
        };
        if (destination.IsContiguous && destination.DType == DType.F32)
        {
            CudaDriver.Check(CudaDriver.cuMemsetD32Async(Ptr(destination), (uint)bits, (nuint)count, _stream), "cuMemsetD32Async");
            return;
        }
        if (destination.IsContiguous && destination.DType is DType.F16 or DType.BF16)
        {
            CudaDriver.Check(CudaDriver.cuMemsetD16Async(Ptr(destination), (ushort)bits, (nuint)count, _stream), "cuMemsetD16Async");
            return;
        }
        var args = new FillArgs
        {
            Destination = Ptr(destination),
            Bits = bits,
            Map = IndexMap3.Create(destination.Shape, destination.Layout.Strides, default, default),
        };
        string kernel = destination.DType.SizeOf() switch { 2 => "fill_b16", 4 => "fill_b32", _ => "fill_b64" };
        Launch(Function("copy", kernel), Blocks(count), 1, 256, ref args);
    }

    public void Unary(UnaryOp op, Tensor x, Tensor y)
    {
        using var profiled = Profile("unary " + op, y);
        Map((int)op, 0f, 0f, x, y);
    }

    public void Affine(Tensor x, float scale, float shift, Tensor y)
    {
        using var profiled = Profile("affine", y);
        Map(MapArgs.Affine, scale, shift, x, y);
    }

    public void Clamp(Tensor x, float min, float max, Tensor y)
    {
        using var profiled = Profile("clamp", y);
        Map(MapArgs.Clamp, min, max, x, y);
    }

    private void Map(int op, float p0, float p1, Tensor x, Tensor y)
    {
        if (y.ElementCount == 0) return;
        if (!HasKernelPair(x.DType, y.DType))
        {
            using var tmp = Tensor.Empty(this, DType.F32, y.ShapeArray());
            Map(op, p0, p1, x, tmp);
            Copy(tmp, y);
            return;
        }
        var args = new MapArgs
        {
            X = Ptr(x),
            Y = Ptr(y),
            Op = op,
            P0 = p0,
            P1 = p1,
            Map = IndexMap3.Create(y.Shape, x.Layout.Strides, y.Layout.Strides, default),
        };
        args.Map.TryVectorise(2, [args.X, args.Y]);
        Launch(Function("elementwise", $"map_{Suffix(x.DType)}_{Suffix(y.DType)}"), Blocks(y.ElementCount), 1, 256, ref args);
    }

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y)
    {
        using var profiled = Profile("binary " + op, y);
        if (y.ElementCount == 0) return;
        if (a.DType != b.DType)
        {
            using var af = F32View(a);
            using var bf = F32View(b);
            Binary(op, af, bf, y);
            return;
        }
        if (!HasKernelPair(a.DType, y.DType))
        {
            using var tmp = Tensor.Empty(this, DType.F32, y.ShapeArray());
            Binary(op, a, b, tmp);
            Copy(tmp, y);
            return;
        }
        var args = new BinaryArgs
        {
            A = Ptr(a),
            B = Ptr(b),
            Y = Ptr(y),
            Op = (int)op,
            Map = IndexMap3.Create(y.Shape, a.Layout.Strides, b.Layout.Strides, y.Layout.Strides),
        };
        args.Map.TryVectorise(3, [args.A, args.B, args.Y]);
        Launch(Function("elementwise", $"binary_{Suffix(a.DType)}_{Suffix(y.DType)}"), Blocks(y.ElementCount), 1, 256, ref args);
    }

    /// <summary>t itself when F32, else an F32 copy with the same shape (broadcast dims are materialised).</summary>
    private Tensor F32View(Tensor t)
    {
        if (t.DType == DType.F32) return t.Alias();
        var y = Tensor.Empty(this, DType.F32, t.ShapeArray());
        Copy(t, y);
        return y;
    }

    /// <summary>y[n, c, ...] += bias[c] for a contiguous y [N, C, ...].</summary>
    private void AddChannelBias(Tensor y, Tensor bias)
    {
        using var b = F32(bias)!;
        var args = new ChannelBiasArgs
        {
            Y = Ptr(y),
            Bias = Ptr(b),
            Count = y.ElementCount,
            Spatial = y.ElementCount / ((long)y.Dim(0) * y.Dim(1)),
            Channels = y.Dim(1),
        };
        // Eight elements (one channel) per access where the spatial size and alignment allow it.
        args.Pad = args.Spatial % 8 == 0 && Ptr(y) % 16 == 0 ? 1 : 0;
        Launch(Function("elementwise", $"channel_bias_{Suffix(y.DType)}"), Blocks(y.ElementCount), 1, 256, ref args);
    }
}
