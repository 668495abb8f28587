namespace CogVideoX.Engine.Cuda;

public sealed unsafe partial class CudaBackend
{
    public void ModulatedLayerNorm(Tensor x, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Tensor y)
    {
        using var profiled = Profile("modulated_layer_norm", y);
        if (y.ElementCount == 0) return;
        if (TryLayerNormRows(x, gamma, beta, scale, shift, eps, y)) return;
        // Any other layout: the plain norm into float32, then the modulation as element-wise passes (same rounding:
        // each step once in float32).
        using var normed = Tensor.Empty(this, DType.F32, x.ShapeArray());
        LayerNorm(x, gamma, beta, eps, normed);
        using var onePlus = Tensor.Empty(this, DType.F32, x.ShapeArray());
        Affine(scale, 1f, 1f, onePlus);
        Binary(BinaryOp.Mul, normed, onePlus, normed);
        Binary(BinaryOp.Add, normed, shift, y);
    }

    public void AddMul(Tensor x, Tensor h, Tensor gate, Tensor y)
    {
        using var profiled = Profile("add_mul", y);
        if (y.ElementCount == 0) return;
        int d = y.Dim(-1);
        bool fast = x.DType is DType.F32 or DType.F16 or DType.BF16 && h.DType == x.DType && gate.DType == x.DType && y.DType == x.DType
            && d % 8 == 0 && RowsVectorisable(x) && RowsVectorisable(h) && RowsVectorisable(gate) && RowsVectorisable(y);
        if (fast && RowMap4.TryCreate(y.Shape[..^1], x.Layout.Strides[..^1], h.Layout.Strides[..^1], gate.Layout.Strides[..^1], y.Layout.Strides[..^1], out var map))
        {
            long rows = y.ElementCount / d;
            var args = new AddMulArgs { X = Ptr(x), H = Ptr(h), Gate = Ptr(gate), Y = Ptr(y), Rows = rows, Cols = d, Map = map };
            Launch(Function("elementwise", $"add_mul_{Suffix(x.DType)}"), Blocks(rows * (d / 8)), 1, 256, ref args);
            return;
        }
        using var product = Tensor.Empty(this, DType.F32, y.ShapeArray());
        Binary(BinaryOp.Mul, h, gate, product);
        Binary(BinaryOp.Add, x, product, y);
    }

    public void UpsampleNearest(Tensor x, Tensor y)
    {
        using var profiled = Profile("upsample", y);
        if (y.ElementCount == 0) return;
        int r = x.Rank;
        // The kernel's case: contiguous tensors whose factors are all in the last three dims, 8-column output rows.
        bool fast = r >= 3 && x.IsContiguous && y.IsContiguous && x.DType == y.DType && x.DType != DType.I64
            && y.Dim(-1) % 8 == 0 && Ptr(y) % 16 == 0;
        for (int i = 0; fast && i < r - 3; i++) fast = x.Dim(i) == y.Dim(i);
        if (!fast)
        {
            Decompositions.UpsampleNearest(x, y);
            return;
        }
        var args = new UpsampleArgs
        {
            X = Ptr(x),
            Y = Ptr(y),
            Vectors = y.ElementCount / 8,
            Ti = x.Dim(-3),
            Hi = x.Dim(-2),
            Wi = x.Dim(-1),
            Ft = y.Dim(-3) / x.Dim(-3),
            Fh = y.Dim(-2) / x.Dim(-2),
            Fw = y.Dim(-1) / x.Dim(-1),
            To = y.Dim(-3),
            Ho = y.Dim(-2),
            Wo = y.Dim(-1),
        };
        Launch(Function("copy", x.DType.SizeOf() == 2 ? "upsample_b16" : "upsample_b32"), Blocks(args.Vectors), 1, 256, ref args);
    }

    /// <summary>
    /// Whether a tensor's rows (last dim) can be read 16 bytes at a time: unit stride along the last dim, every other
    /// stride a multiple of 8 elements (or a size-1 / broadcast dim), a 16-byte aligned first element.
    /// </summary>
    private bool RowsVectorisable(Tensor t)
    {
        int r = t.Rank;
        if (r == 0 || t.Layout.Stride(r - 1) != 1 || Ptr(t) % 16 != 0) return false;
        for (int i = 0; i < r - 1; i++)
            if (t.Dim(i) > 1 && t.Layout.Stride(i) % 8 != 0) return false;
        return true;
    }

    public void LayerNormRotary(Tensor x, Tensor? gamma, Tensor? beta, float eps, Tensor cos, Tensor sin, Tensor y)
    {
        using var profiled = Profile("layer_norm_rotary", y);
        if (y.ElementCount == 0) return;
        // The tables are read in x's dtype (the contract's): no float32 copy of them per call.
        if (cos.Dim(0) > 0 && x.ElementCount / x.Dim(3) < int.MaxValue && TryLayerNormRows(x, gamma, beta, null, null, eps, y, (cos, sin))) return;
        Decompositions.LayerNormRotary(x, gamma, beta, eps, cos, sin, y);
    }

