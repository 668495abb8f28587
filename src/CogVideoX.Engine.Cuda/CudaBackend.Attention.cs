namespace CogVideoX.Engine.Cuda;

public sealed unsafe partial class CudaBackend
{
    /// <summary>
    /// F16/BF16 without bias, head dim 64, on sm_90: this backend's warp-specialised wgmma/TMA kernel
    /// (attention_sm90.cu), measured faster than cuDNN's fused SDPA there (COGVIDEOX_ATTENTION=cudnn puts cuDNN first).
    /// Otherwise cuDNN's fused flash attention when cuDNN offers an engine for the shapes and strides. Otherwise
    /// F16/BF16 with head dim ≤ 128 (T5's biased attention among them): this backend's flash-attention kernel (tensor
    /// cores, scores never leave registers). Otherwise (F32, or larger head dims) a composite over chunks of queries:
    /// cuBLASLt scores for a bounded block of rows, softmax, cuBLASLt times V — memory bounded by the scratch limit,
    /// never the whole [H, Nq, Nk].
    /// </summary>
    public void Attention(Tensor q, Tensor k, Tensor v, Tensor? bias, float scale, Tensor y)
    {
        using var profiled = Profile("attention", y, q.Dim(3) + (bias is null ? "" : " bias"));
        if (y.ElementCount == 0) return;
        bool ownFirst = Options.OwnAttentionFirst;
        if (ownFirst && TryHopperAttention(q, k, v, bias, scale, y)) return;
        if (TryCudnnAttention(q, k, v, bias, scale, y)) return;
        if (!ownFirst && TryHopperAttention(q, k, v, bias, scale, y)) return;
        _ownAttentionCalls++;
        bool flash = q.DType is DType.F16 or DType.BF16 && q.Dim(3) <= 128 && k.DType == q.DType && v.DType == q.DType
            && (bias is null || bias.DType == q.DType) && y.DType == q.DType;
        if (flash) FlashAttention(q, k, v, bias, scale, y);
        else ChunkedAttention(q, k, v, bias, scale, y);
    }

    private void FlashAttention(Tensor q, Tensor k, Tensor v, Tensor? bias, float scale, Tensor y)
    {
        int b = q.Dim(0), h = q.Dim(1), nq = q.Dim(2), d = q.Dim(3);
        if ((long)b * h > 65535) throw new NotSupportedException($"attention: batch x heads = {(long)b * h} exceeds the CUDA grid limit of 65535");
        var args = AttentionArguments(q, k, v, bias, scale, y);
        args.VectorKv = Rows16ByteAligned(k) && Rows16ByteAligned(v) ? 1 : 0;
        string name = $"flash_attention_{Suffix(q.DType)}_d{(d <= 64 ? 64 : 128)}";
        Launch(Function("attention", name), (uint)((nq + 63) / 64), (uint)(b * h), 128, ref args);
    }

    /// <summary>The pointers, sizes and strides both flash kernels take (attention.cu and attention_sm90.cu share the struct).</summary>
    private AttentionArgs AttentionArguments(Tensor q, Tensor k, Tensor v, Tensor? bias, float scale, Tensor y)
    {
        var args = new AttentionArgs
        {
            Q = Ptr(q),
            K = Ptr(k),
            V = Ptr(v),
            Bias = Ptr(bias, this),
            Y = Ptr(y),
            Heads = q.Dim(1),
            Nq = q.Dim(2),
            Nk = k.Dim(2),
            D = q.Dim(3),
            Scale = scale,
            HasBias = bias is null ? 0 : 1,
        };
        for (int i = 0; i < 4; i++)
        {
            args.QStrides[i] = q.Layout.Stride(i);
            args.KStrides[i] = k.Layout.Stride(i);
            args.VStrides[i] = v.Layout.Stride(i);
            args.BiasStrides[i] = bias?.Layout.Stride(i) ?? 0;
            args.YStrides[i] = y.Layout.Stride(i);
        }
        return args;
    }

