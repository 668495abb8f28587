using System.Runtime.InteropServices;

namespace CogVideoX.Engine.Cuda;

/// <summary>cuBLASLt: matrix products with fused epilogues. Enum values as in cublasLt.h / library_types.h.</summary>
internal static unsafe partial class CublasLt
{
    private const string Lib = CudaLibraries.CublasLtName;

    static CublasLt() => CudaLibraries.EnsureResolver();

    public const int Success = 0;

    // cudaDataType_t
    public const int DataF32 = 0;
    public const int DataF16 = 2;
    public const int DataBF16 = 14;
    public const int DataF8E4M3 = 28;

    // cublasComputeType_t
    public const int Compute32F = 68;
    public const int Compute32FFastTf32 = 77;

    // cublasOperation_t
    public const int OpN = 0;
    public const int OpT = 1;

    // cublasLtMatmulDescAttributes_t
    public const int DescComputeType = 0;
    public const int DescScaleType = 1;
    public const int DescTransA = 3;
    public const int DescTransB = 4;
    public const int DescEpilogue = 7;
    public const int DescBiasPointer = 8;
    public const int DescAScalePointer = 17;
    public const int DescBScalePointer = 18;
    public const int DescFastAccum = 25;
    public const int DescBiasDataType = 26;
    public const int DescAScaleMode = 31;
    public const int DescBScaleMode = 32;

    // cublasLtMatmulMatrixScale_t: one float32 scale per row of op(A) and per column of B (cuBLASLt 12.9+, sm_90).
    public const int MatrixScaleOuterVec32F = 3;

    // cublasLtMatrixLayoutAttribute_t
    public const int LayoutBatchCount = 5;
    public const int LayoutStridedBatchOffset = 6;

    // cublasLtMatmulPreferenceAttributes_t
    public const int PrefMaxWorkspaceBytes = 1;
    public const int PrefMinAlignmentA = 5;
    public const int PrefMinAlignmentB = 6;
    public const int PrefMinAlignmentC = 7;
    public const int PrefMinAlignmentD = 8;

    // cublasLtEpilogue_t
    public const int EpilogueDefault = 1;
    public const int EpilogueRelu = 2;
    public const int EpilogueBias = 4;
    public const int EpilogueReluBias = 6;
    public const int EpilogueGelu = 32;
    public const int EpilogueGeluBias = 36;

    [LibraryImport(Lib)] public static partial nuint cublasLtGetVersion();
    [LibraryImport(Lib)] public static partial int cublasLtCreate(out CublasLtHandle handle);
    [LibraryImport(Lib)] public static partial int cublasLtDestroy(IntPtr handle);

    [LibraryImport(Lib)] public static partial int cublasLtMatmulDescCreate(out MatmulDescHandle desc, int computeType, int scaleType);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulDescDestroy(IntPtr desc);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulDescSetAttribute(MatmulDescHandle desc, int attribute, void* value, nuint size);

    [LibraryImport(Lib)] public static partial int cublasLtMatrixLayoutCreate(out MatrixLayoutHandle layout, int type, ulong rows, ulong cols, long ld);
    [LibraryImport(Lib)] public static partial int cublasLtMatrixLayoutDestroy(IntPtr layout);
    [LibraryImport(Lib)] public static partial int cublasLtMatrixLayoutSetAttribute(MatrixLayoutHandle layout, int attribute, void* value, nuint size);

    [LibraryImport(Lib)] public static partial int cublasLtMatmulPreferenceCreate(out MatmulPreferenceHandle preference);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulPreferenceDestroy(IntPtr preference);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulPreferenceSetAttribute(MatmulPreferenceHandle preference, int attribute, void* value, nuint size);

    [LibraryImport(Lib)]
    public static partial int cublasLtMatmulAlgoGetHeuristic(CublasLtHandle handle, MatmulDescHandle desc, MatrixLayoutHandle a, MatrixLayoutHandle b,
        MatrixLayoutHandle c, MatrixLayoutHandle d, MatmulPreferenceHandle preference, int requested, HeuristicResult* results, out int returned);

