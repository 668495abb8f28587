namespace CogVideoX.Engine.Cuda;

public sealed partial class CudaBackend
{
    public void Reduce(ReduceOp op, Tensor x, Tensor y) =>
        Rows("reduce", x, y, null, null, 0f, (int)op);

    public void Softmax(Tensor x, Tensor y) => Rows("softmax", x, y, null, null, 0f, 0);

    public void LayerNorm(Tensor x, Tensor? gamma, Tensor? beta, float eps, Tensor y) =>
        Rows("layer_norm", x, y, gamma, beta, eps, 0);

    public void RmsNorm(Tensor x, Tensor? gamma, float eps, Tensor y) =>
        Rows("rms_norm", x, y, gamma, null, eps, 0);

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

    /// <summary>Threads per row block: a power of two from 32 to 256, about one element per thread for short rows.</summary>
    private static uint RowThreads(int cols)
    {
        uint t = 32;
        while (t < 256 && t < cols) t <<= 1;
        return t;
    }

    public void GroupNorm(Tensor x, int groups, Tensor? gamma, Tensor? beta, float eps, Activation activation, Tensor y)
    {
        if (y.ElementCount == 0) return;
        int n = x.Dim(0), c = x.Dim(1);
        long spatial = x.ElementCount / ((long)n * c);
        long groupLength = c / groups * spatial;
        int total = n * groups;
        using var xc = Contiguous(x);
        using var g = F32(gamma);
        using var b = F32(beta);
        // Enough blocks per group to fill the GPU even when there are few groups (the VAE has 32 per frame batch).
        int splits = (int)Math.Clamp((4L * Info.Multiprocessors + total - 1) / total, 1, Math.Max(1, groupLength / 4096));
        using var partial = Tensor.Empty(this, DType.F32, total * splits * 4);  // two doubles per split
        using var stats = Tensor.Empty(this, DType.F32, total * 2);
        var statsArgs = new GroupStatsArgs { X = Ptr(xc), Partial = Ptr(partial), GroupLength = groupLength, Splits = splits };
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
            };
            Launch(Function("norm", $"group_norm_apply_{Suffix(xc.DType)}_{Suffix(output.DType)}"), Blocks(output.ElementCount), 1, 256, ref args);
        });
    }
}
