namespace CogVideoX.Engine.Cuda;

public sealed partial class CudaBackend
{
    public void Reduce(ReduceOp op, Tensor x, Tensor y)
    {
        using var profiled = Profile("reduce", y);
        Rows("reduce", x, y, null, null, 0f, (int)op);
    }

    public void Softmax(Tensor x, Tensor y)
    {
        using var profiled = Profile("softmax", y);
        Rows("softmax", x, y, null, null, 0f, 0);
    }

    public void LayerNorm(Tensor x, Tensor? gamma, Tensor? beta, float eps, Tensor y)
    {
        using var profiled = Profile("layer_norm", y);
        if (y.ElementCount == 0) return;
        // Rows held in registers and read through their strides (no contiguous copy of, say, a head view of a QKV
        // projection); other layouts and sizes take the block-per-row kernel.
        if (TryLayerNormRows(x, gamma, beta, null, null, eps, y)) return;
        Rows("layer_norm", x, y, gamma, beta, eps, 0);
    }

    public void RmsNorm(Tensor x, Tensor? gamma, float eps, Tensor y)
    {
        using var profiled = Profile("rms_norm", y);
        Rows("rms_norm", x, y, gamma, null, eps, 0);
    }

    /// <summary>One block per row of the last dim; x is made contiguous, gamma and beta F32.</summary>
    private void Rows(string kernel, Tensor x, Tensor y, Tensor? gamma, Tensor? beta, float eps, int op)
    {
        if (y.ElementCount == 0) return;
        int cols = x.Dim(-1);
        long rows = cols == 0 ? y.ElementCount : x.ElementCount / cols;
        if (rows > int.MaxValue) throw new NotSupportedException($"{kernel}: {rows} rows exceed the CUDA grid limit");
        using var xc = Contiguous(x);
        using var g = F32(gamma);
        using var b = F32(beta);
        IntoOutput(y, x.DType, output =>
        {
            var args = new RowArgs
            {
                X = Ptr(xc),
                Y = Ptr(output),
                Gamma = Ptr(g, this),
                Beta = Ptr(b, this),
                Rows = rows,
                Cols = cols,
                Op = op,
                Eps = eps,
            };
            Launch(Function("norm", $"{kernel}_{Suffix(xc.DType)}_{Suffix(output.DType)}"), (uint)rows, 1, RowThreads(cols), ref args);
        });
    }

    /// <summary>[N·G, 2] float32: each group's mean and 1/√(variance + eps), of a contiguous [N, C, ...] tensor.</summary>
    private Tensor GroupStatistics(Tensor xc, int groups, float eps)
    {
        int n = xc.Dim(0), c = xc.Dim(1);
        long spatial = xc.ElementCount / ((long)n * c);
        long groupLength = c / groups * spatial;
        int total = n * groups;
        // Enough blocks per group to fill the GPU even when there are few groups (the VAE has 32 per frame batch).
        int splits = (int)Math.Clamp((4L * Info.Multiprocessors + total - 1) / total, 1, Math.Max(1, groupLength / 4096));
        using var partial = Tensor.Empty(this, DType.F32, total * splits * 4);  // two doubles per split
        var stats = Tensor.Empty(this, DType.F32, total * 2);
        var statsArgs = new GroupStatsArgs
        {
            X = Ptr(xc),
            Partial = Ptr(partial),
            GroupLength = groupLength,
            Splits = splits,
            // Eight elements per load where every group starts on a 16-byte boundary.
            Pad = groupLength % 8 == 0 && Ptr(xc) % 16 == 0 ? 1 : 0,
        };
        Launch(Function("norm", $"group_norm_stats_{Suffix(xc.DType)}"), (uint)splits, (uint)total, 256, ref statsArgs);
        var finalizeArgs = new GroupFinalizeArgs
        {
            Partial = Ptr(partial),
            Stats = Ptr(stats),
            GroupLength = groupLength,
            GroupsTotal = total,
            Splits = splits,
            Eps = eps,
        };
        Launch(Function("norm", "group_norm_finalize"), (uint)((total + 127) / 128), 1, 128, ref finalizeArgs);
        return stats;
    }