    [LibraryImport(Lib)]
    public static partial int cublasLtMatmul(CublasLtHandle handle, MatmulDescHandle desc, void* alpha, ulong a, MatrixLayoutHandle aDesc,
        ulong b, MatrixLayoutHandle bDesc, void* beta, ulong c, MatrixLayoutHandle cDesc, ulong d, MatrixLayoutHandle dDesc,
        MatmulAlgo* algo, ulong workspace, nuint workspaceBytes, CudaStreamHandle stream);

    public static void Check(int status, string call, string? detail = null)
    {
        if (status != Success) throw new CudaException("cuBLASLt", call, status, StatusName(status), detail);
    }

    private static string StatusName(int status) => status switch
    {
        1 => "CUBLAS_STATUS_NOT_INITIALIZED",
        3 => "CUBLAS_STATUS_ALLOC_FAILED",
        7 => "CUBLAS_STATUS_INVALID_VALUE",
        8 => "CUBLAS_STATUS_ARCH_MISMATCH",
        11 => "CUBLAS_STATUS_MAPPING_ERROR",
        13 => "CUBLAS_STATUS_EXECUTION_FAILED",
        14 => "CUBLAS_STATUS_INTERNAL_ERROR",
        15 => "CUBLAS_STATUS_NOT_SUPPORTED",
        16 => "CUBLAS_STATUS_LICENSE_ERROR",
        _ => $"cublasStatus {status}",
    };

    public static void Set(MatmulDescHandle desc, int attribute, int value) =>
        Check(cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(int)), "cublasLtMatmulDescSetAttribute", $"attribute {attribute}");

    /// <summary>An int8_t attribute (FAST_ACCUM).</summary>
    public static void Set(MatmulDescHandle desc, int attribute, sbyte value) =>
        Check(cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(sbyte)), "cublasLtMatmulDescSetAttribute", $"attribute {attribute}");

    public static void Set(MatmulDescHandle desc, int attribute, ulong value) =>
        Check(cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(ulong)), "cublasLtMatmulDescSetAttribute", $"attribute {attribute}");

    public static void Set(MatrixLayoutHandle layout, int attribute, int value) =>
        Check(cublasLtMatrixLayoutSetAttribute(layout, attribute, &value, sizeof(int)), "cublasLtMatrixLayoutSetAttribute", $"attribute {attribute}");

    public static void Set(MatrixLayoutHandle layout, int attribute, long value) =>
        Check(cublasLtMatrixLayoutSetAttribute(layout, attribute, &value, sizeof(long)), "cublasLtMatrixLayoutSetAttribute", $"attribute {attribute}");

    public static void Set(MatmulPreferenceHandle preference, int attribute, uint value) =>
        Check(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &value, sizeof(uint)), "cublasLtMatmulPreferenceSetAttribute", $"attribute {attribute}");

    public static void Set(MatmulPreferenceHandle preference, int attribute, ulong value) =>
        Check(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &value, sizeof(ulong)), "cublasLtMatmulPreferenceSetAttribute", $"attribute {attribute}");

    /// <summary>cublasLtMatmulAlgo_t: 8 opaque 64-bit words.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct MatmulAlgo
    {
        public fixed ulong Data[8];
    }

    /// <summary>cublasLtMatmulHeuristicResult_t (96 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct HeuristicResult
    {
        public MatmulAlgo Algo;
        public nuint WorkspaceSize;
        public int State;
        public float WavesCount;
        public fixed int Reserved[4];
    }
}

internal sealed class CublasLtHandle : NativeHandle
{
    protected override bool ReleaseHandle() => CublasLt.cublasLtDestroy(handle) == CublasLt.Success;
}

internal sealed class MatmulDescHandle : NativeHandle
{
    protected override bool ReleaseHandle() => CublasLt.cublasLtMatmulDescDestroy(handle) == CublasLt.Success;
}

internal sealed class MatrixLayoutHandle : NativeHandle
{
    protected override bool ReleaseHandle() => CublasLt.cublasLtMatrixLayoutDestroy(handle) == CublasLt.Success;
}

internal sealed class MatmulPreferenceHandle : NativeHandle
{
    protected override bool ReleaseHandle() => CublasLt.cublasLtMatmulPreferenceDestroy(handle) == CublasLt.Success;
}
