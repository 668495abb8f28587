namespace CogVideoX.Engine.Cuda;

public sealed unsafe partial class CudaBackend
{
    private const string Sage8Module = "attention_sage8";

    /// <summary>Threads of the key-mean and value-scale passes: SAGE_SCAN_THREADS in attention_sage8.cu (checked by KernelConstantsTests).</summary>
    internal const int Sage8ScanThreads = 1024;

    /// <summary>
    /// 8-bit attention (attention_sage8.cu; the CPU reference is <see cref="Engine.Sage8Attention"/>): a quantization
    /// pre-pass (K's mean, INT8 Q and K, E4M3 V transposed) into scratch buffers, then the mma.sync kernel. Head dim 64,
    /// F16/BF16, on sm_89 or newer; anything else is a <see cref="CogVideoXException"/> saying what to use instead.
    /// </summary>
    public void Sage8Attention(Tensor q, Tensor k, Tensor v, float scale, Tensor y)
    {
        using var profiled = Profile("attention_sage8", y, q.Dim(3).ToString(System.Globalization.CultureInfo.InvariantCulture));
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
        if (!TryModule(Sage8Module))
        {
            string reason;
            lock (_kernelGate) reason = _unavailableModules.TryGetValue(Sage8Module, out var r) ? r : "unknown";
            throw new CogVideoXException($"--attention sage8: the 8-bit attention kernel could not be built here ({reason}); use --attention own", 2);
        }
        int bh = b * h, nqPad = (nq + 63) / 64 * 64, nkPad = (nk + 63) / 64 * 64;
        // Scratch in F32 tensors (4 bytes a unit): INT8 Q and K, E4M3 Vᵀ, their scales and K's mean.
        static int Words(long bytes) => (int)((bytes + 3) / 4);
        using var q8 = Tensor.Empty(this, DType.F32, Words((long)bh * nqPad * 64));
        using var qScale = Tensor.Empty(this, DType.F32, bh * nqPad);
        using var k8 = Tensor.Empty(this, DType.F32, Words((long)bh * nkPad * 64));
        using var kScale = Tensor.Empty(this, DType.F32, bh * nkPad);
        using var vt8 = Tensor.Empty(this, DType.F32, Words((long)bh * 64 * nkPad));
        using var vScale = Tensor.Empty(this, DType.F32, bh * 64);
        using var kMean = Tensor.Empty(this, DType.F32, bh * 64);
        var args = new Sage8Args
        {
            Args = AttentionArguments(q, k, v, null, scale, y),
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
        Launch(F("sage8_key_mean"), (uint)bh, 1, Sage8ScanThreads, ref args);
        Launch(F("sage8_quant_q"), (uint)(nqPad / 16), (uint)bh, 256, ref args);
        Launch(F("sage8_quant_k"), (uint)(nkPad / 64), (uint)bh, 128, ref args);
        Launch(F("sage8_value_scale"), (uint)bh, 1, Sage8ScanThreads, ref args);
        Launch(F("sage8_quant_v"), (uint)(nkPad / 64), (uint)bh, 256, ref args);
        _ownAttentionCalls++;
        Launch(F("sage8_attention"), (uint)(nqPad / 64), (uint)bh, 128, ref args);
    }
}