    public void SpatialGroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Activation activation, Tensor y)
    {
        using var profiled = Profile("spatial_group_norm", y);
        if (y.ElementCount == 0) return;
        int w = x.Dim(4);
        bool fast = x.DType is DType.F32 or DType.F16 or DType.BF16 && y.DType == x.DType && y.IsContiguous && scale.IsContiguous && shift.IsContiguous
            && w % 8 == 0 && Ptr(y) % 16 == 0;
        if (!fast)
        {
            // Any other layout: the modulation upsampled to full size, then the norm and element-wise passes.
            using var normed = Tensor.Empty(this, DType.F32, x.ShapeArray());
            GroupNorm(x, groups, gamma, beta, eps, Activation.None, normed);
            using var fullScale = Tensor.Empty(this, scale.DType, x.ShapeArray());
            using var fullShift = Tensor.Empty(this, shift.DType, x.ShapeArray());
            UpsampleNearest(scale, fullScale);
            UpsampleNearest(shift, fullShift);
            Binary(BinaryOp.Mul, normed, fullScale, normed);
            Binary(BinaryOp.Add, normed, fullShift, normed);
            Map(ActivationOp(activation), 1f, 0f, normed, y);
            return;
        }
        using var xc = Contiguous(x);
        if (Ptr(xc) % 16 != 0)
        {
            using var aligned = xc.Clone();
            SpatialGroupNorm(aligned, groups, gamma, beta, scale, shift, eps, activation, y);
            return;
        }
        using var g = F32(gamma);
        using var b = F32(beta);
        using var stats = GroupStatistics(xc, groups, eps);
        var args = new SpatialNormArgs
        {
            X = Ptr(xc),
            Y = Ptr(y),
            Stats = Ptr(stats),
            Gamma = Ptr(g, this),
            Beta = Ptr(b, this),
            Scale = Ptr(scale),
            Shift = Ptr(shift),
            Vectors = y.ElementCount / 8,
            Channels = x.Dim(1),
            Groups = groups,
            Frames = x.Dim(2),
            Height = x.Dim(3),
            Width = w,
            Zh = scale.Dim(3),
            Zw = scale.Dim(4),
            Fh = x.Dim(3) / scale.Dim(3),
            Fw = w / scale.Dim(4),
            Activation = (int)activation,
        };
        Launch(Function("norm", $"spatial_norm_{Suffix(x.DType)}"), Blocks(args.Vectors), 1, 256, ref args);
    }

    /// <summary>The element-wise map code of an activation (identity as an affine ×1 + 0: pass p0 = 1, p1 = 0).</summary>
    private static int ActivationOp(Activation activation) => activation switch
    {
        Activation.None => MapArgs.Affine,
        Activation.GeluTanh => (int)UnaryOp.GeluTanh,
        Activation.Gelu => (int)UnaryOp.Gelu,
        Activation.Silu => (int)UnaryOp.Silu,
        Activation.Relu => (int)UnaryOp.Relu,
        _ => throw new ArgumentOutOfRangeException(nameof(activation)),
    };

    /// <summary>Threads per row block: a power of two from 32 to 256, about one element per thread for short rows.</summary>
    private static uint RowThreads(int cols)
    {
        uint t = 32;
        while (t < 256 && t < cols) t <<= 1;
        return t;
    }

    public void GroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, float eps, Activation activation, Tensor y)
    {
        using var profiled = Profile("group_norm", y);
        if (y.ElementCount == 0) return;
        int n = x.Dim(0), c = x.Dim(1);
        long spatial = x.ElementCount / ((long)n * c);
        using var xc = Contiguous(x);
        using var g = F32(gamma);
        using var b = F32(beta);
        using var stats = GroupStatistics(xc, groups, eps);
        IntoOutput(y, x.DType, output =>
        {
            var args = new GroupApplyArgs
            {
                X = Ptr(xc),
                Y = Ptr(output),
                Stats = Ptr(stats),
                Gamma = Ptr(g, this),
                Beta = Ptr(b, this),
                Count = output.ElementCount,
                Spatial = spatial,
                Channels = c,
                Groups = groups,
                Activation = (int)activation,
                // Eight elements (one channel) per access with 32-bit index math, where the layout allows it.
                Pad = spatial % 8 == 0 && output.ElementCount < int.MaxValue && Ptr(xc) % 16 == 0 && Ptr(output) % 16 == 0 ? 1 : 0,
            };
            Launch(Function("norm", $"group_norm_apply_{Suffix(xc.DType)}_{Suffix(output.DType)}"), Blocks(output.ElementCount), 1, 256, ref args);
        });
    }
}