    // The launch geometry of attention_sm90.cu, mirrored from its #defines; KernelConstantsTests evaluates the
    // kernel source's definitions and fails when the two disagree.

    /// <summary>Consumer warpgroups (64 query rows each) and K/V stages (its ATTN_NW, ATTN_STAGES).</summary>
    internal const int HopperAttentionWarpgroups = 4, HopperAttentionStages = 6;

    /// <summary>Threads per block: the consumer warpgroups and one producer warpgroup (its ATTN_THREADS).</summary>
    internal const int HopperAttentionThreads = 128 * (HopperAttentionWarpgroups + 1);

    /// <summary>The kernel's dynamic shared memory (its ATTN_SM90_SMEM): Q rows, the stages' K and V tiles, their barriers, alignment.</summary>
    internal const uint HopperAttentionSharedBytes = 64 * HopperAttentionWarpgroups * 128 + 2 * HopperAttentionStages * 64 * 128
        + 8 * (2 * HopperAttentionStages + 1) + 1024;

    /// <summary>
    /// The sm_90a flash-attention kernel (wgmma products, a TMA producer warpgroup, mbarrier stages), faster than cuDNN's
    /// and the sm_80 kernel at the transformers' shapes (docs/gpu-runs/2026-12-04-cuda-backend-history.md). Head dim 64, F16/BF16,
    /// no bias, rows contiguous and 16-byte aligned. False when the module cannot be built here (e.g. an NVRTC without
    /// sm_90a; noted once) or the driver refuses the tensor maps.
    /// </summary>
    private bool TryHopperAttention(Tensor q, Tensor k, Tensor v, Tensor? bias, float scale, Tensor y)
    {
        if (!KernelCompiler.IsAvailableFor("attention_sm90", Info.Major, Info.Minor) || !HopperAttentionApplies(q, k, v, bias, y)
            || !TryModule("attention_sm90"))
            return false;
        var args = new TmaAttentionArgs { Args = AttentionArguments(q, k, v, null, scale, y) };
        if (!TryTensorMap(q, args.Maps) || !TryTensorMap(k, args.Maps + TmaAttentionArgs.MapBytes)
            || !TryTensorMap(v, args.Maps + 2 * TmaAttentionArgs.MapBytes))
            return false;
        var function = Function("attention_sm90", $"flash_attention_sm90_{Suffix(q.DType)}_d64");
        int b = q.Dim(0), h = q.Dim(1), nq = q.Dim(2);
        int rows = 64 * HopperAttentionWarpgroups;
        _ownAttentionCalls++;
        Launch(function, (uint)((nq + rows - 1) / rows), (uint)(b * h), HopperAttentionThreads,
            HopperAttentionSharedBytes, ref args);
        return true;
    }

    /// <summary>
    /// Encodes the kernel's view of a [B, H, N, 64] tensor for the tensor memory accelerator: dims (64, N, H, B), byte
    /// strides, 64 x 64 boxes, the 128-byte swizzle, zeros past the end. False (noted) when the driver refuses it.
    /// </summary>
    private bool TryTensorMap(Tensor t, byte* destination)
    {
        var aligned = stackalloc byte[TmaAttentionArgs.MapBytes + 64];
        var map = (byte*)(((nuint)aligned + 63) & ~(nuint)63);  // the driver requires 64-byte alignment
        var dims = stackalloc ulong[4] { 64, (ulong)t.Dim(2), (ulong)t.Dim(1), (ulong)t.Dim(0) };
        var strides = stackalloc ulong[3];
        for (int i = 0; i < 3; i++)
        {
            // A size-1 dim's stride never counts; any multiple of 16 satisfies the driver.
            int dim = 2 - i;
            strides[i] = t.Dim(dim) == 1 ? 128 : (ulong)t.Layout.Stride(dim) * 2;
        }
        var box = stackalloc uint[4] { 64, 64, 1, 1 };
        var elementStrides = stackalloc uint[4] { 1, 1, 1, 1 };
        int type = t.DType == DType.BF16 ? CudaDriver.TensorMapBFloat16 : CudaDriver.TensorMapFloat16;
        int r = CudaDriver.cuTensorMapEncodeTiled(map, type, 4, Ptr(t), dims, strides, box, elementStrides, 0,
            CudaDriver.TensorMapSwizzle128, CudaDriver.TensorMapL2Promotion256, 0);
        if (r != CudaDriver.Success)
        {
            Note($"attention_sm90: the driver refused a tensor map for {t.ShapeString} (strides {string.Join(",", t.Layout.Strides.ToArray())}): " +
                CudaDriver.Error(r, "cuTensorMapEncodeTiled").Message);
            return false;
        }
        Buffer.MemoryCopy(map, destination, TmaAttentionArgs.MapBytes, TmaAttentionArgs.MapBytes);
        return true;
    }

