using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace CogVideoX.Engine;

/// <summary>
/// The reference backend: managed, vectorised, multi-threaded, float32 compute. F16/BF16 inputs are widened to
/// float32 before a kernel runs, and results are narrowed when the output is stored in a half type. It has every
/// <see cref="Capability"/>, so its fused kernels are the reference the decompositions are checked against.
/// </summary>
public sealed unsafe partial class CpuBackend : IBackend, ILinearKernel, ISoftmaxKernel, ILayerNormKernel, IRmsNormKernel, IGroupNormKernel,
    IModulatedLayerNormKernel, IGatedResidualKernel, ISpatialGroupNormKernel, IUpsampleNearestKernel, IAttentionKernel, IRotaryKernel, ILayerNormRotaryKernel,
    ISage8AttentionKernel, IFp8LinearKernel, IModulatedLayerNormFp8Kernel
{
    public static readonly CpuBackend Instance = new();

    private CpuBackend() { }

    public string Name => "cpu";

    public Device Device => Device.Cpu;

    public void Dispose() { }

    /// <summary>What the kernels run on: vector extensions, the GEMM micro-kernel chosen and the thread count.</summary>
    public static string Capabilities
    {
        get
        {
            var features = new List<string>();
            if (Avx512F.IsSupported) features.Add("AVX-512F");
            if (Avx2.IsSupported) features.Add("AVX2");
            if (Fma.IsSupported) features.Add("FMA");
            if (AdvSimd.IsSupported) features.Add("NEON");
            string accelerated = Vector512.IsHardwareAccelerated ? "Vector512"
                : Vector256.IsHardwareAccelerated ? "Vector256"
                : Vector128.IsHardwareAccelerated ? "Vector128" : "none";
            return $"{RuntimeInformation.ProcessArchitecture}, {(features.Count == 0 ? "no SIMD extensions" : string.Join(" ", features))}; "
                + $"widest accelerated vector {accelerated}; GEMM kernel {Gemm.Describe(Gemm.Best)}; {Threads} threads";
        }
    }

    public Storage Allocate(DType dtype, long elementCount)
    {
        if (elementCount < 0) throw new ArgumentOutOfRangeException(nameof(elementCount));
        return new CpuStorage(this, dtype, elementCount);
    }

    /// <summary>Wraps memory owned elsewhere (e.g. a memory-mapped file), released through owner.</summary>
    public Storage Wrap(DType dtype, long elementCount, IntPtr pointer, IDisposable? owner) =>
        new CpuStorage(this, dtype, elementCount, pointer, owner);

    public void CopyFromHost(ReadOnlySpan<byte> source, Storage destination, long destinationByteOffset)
    {
        var s = (CpuStorage)destination;
        if (destinationByteOffset < 0 || destinationByteOffset + source.Length > s.ByteLength)
            throw new ArgumentOutOfRangeException(nameof(destinationByteOffset));
        source.CopyTo(new Span<byte>((byte*)s.Pointer + destinationByteOffset, source.Length));
    }

    public void CopyToHost(Storage source, long sourceByteOffset, Span<byte> destination)
    {
        var s = (CpuStorage)source;
        if (sourceByteOffset < 0 || sourceByteOffset + destination.Length > s.ByteLength)
            throw new ArgumentOutOfRangeException(nameof(sourceByteOffset));
        new ReadOnlySpan<byte>((byte*)s.Pointer + sourceByteOffset, destination.Length).CopyTo(destination);
    }

    public void Synchronize() { }

    // ---- memory access helpers ----

    internal static byte* BasePointer(Tensor t) => (byte*)((CpuStorage)t.Storage).Pointer;

    /// <summary>The element at storage index 0 of a tensor's view (offset applied).</summary>
    internal static T* Ptr<T>(Tensor t) where T : unmanaged => (T*)BasePointer(t) + t.Layout.Offset;

    /// <summary>The bytes of a contiguous CPU tensor.</summary>
    public static Span<byte> Bytes(Tensor t)
    {
        if (t.Backend is not CpuBackend) throw new ArgumentException($"{t} is not on the CPU");
        if (!t.IsContiguous) throw new ArgumentException($"{t} is not contiguous");
        long n = t.ElementCount * t.DType.SizeOf();
        if (n > int.MaxValue) throw new NotSupportedException($"{t} is too large for one span");
        return new Span<byte>(BasePointer(t) + t.Layout.Offset * t.DType.SizeOf(), (int)n);
    }

    /// <summary>The values of a contiguous F32 CPU tensor.</summary>
    public static Span<float> Floats(Tensor t)
    {
        if (t.DType != DType.F32) throw new ArgumentException($"{t} is not F32");
        return MemoryMarshal.Cast<byte, float>(Bytes(t));
    }

    /// <summary>A contiguous F32 version of t: t itself (new reference) when it already is one.</summary>
    internal static Tensor F32(Tensor t)
    {
        if (t.DType == DType.F32 && t.IsContiguous) return t.Alias();
        var y = Tensor.Empty(Instance, DType.F32, t.ShapeArray());
        if (y.ElementCount > 0) Instance.Copy(t, y);
        return y;
    }

    /// <summary>
    /// A float32 view of t for kernels that read through strides: t itself when it is float32 (any layout), otherwise
    /// a widened copy in which broadcast (stride-0) dims stay broadcast instead of being materialised.
    /// </summary>
    internal static Tensor F32View(Tensor t)
    {
        if (t.DType == DType.F32) return t.Alias();
        var compact = t.Alias();
        bool broadcast = false;
        for (int d = 0; d < t.Rank; d++)
        {
            if (t.Layout.Strides[d] != 0 || t.Shape[d] <= 1) continue;
            var narrowed = compact.Narrow(d, 0, 1);
            compact.Dispose();
            compact = narrowed;
            broadcast = true;
        }
        using (compact)
        {
            var wide = F32(compact);
            if (!broadcast) return wide;
            using (wide) return wide.BroadcastTo(t.ShapeArray());
        }
    }

    /// <summary>Runs a kernel that writes a contiguous F32 result, then stores it into y (narrowing if needed).</summary>
    private static void WriteF32(Tensor y, Action<Span<float>> kernel)
    {
        if (y.DType == DType.F32 && y.IsContiguous)
        {
            kernel(Floats(y));
            return;
        }
        using var tmp = Tensor.Empty(Instance, DType.F32, y.ShapeArray());
        kernel(Floats(tmp));
        Instance.Copy(tmp, y);
    }

    /// <summary>One chunk [start, end) of a parallel kernel writing through <paramref name="y"/>, a pinned float32 output.</summary>
    private delegate void RangeWriter(float* y, long start, long end);

    /// <summary>
    /// <see cref="WriteF32"/> with the output pinned and [0, count) split by <see cref="ParallelRange"/>: the frame of
    /// most kernels here, so each one states only its count, its chunk size and the work of one chunk.
    /// </summary>
    private static void WriteF32Parallel(Tensor y, long count, long minPerChunk, RangeWriter body) =>
        WriteF32(y, ys =>
        {
            fixed (float* pinned = ys)
            {
                float* yp = pinned;
                ParallelRange(count, minPerChunk, (s, e) => body(yp, s, e));
            }
        });

    internal static int Threads => Environment.ProcessorCount;

    /// <summary>Runs body over [0, count) in about Threads × 4 chunks, inline when small.</summary>
    internal static void ParallelRange(long count, long minPerChunk, Action<long, long> body)
    {
        if (count <= 0) return;
        int chunks = (int)Math.Min(Math.Max(1, count / Math.Max(minPerChunk, 1)), Threads * 4L);
        if (chunks <= 1)
        {
            body(0, count);
            return;
        }
        long per = (count + chunks - 1) / chunks;
        Parallel.For(0, chunks, c =>
        {
            long start = c * per;
            long end = Math.Min(count, start + per);
            if (start < end) body(start, end);
        });
    }
}
