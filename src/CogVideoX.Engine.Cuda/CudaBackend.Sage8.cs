namespace CogVideoX.Engine.Cuda;

public sealed unsafe partial class CudaBackend
{
    private const string Sage8Module = "attention_sage8";
    private const string Sage8HopperModule = "attention_sage8_sm90";

    /// <summary>Threads of the legacy K-mean and V-scale scan: SAGE_SCAN_THREADS in attention_sage8.cu (checked by KernelConstantsTests).</summary>
    internal const int Sage8ScanThreads = 1024;

    /// <summary>Tokens a scan block folds: SAGE_SCAN_CHUNK in attention_sage8.cu (checked by KernelConstantsTests).</summary>
    internal const int Sage8ScanChunk = 512;

    /// <summary>Threads of a block of sage8_scan_q and sage8_quant_kv: SAGE_PRE_THREADS (checked by KernelConstantsTests).</summary>
    internal const int Sage8PrepassThreads = 128;

    /// <summary>Query rows a Q block of sage8_scan_q quantizes (4 warps × 16): padded query rows are a multiple of it.</summary>
    internal const int Sage8QueryBlockRows = 64;

    /// <summary>64-key tiles a block of sage8_quant_kv quantizes by default: SAGE_KV_TILES (checked by KernelConstantsTests).</summary>
    internal const int DefaultSage8KvTiles = 8;

    /// <summary>
    /// The tiles a sage8_quant_kv block takes as the module is compiled: <see cref="DefaultSage8KvTiles"/>, or SAGE_KV_TILES
    /// from COGVIDEOX_KERNEL_DEFINES (an A/B knob; the kernel refuses values below 1), so the launch matches the kernel.
    /// </summary>
    internal static int Sage8KvTiles { get; } = Math.Max(1, KernelDefines.Integer("SAGE_KV_TILES") ?? DefaultSage8KvTiles);

    /// <summary>
    /// SAGE_PRE_LEGACY=1 in COGVIDEOX_KERNEL_DEFINES: every 8-bit attention call runs the legacy five-launch pre-pass
    /// (an A/B knob for timings in one build; the kernels ignore the define).
    /// </summary>
    internal static bool Sage8LegacyPrepassDefined { get; } = KernelDefines.Integer("SAGE_PRE_LEGACY") == 1;

