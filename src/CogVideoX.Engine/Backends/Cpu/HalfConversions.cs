using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace CogVideoX.Engine;

/// <summary>
/// Vectorised conversions between float32 and the half types for contiguous runs (loading bf16/fp16 weights and
/// storing half results). Results are bit-identical to <see cref="DTypes"/>' scalar conversions: float16 through
/// TensorPrimitives (IEEE round-to-nearest-even, subnormals kept), bfloat16 with the same round-to-nearest-even and
/// quiet-NaN rule.
/// </summary>
internal static unsafe class HalfConversions
{
    /// <summary>Converts n contiguous elements when (st, dt) is a float32 ↔ half pair; false otherwise.</summary>
    public static bool TryConvert(byte* sp, DType st, long so, byte* dp, DType dt, long doff, int n)
    {
        switch (st, dt)
        {
            case (DType.F16, DType.F32):
                TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)sp + so, n), new Span<float>((float*)dp + doff, n));
                return true;
            case (DType.F32, DType.F16):
                TensorPrimitives.ConvertToHalf(new ReadOnlySpan<float>((float*)sp + so, n), new Span<Half>((Half*)dp + doff, n));
                return true;
            case (DType.BF16, DType.F32):
                BF16ToF32((ushort*)sp + so, (float*)dp + doff, n);
                return true;
            case (DType.F32, DType.BF16):
                F32ToBF16((float*)sp + so, (ushort*)dp + doff, n);
                return true;
            default:
                return false;
        }
    }

    /// <summary>bf16 is the top half of a float32: widen and shift.</summary>
    public static void BF16ToF32(ushort* src, float* dst, int n)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - 16; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(src + i));
                Vector256.ShiftLeft(lo, 16).AsSingle().Store(dst + i);
                Vector256.ShiftLeft(hi, 16).AsSingle().Store(dst + i + 8);
            }
        }
        for (; i < n; i++) dst[i] = DTypes.BF16ToFloat(src[i]);
    }

    /// <summary>Round-to-nearest-even on the dropped 16 bits; NaN keeps its top bits with the quiet bit set.</summary>
    public static void F32ToBF16(float* src, ushort* dst, int n)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var absMask = Vector256.Create(0x7FFF_FFFFu);
            var infinity = Vector256.Create(0x7F80_0000u);
            var half = Vector256.Create(0x7FFFu);
            var one = Vector256.Create(1u);
            var quiet = Vector256.Create(0x40u);
            for (; i <= n - 16; i += 16)
            {
                var lo = Round(Vector256.Load(src + i).AsUInt32());
                var hi = Round(Vector256.Load(src + i + 8).AsUInt32());
                Vector256.Narrow(lo, hi).Store(dst + i);
            }

            Vector256<uint> Round(Vector256<uint> bits)
            {
                var isNaN = Vector256.GreaterThan(bits & absMask, infinity);
                var rounded = Vector256.ShiftRightLogical(bits + half + (Vector256.ShiftRightLogical(bits, 16) & one), 16);
                var nan = Vector256.ShiftRightLogical(bits, 16) | quiet;
                return Vector256.ConditionalSelect(isNaN, nan, rounded);
            }
        }
        for (; i < n; i++) dst[i] = DTypes.FloatToBF16(src[i]);
    }
}