    /// <summary>
    /// LayerNorm (optionally modulated) with one row per group of lanes held in registers: x, y, scale and shift may
    /// have any row strides; with rotary tables, the rotary form (ln_rotary_rows). False when the layout or size does not
    /// suit the kernel (the caller falls back).
    /// </summary>
    private bool TryLayerNormRows(Tensor x, Tensor? gamma, Tensor? beta, Tensor? scale, Tensor? shift, float eps, Tensor y,
        (Tensor Cos, Tensor Sin)? rotary = null, Tensor? rowScales = null)
    {
        int d = x.Dim(-1);
        // With row scales, y is the rows' E4M3 codes (ln_fp8_rows); else the norm's output in x's dtype.
        bool fp8 = rowScales is not null;
        if (x.DType is not (DType.F32 or DType.F16 or DType.BF16) || y.DType != (fp8 ? DType.F8E4M3 : x.DType) || d % 8 != 0) return false;
        if (scale is not null && scale.DType != x.DType || shift is not null && shift.DType != x.DType) return false;
        int vectors = d / 8;
        // Lanes per row so that each holds at least four vectors where the row allows: a row's fixed costs (its
        // offsets, the shuffles, the reciprocal square root) over eight elements a lane made 64-column rows (the
        // per-head query/key norms) bound by instruction issue, not memory.
        int lanes = 1;
        while (lanes < 32 && lanes * 4 < vectors) lanes <<= 1;
        int perLane = (vectors + lanes - 1) / lanes;
        int vpl = perLane switch { <= 1 => 1, <= 2 => 2, <= 4 => 4, <= 8 => 8, <= 12 => 12, <= 16 => 16, _ => 0 };
        if (vpl == 0 || rotary is not null && vpl > 4) return false;
        if (!RowsVectorisable(x) || !(fp8 ? CodeRowsFit(y, rowScales!) : RowsVectorisable(y))) return false;
        // The tables are read as whole 8-column vectors of contiguous rows.
        if (rotary is { } t && (t.Cos.DType != x.DType || t.Sin.DType != x.DType || !t.Cos.IsContiguous || !t.Sin.IsContiguous || ((Ptr(t.Cos) | Ptr(t.Sin)) & 15) != 0)) return false;
        if (scale is not null && !RowsVectorisable(scale) || shift is not null && !RowsVectorisable(shift)) return false;
        ReadOnlySpan<long> none = default;
        if (!RowMap4.TryCreate(x.Shape[..^1], x.Layout.Strides[..^1], y.Layout.Strides[..^1],
                scale is null ? none : scale.Layout.Strides[..^1], shift is null ? none : shift.Layout.Strides[..^1], out var map))
            return false;
        using var g = F32(gamma);
        using var b = F32(beta);
        // The kernel reads γ and β as float4 pairs.
        if ((Ptr(g, this) | Ptr(b, this)) % 16 != 0) return false;
        long rows = x.ElementCount / d;
        var args = new LnRowsArgs
        {
            X = Ptr(x),
            Y = Ptr(y),
            Gamma = Ptr(g, this),
            Beta = Ptr(b, this),
            Scale = Ptr(scale, this),
            Shift = Ptr(shift, this),
            Rows = rows,
            Cols = d,
            Lanes = lanes,
            Eps = eps,
            Map = map,
        };
        if (rotary is { } r)
        {
            args.Cos = Ptr(r.Cos);
            args.Sin = Ptr(r.Sin);
            args.Heads = x.Dim(1);
            args.Seq = x.Dim(2);
            args.Rotated = r.Cos.Dim(0);
        }
        if (rowScales is not null) args.RowScales = Ptr(rowScales);
        long rowsPerBlock = 8L * (32 / lanes);
        long blocks = (rows + rowsPerBlock - 1) / rowsPerBlock;
        if (blocks > int.MaxValue) return false;
        string kernel = fp8 ? "ln_fp8_rows" : rotary is null ? "ln_rows" : "ln_rotary_rows";
        Launch(Function(fp8 ? "fp8" : "norm", $"{kernel}_{Suffix(x.DType)}_v{vpl}"), (uint)blocks, 1, 256, ref args);
        return true;
    }

    /// <summary>
    /// Whether ln_fp8_rows can write these codes and scales: code rows of unit stride written 8 bytes at a time (every
    /// other stride a multiple of 8, an 8-byte aligned start), and row r's scale at its code offset / D from the scales'
    /// start, which holds when each stride of the codes is D times the scales' (views of [.., S, D] and [.., S]); the
    /// codes spanning less than 2 GiB.
    /// </summary>
    private bool CodeRowsFit(Tensor codes, Tensor scales)
    {
        int r = codes.Rank, d = codes.Dim(-1);
        if (codes.Layout.Stride(r - 1) != 1 || Ptr(codes) % 8 != 0 || Ptr(scales) % 4 != 0) return false;
        long extent = d;
        for (int i = 0; i < r - 1; i++)
        {
            if (codes.Dim(i) == 1) continue;
            if (codes.Layout.Stride(i) % 8 != 0 || codes.Layout.Stride(i) != (long)d * scales.Layout.Stride(i)) return false;
            extent += (codes.Dim(i) - 1L) * codes.Layout.Stride(i);
        }
        // The kernel finds a row's scale with a 32-bit division of its code offset.
        return extent <= int.MaxValue;
    }

    /// <summary>
    /// The adaptive norm as an FP8 linear's input: ln_fp8_rows (module fp8) where the layouts suit it, else the norm
    /// and the quantization one after the other (the decomposition). Profiled under its own name.
    /// </summary>
    public void ModulatedLayerNormFp8(Tensor x, Tensor? gamma, Tensor? beta, Tensor scale, Tensor shift, float eps, Tensor codes, Tensor scales)
    {
        using (Profile("modulated_layer_norm_fp8", codes))
        {
            if (codes.ElementCount == 0) return;
            if (TryLayerNormRows(x, gamma, beta, scale, shift, eps, codes, rowScales: scales)) return;
        }
        // Outside the profile scope: its norm and quantization show under their own names.
        Decompositions.ModulatedLayerNormFp8(x, gamma, beta, scale, shift, eps, codes, scales);
    }
}