    /// <summary>
    /// The layouts attention_sm90.cu takes: Q, K, V rows of 64 contiguous, 16-byte aligned values, strides multiples of
    /// 16 bytes and not zero; Y rows 4-byte aligned.
    /// </summary>
    private bool HopperAttentionApplies(Tensor q, Tensor k, Tensor v, Tensor? bias, Tensor y) =>
        bias is null && q.DType is DType.F16 or DType.BF16 && k.DType == q.DType && v.DType == q.DType && y.DType == q.DType
        && q.Dim(3) == 64 && k.Dim(2) > 0 && (long)q.Dim(0) * q.Dim(1) <= 65535
        && Rows16ByteAligned(q) && Rows16ByteAligned(k) && Rows16ByteAligned(v)
        && PositiveStrides(q) && PositiveStrides(k) && PositiveStrides(v)
        && y.Layout.Stride(3) == 1 && Ptr(y) % 4 == 0 && Enumerable.Range(0, 3).All(i => y.Dim(i) == 1 || y.Layout.Stride(i) % 2 == 0);

    /// <summary>Tensor maps take no broadcast (zero-stride) dims of more than one element.</summary>
    private static bool PositiveStrides(Tensor t) => Enumerable.Range(0, 3).All(i => t.Dim(i) == 1 || t.Layout.Stride(i) > 0);

    /// <summary>
    /// Whether every [.., n, 0:D] row of a 16-bit [B, H, N, D] tensor starts on a 16-byte boundary and is contiguous, with
    /// D a multiple of 8, so the kernel can load it 8 values at a time.
    /// </summary>
    private bool Rows16ByteAligned(Tensor t)
    {
        const int es = 2;
        if (t.Dim(3) % 8 != 0 || t.Layout.Stride(3) != 1 || Ptr(t) % 16 != 0) return false;
        for (int i = 0; i < 3; i++)
            if (t.Dim(i) > 1 && t.Layout.Stride(i) * es % 16 != 0) return false;
        return true;
    }

    private void ChunkedAttention(Tensor q, Tensor k, Tensor v, Tensor? bias, float scale, Tensor y)
    {
        int b = q.Dim(0), h = q.Dim(1), nq = q.Dim(2), d = q.Dim(3), nk = k.Dim(2);
        var dtype = q.DType;
        long perRow = (long)b * h * nk * dtype.SizeOf();
        int chunk = (int)Math.Clamp(Options.ScratchLimitBytes / Math.Max(perRow, 1), 1, nq);
        using var kt = k.Transpose(2, 3);
        for (int i0 = 0; i0 < nq; i0 += chunk)
        {
            int rows = Math.Min(chunk, nq - i0);
            using var qc = q.Narrow(2, i0, rows);
            using var scores = Tensor.Empty(this, dtype, b, h, rows, nk);
            MatMul(qc, kt, scores);
            Affine(scores, scale, 0f, scores);
            if (bias is not null)
            {
                using var bc = bias.Narrow(2, i0, rows);
                Binary(BinaryOp.Add, scores, bc, scores);
            }
            Softmax(scores, scores);
            using var yc = y.Narrow(2, i0, rows);
            if (yc.IsContiguous && yc.DType == dtype)
            {
                MatMul(scores, v, yc);
            }
            else
            {
                using var o = Tensor.Empty(this, dtype, b, h, rows, d);
                MatMul(scores, v, o);
                Copy(o, yc);
            }
        }
    }