    /// <summary>
    /// 8-bit attention (the CPU reference is <see cref="Engine.Sage8Attention"/>): attention_sage8.cu's quantization
    /// pre-pass (K's mean, INT8 Q and K, E4M3 V transposed) into scratch buffers, then the attention kernel: on sm_90
    /// the wgmma/TMA kernel of attention_sage8_sm90.cu, elsewhere (or with COGVIDEOX_SAGE8_KERNEL=mma, or a
    /// <see cref="Sage8KernelChoice"/> scope) attention_sage8.cu's mma.sync kernel. Head dim 64, F16/BF16, on sm_89 or
    /// newer; anything else is a <see cref="CogVideoXException"/> saying what to use instead.
    /// </summary>
    public void Sage8Attention(Tensor q, Tensor k, Tensor v, float scale, Tensor y)
    {
        if (y.ElementCount == 0) return;
        if (!KernelCompiler.LazyModuleRunsOn(Sage8Module, Info.Major, Info.Minor))
            throw new CogVideoXException(
                $"--attention sage8: this GPU ({Info.Name}, sm_{Info.Major}{Info.Minor}) has no FP8 tensor-core mma (it needs sm_89 or newer: " +
                "Ada, Hopper); use --attention own (the exact path), or --device cpu to emulate 8-bit attention for a fidelity check (slow)", 2);
        if (q.Dim(3) != 64 || q.DType is not (DType.F16 or DType.BF16) || y.DType != q.DType)
            throw new CogVideoXException(
                $"--attention sage8: the 8-bit attention kernel takes head dim 64 in f16 or bf16, got head dim {q.Dim(3)} in {q.DType.Name()}" +
                (y.DType != q.DType ? $" into {y.DType.Name()}" : "") + "; use --dtype f16 or bf16, or --attention own", 2);
        int b = q.Dim(0), h = q.Dim(1), nq = q.Dim(2), nk = k.Dim(2);
        if ((long)b * h > 65535) throw new NotSupportedException($"8-bit attention: batch x heads = {(long)b * h} exceeds the CUDA grid limit of 65535");
        var kernel = Sage8Layout.Resolve(Sage8KernelChoice.Forced, Options.Sage8Kernel, Info.Major, Info.Minor);
        RequireSage8Module(Sage8Module);
        if (kernel == Sage8Kernel.Wgmma) RequireSage8Module(Sage8HopperModule);

        // The pre-pass loads rows 16 bytes at a time: a view whose rows are not contiguous and 16-byte aligned is copied
        // first (the transformer's Q, K and strided V views need no copy).
        bool legacy = Sage8KernelChoice.LegacyPrepass || Sage8LegacyPrepassDefined;
        using var qRows = legacy || Rows16ByteAligned(q) ? q.Alias() : q.Clone();
        using var kRows = legacy || Rows16ByteAligned(k) ? k.Alias() : k.Clone();
        using var vRows = legacy || Rows16ByteAligned(v) ? v.Alias() : v.Clone();

        int bh = b * h, nqPad = Sage8Layout.PaddedQueryRows(nq, kernel), nkPad = Sage8Layout.PaddedKeys(nk, kernel);
        // Scratch in F32 tensors (4 bytes a unit): INT8 Q and K, E4M3 Vᵀ, their scales and K's mean.
        static int Words(long bytes) => (int)((bytes + 3) / 4);
        using var q8 = Tensor.Empty(this, DType.F32, Words((long)bh * nqPad * 64));
        using var qScale = Tensor.Empty(this, DType.F32, bh * nqPad);
        using var k8 = Tensor.Empty(this, DType.F32, Words((long)bh * nkPad * 64));
        using var kScale = Tensor.Empty(this, DType.F32, bh * nkPad);
        using var vt8 = Tensor.Empty(this, DType.F32, Words((long)bh * 64 * nkPad));
        using var vScale = Tensor.Empty(this, DType.F32, bh * 64);
        // K's means [BH][64], then the scan's partials [BH][splits][128] (K's sums, V's maxima).
        int splits = (nk + Sage8ScanChunk - 1) / Sage8ScanChunk;
        using var kMean = Tensor.Empty(this, DType.F32, checked(bh * 64 + bh * splits * 128));
        var args = new Sage8Args
        {
            Args = AttentionArguments(qRows, kRows, vRows, null, scale, y),
            Q8 = Ptr(q8),
            QScale = Ptr(qScale),
            K8 = Ptr(k8),
            KScale = Ptr(kScale),
            Vt8 = Ptr(vt8),
            VScale = Ptr(vScale),
            KMean = Ptr(kMean),
            NqPad = nqPad,
            NkPad = nkPad,
        };
        string suffix = Suffix(q.DType);
        KernelFunction F(string name) => Function(Sage8Module, $"{name}_{suffix}");
        // Profiled apart from the attention kernel (profile scopes do not nest), so a profile shows what the pre-pass costs.
        if (legacy) LegacyPrepass(F, splits, bh, nqPad, nkPad, y, ref args);
        else
        {
            // Two launches (attention_sage8.cu's pre-pass notes): the scan with Q's codes beside it, then K's and V's codes.
            var (scanX, scanY) = Sage8Layout.ScanQueryGrid(nk, nqPad, bh);
            using (Profile("sage8_scan_q", y)) Launch(F("sage8_scan_q"), scanX, scanY, Sage8PrepassThreads, ref args);
            var (kvX, kvY) = Sage8Layout.KeyValueGrid(nkPad, bh, Sage8KvTiles);
            using (Profile("sage8_quant_kv", y)) Launch(F("sage8_quant_kv"), kvX, kvY, Sage8PrepassThreads, ref args);
        }
        _ownAttentionCalls++;
        using var profiled = Profile("attention_sage8", y, $"{q.Dim(3)} {(kernel == Sage8Kernel.MmaSync ? "mma.sync" : "wgmma")}");
        if (kernel == Sage8Kernel.MmaSync)
        {
            Launch(F("sage8_attention"), (uint)(nqPad / 64), (uint)bh, 128, ref args);
            return;
        }
        var hopper = new Sage90Args { Args = args };
        ByteTensorMap(Ptr(k8), Sage8Layout.KeyMap(bh, nkPad), hopper.Maps, "K8");
        ByteTensorMap(Ptr(vt8), Sage8Layout.ValueMap(bh, nkPad), hopper.Maps + Sage90Args.MapBytes, "V^T8");
        Launch(Function(Sage8HopperModule, $"sage8_attention_sm90_{suffix}"), (uint)(nqPad / Sage8Layout.HopperRows), (uint)bh,
            (uint)Sage8Layout.HopperThreads, Sage8Layout.HopperSharedBytes, ref hopper);
    }

