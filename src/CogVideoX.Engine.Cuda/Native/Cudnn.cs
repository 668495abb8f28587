using System.Runtime.InteropServices;

namespace CogVideoX.Engine.Cuda;

/// <summary>
/// cuDNN 9: the backend (graph) API for fused attention and the legacy convolution API. Enum values as in
/// cudnn_graph.h / cudnn_ops.h / cudnn_cnn.h of cuDNN 9 (the attention ones need 9.13 or later); all calls return a
/// cudnnStatus_t checked by the callers.
/// </summary>
internal static unsafe partial class Cudnn
{
    private const string Lib = CudaLibraries.CudnnName;

    static Cudnn() => CudaLibraries.EnsureResolver();

    public const int Success = 0;

    // cudnnDataType_t
    public const int DataFloat = 0;
    public const int DataHalf = 2;
    public const int DataBFloat16 = 9;

    // cudnnBackendDescriptorType_t
    public const int PointwiseDescriptor = 0;
    public const int EngineConfigDescriptor = 3;
    public const int EngineHeuristicsDescriptor = 4;
    public const int ExecutionPlanDescriptor = 5;
    public const int OperationPointwiseDescriptor = 13;
    public const int OperationGraphDescriptor = 15;
    public const int VariantPackDescriptor = 16;
    public const int TensorDescriptor = 17;
    public const int MatmulDescriptor = 18;
    public const int OperationMatmulDescriptor = 19;
    public const int ReductionDescriptor = 21;
    public const int OperationReductionDescriptor = 22;
    public const int OperationSdpaForwardDescriptor = 41;

    // cudnnBackendAttributeType_t
    public const int TypeHandle = 0;
    public const int TypeDataType = 1;
    public const int TypeBoolean = 2;
    public const int TypeInt64 = 3;
    public const int TypeVoidPointer = 6;
    public const int TypeHeuristicsMode = 8;
    public const int TypePointwiseMode = 14;
    public const int TypeBackendDescriptor = 15;
    public const int TypeReductionOperator = 18;

    // cudnnBackendAttributeName_t
    public const int AttrPointwiseMode = 0;
    public const int AttrPointwiseMathPrecision = 1;
    public const int AttrEngineHeuristicsMode = 200;
    public const int AttrEngineHeuristicsOperationGraph = 201;
    public const int AttrEngineHeuristicsResults = 202;
    public const int AttrExecutionPlanHandle = 400;
    public const int AttrExecutionPlanEngineConfig = 401;
    public const int AttrExecutionPlanWorkspaceSize = 402;
    public const int AttrOperationPointwiseDescriptor = 750;
    public const int AttrOperationPointwiseX = 751;
    public const int AttrOperationPointwiseB = 752;
    public const int AttrOperationPointwiseY = 753;
    public const int AttrOperationGraphHandle = 800;
    public const int AttrOperationGraphOps = 801;
    public const int AttrTensorByteAlignment = 900;
    public const int AttrTensorDataType = 901;
    public const int AttrTensorDimensions = 902;
    public const int AttrTensorStrides = 903;
    public const int AttrTensorUniqueId = 906;
    public const int AttrTensorIsVirtual = 907;
    public const int AttrTensorIsByValue = 908;
    public const int AttrVariantPackUniqueIds = 1000;
    public const int AttrVariantPackDataPointers = 1001;
    public const int AttrVariantPackWorkspace = 1003;
    public const int AttrMatmulComputeType = 1500;
    public const int AttrOperationMatmulA = 1520;
    public const int AttrOperationMatmulB = 1521;
    public const int AttrOperationMatmulC = 1522;
    public const int AttrOperationMatmulDescriptor = 1523;
    public const int AttrReductionOperator = 1600;
    public const int AttrReductionComputeType = 1601;
    public const int AttrOperationReductionX = 1610;
    public const int AttrOperationReductionY = 1611;
    public const int AttrOperationReductionDescriptor = 1612;
    public const int AttrSdpaForwardQ = 2800;
    public const int AttrSdpaForwardK = 2801;
    public const int AttrSdpaForwardV = 2802;
    public const int AttrSdpaForwardO = 2803;
    public const int AttrSdpaForwardScale = 2805;

    // cudnnPointwiseMode_t
    public const int PointwiseAdd = 0;
    public const int PointwiseMul = 1;
    public const int PointwiseDiv = 6;
    public const int PointwiseSub = 9;
    public const int PointwiseExp = 13;
    public const int PointwiseLog = 15;

    // cudnnReduceTensorOp_t
    public const int ReduceAdd = 0;
    public const int ReduceMax = 3;

    // cudnnBackendHeurMode_t
    public const int HeuristicsInstant = 0;
    public const int HeuristicsFallback = 2;
    public const int HeuristicsA = 3;

    // Legacy convolution API: cudnnTensorFormat_t, cudnnConvolutionMode_t, cudnnMathType_t.
    public const int FormatNchw = 0;
    public const int CrossCorrelation = 1;
    public const int DefaultMath = 0;
    public const int TensorOpMath = 1;
    public const int FmaMath = 3;