    public void Rotary(Tensor x, Tensor cos, Tensor sin, Tensor y)
    {
        using var profiled = Profile("rotary", y);
        if (y.ElementCount == 0) return;
        using var c = F32(cos)!;
        using var s = F32(sin)!;
        void Run(Tensor output)
        {
            var args = new RotaryArgs
            {
                X = Ptr(x),
                Y = Ptr(output),
                Cos = Ptr(c),
                Sin = Ptr(s),
                Pairs = x.ElementCount / 2,
                Heads = x.Dim(1),
                N = x.Dim(2),
                D = x.Dim(3),
            };
            for (int i = 0; i < 4; i++)
            {
                args.XStrides[i] = x.Layout.Stride(i);
                args.YStrides[i] = output.Layout.Stride(i);
            }
            string types = $"{Suffix(x.DType)}_{Suffix(output.DType)}";
            long rowVectors = (long)args.N * (args.D / 8);
            if (RotaryVectorizes(x, output, c, s) && rowVectors > 0)
                Launch(Function("misc", $"rotary8_{types}"), (uint)((rowVectors + 255) / 256), (uint)(x.Dim(0) * x.Dim(1)), 256, ref args);
            else
                Launch(Function("misc", $"rotary_{types}"), Blocks(args.Pairs), 1, 256, ref args);
        }
        // The kernel writes any strided output of its own dtype pairs (in place too); others go through a temporary.
        if (HasKernelPair(x.DType, y.DType)) Run(y);
        else IntoOutput(y, x.DType, Run);
    }

    /// <summary>
    /// Whether rotary8 (eight elements per thread, 16-byte accesses) can take x → y: unit stride along D, D a multiple of
    /// 8, every stride a multiple of 8 elements, 16-byte aligned operands and tables, and a grid that fits (B·H ≤ 65535
    /// blocks in y, N·D/8 in 32 bits). Attention's q and k, views past the text tokens included, always are.
    /// </summary>
    private bool RotaryVectorizes(Tensor x, Tensor y, Tensor cos, Tensor sin)
    {
        int d = x.Dim(3);
        if (d % 8 != 0 || x.Layout.Stride(3) != 1 || y.Layout.Stride(3) != 1) return false;
        for (int i = 0; i < 3; i++)
            if (x.Layout.Stride(i) % 8 != 0 || y.Layout.Stride(i) % 8 != 0) return false;
        if ((long)x.Dim(0) * x.Dim(1) > 65535 || (long)x.Dim(2) * (d / 8) > int.MaxValue) return false;
        return ((Ptr(x) | Ptr(y) | Ptr(cos) | Ptr(sin)) & 15) == 0;
    }

    public void Gather(Tensor table, Tensor indices, Tensor y)
    {
        using var profiled = Profile("gather", y);
        if (y.ElementCount == 0) return;
        using var ids = Contiguous(indices);
        // Ids are checked on the host (they are few) so a bad id is an error, not an out-of-bounds read.
        int rows = table.Dim(0);
        foreach (var id in ids.ToLongArray())
        {
            if (id < 0 || id >= rows)
                throw new ArgumentOutOfRangeException(nameof(indices), $"embedding: id {id} is outside the table of {rows} rows");
        }
        using var t = Contiguous(table);
        void Run(Tensor output)
        {
            var args = new GatherArgs { Table = Ptr(t), Ids = Ptr(ids), Y = Ptr(output), Count = output.ElementCount, Dim = t.Dim(1) };
            string kernel = t.DType.SizeOf() switch { 2 => "gather_b16", 4 => "gather_b32", _ => "gather_b64" };
            Launch(Function("misc", kernel), Blocks(args.Count), 1, 256, ref args);
        }
        if (y.IsContiguous && y.DType == table.DType)
        {
            Run(y);
            return;
        }
        using var tmp = Tensor.Empty(this, table.DType, y.ShapeArray());
        Run(tmp);
        Copy(tmp, y);
    }
}