    /// <summary>
    /// The first pre-pass (five launches, scalar strided loads, a division per code), kept to check the two-launch one
    /// against bit for bit on a GPU (<see cref="Sage8KernelChoice.ForceLegacyPrepass"/>, the op catalogue); each kernel
    /// profiled on its own.
    /// </summary>
    private void LegacyPrepass(Func<string, KernelFunction> function, int splits, int bh, int nqPad, int nkPad, Tensor y, ref Sage8Args args)
    {
        using (Profile("sage8_legacy_scan", y)) Launch(function("sage8_legacy_scan"), (uint)splits, (uint)bh, Sage8ScanThreads, ref args);
        using (Profile("sage8_legacy_scan_finish", y)) Launch(function("sage8_legacy_scan_finish"), (uint)bh, 1, 64, ref args);
        using (Profile("sage8_legacy_quant_q", y)) Launch(function("sage8_legacy_quant_q"), (uint)(nqPad / 16), (uint)bh, 256, ref args);
        using (Profile("sage8_legacy_quant_k", y)) Launch(function("sage8_legacy_quant_k"), (uint)(nkPad / 64), (uint)bh, 128, ref args);
        using (Profile("sage8_legacy_quant_v", y)) Launch(function("sage8_legacy_quant_v"), (uint)(nkPad / 64), (uint)bh, 256, ref args);
    }

    private void RequireSage8Module(string module)
    {
        if (TryModule(module)) return;
        string reason;
        lock (_kernelGate) reason = _unavailableModules.TryGetValue(module, out var r) ? r : "unknown";
        throw new CogVideoXException(
            $"--attention sage8: the 8-bit attention kernel {module} could not be built here ({reason}); use --attention own" +
            (module == Sage8HopperModule ? $", or {GpuOptions.Sage8KernelVariable}=mma for the portable 8-bit kernel" : ""), 2);
    }

    /// <summary>
    /// Encodes a uint8 tensor map over a scratch buffer (64-byte swizzle, no out-of-bounds fill needed: the buffers are
    /// padded to whole tiles). The scratch is always a valid map, so a refusal is a bug: it throws with the geometry.
    /// </summary>
    private static void ByteTensorMap(ulong address, Sage8Layout.TensorMapShape shape, byte* destination, string what)
    {
        var aligned = stackalloc byte[Sage90Args.MapBytes + 64];
        var map = (byte*)(((nuint)aligned + 63) & ~(nuint)63);  // the driver requires 64-byte alignment
        var elementStrides = stackalloc uint[3] { 1, 1, 1 };
        int r;
        fixed (ulong* dims = shape.Dims)
        fixed (ulong* strides = shape.ByteStrides)
        fixed (uint* box = shape.Box)
            r = CudaDriver.cuTensorMapEncodeTiled(map, CudaDriver.TensorMapUInt8, 3, address, dims, strides, box, elementStrides, 0,
                CudaDriver.TensorMapSwizzle64, CudaDriver.TensorMapL2Promotion256, 0);
        if (r != CudaDriver.Success)
            throw CudaDriver.Error(r, "cuTensorMapEncodeTiled",
                $"attention_sage8_sm90's {what} map: dims {string.Join(",", shape.Dims)}, byte strides {string.Join(",", shape.ByteStrides)}, box {string.Join(",", shape.Box)}");
        Buffer.MemoryCopy(map, destination, Sage90Args.MapBytes, Sage90Args.MapBytes);
    }
}