    /// <summary>cudnnConvolutionFwdAlgoPerf_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ConvolutionForwardAlgoPerf
    {
        public int Algo;
        public int Status;
        public float Time;
        public nuint Memory;
        public int Determinism;
        public int MathType;
        public int Reserved0, Reserved1, Reserved2;
    }

    [LibraryImport(Lib)] public static partial nuint cudnnGetVersion();
    [LibraryImport(Lib)] public static partial IntPtr cudnnGetErrorString(int status);
    [LibraryImport(Lib)] public static partial void cudnnGetLastErrorString(byte* message, nuint maxSize);
    [LibraryImport(Lib)] public static partial int cudnnCreate(out IntPtr handle);
    [LibraryImport(Lib)] public static partial int cudnnDestroy(IntPtr handle);
    [LibraryImport(Lib)] public static partial int cudnnSetStream(IntPtr handle, IntPtr stream);

    [LibraryImport(Lib)] public static partial int cudnnBackendCreateDescriptor(int type, out IntPtr descriptor);
    [LibraryImport(Lib)] public static partial int cudnnBackendDestroyDescriptor(IntPtr descriptor);
    [LibraryImport(Lib)] public static partial int cudnnBackendFinalize(IntPtr descriptor);
    [LibraryImport(Lib)] public static partial int cudnnBackendSetAttribute(IntPtr descriptor, int name, int type, long count, void* values);
    [LibraryImport(Lib)] public static partial int cudnnBackendGetAttribute(IntPtr descriptor, int name, int type, long requested, out long count, void* values);
    [LibraryImport(Lib)] public static partial int cudnnBackendExecute(IntPtr handle, IntPtr plan, IntPtr variantPack);

    [LibraryImport(Lib)] public static partial int cudnnCreateTensorDescriptor(out IntPtr descriptor);
    [LibraryImport(Lib)] public static partial int cudnnDestroyTensorDescriptor(IntPtr descriptor);
    [LibraryImport(Lib)] public static partial int cudnnSetTensorNdDescriptor(IntPtr descriptor, int dataType, int dims, int* dimensions, int* strides);
    [LibraryImport(Lib)] public static partial int cudnnCreateFilterDescriptor(out IntPtr descriptor);
    [LibraryImport(Lib)] public static partial int cudnnDestroyFilterDescriptor(IntPtr descriptor);
    [LibraryImport(Lib)] public static partial int cudnnSetFilterNdDescriptor(IntPtr descriptor, int dataType, int format, int dims, int* dimensions);
    [LibraryImport(Lib)] public static partial int cudnnCreateConvolutionDescriptor(out IntPtr descriptor);
    [LibraryImport(Lib)] public static partial int cudnnDestroyConvolutionDescriptor(IntPtr descriptor);
    [LibraryImport(Lib)] public static partial int cudnnSetConvolutionNdDescriptor(IntPtr descriptor, int length, int* padding, int* strides, int* dilation, int mode, int computeType);
    [LibraryImport(Lib)] public static partial int cudnnSetConvolutionMathType(IntPtr descriptor, int mathType);
    [LibraryImport(Lib)]
    public static partial int cudnnGetConvolutionForwardAlgorithm_v7(IntPtr handle, IntPtr x, IntPtr w, IntPtr convolution, IntPtr y,
        int requested, out int returned, ConvolutionForwardAlgoPerf* results);
    [LibraryImport(Lib)]
    public static partial int cudnnGetConvolutionForwardWorkspaceSize(IntPtr handle, IntPtr x, IntPtr w, IntPtr convolution, IntPtr y, int algo, out nuint bytes);
    [LibraryImport(Lib)]
    public static partial int cudnnConvolutionForward(IntPtr handle, float* alpha, IntPtr xDesc, ulong x, IntPtr wDesc, ulong w, IntPtr convolution,
        int algo, ulong workspace, nuint workspaceBytes, float* beta, IntPtr yDesc, ulong y);

    /// <summary>The status name and cuDNN's last error message for a failed call.</summary>
    public static string Describe(int status)
    {
        string name;
        try
        {
            name = Marshal.PtrToStringUTF8(cudnnGetErrorString(status)) ?? $"status {status}";
        }
        catch (EntryPointNotFoundException)
        {
            name = $"status {status}";
        }
        var buffer = stackalloc byte[512];
        buffer[0] = 0;
        try
        {
            cudnnGetLastErrorString(buffer, 512);
        }
        catch (EntryPointNotFoundException)
        {
        }
        var last = Marshal.PtrToStringUTF8((IntPtr)buffer)?.Trim();
        return string.IsNullOrEmpty(last) ? name : $"{name}: {last}";
    }

    public static void Check(int status, string call, string? detail = null)
    {
        if (status != Success)
            throw new CudaException("cuDNN", call, status, Describe(status), detail);
    }
}
