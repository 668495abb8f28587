namespace CogVideoX.Engine.Cuda;

/// <summary>
/// Everything a cuDNN convolution plan depends on (pointers aside): NCDHW shapes, padding, strides, dtype, and the
/// frames it covers: a plan may compute <see cref="ChunkFrames"/> output frames of a [N, Cout, YFrames, ..] output
/// from the matching frames of a [N, Cin, T, ..] input (strided views of both).
/// </summary>
internal readonly record struct CudnnConvolutionKey(int DataType, int ComputeType, int MathType, int N, int Cin, int T, int H, int W,
    int Cout, int Kt, int Kh, int Kw, Conv3dParams P, int YFrames, int ChunkFrames)
{
    public int ChunkInputFrames => (ChunkFrames - 1) * P.StrideT + Kt;

    public string Describe() =>
        $"x [{N},{Cin},{T},{H},{W}] w [{Cout},{Cin},{Kt},{Kh},{Kw}] stride ({P.StrideT},{P.StrideH},{P.StrideW}) pad ({P.PadT},{P.PadH},{P.PadW}) type {DataType}" +
        (ChunkFrames < YFrames ? $", {ChunkFrames} of {YFrames} output frames per call" : "");
}

/// <summary>
/// A 3D convolution through cuDNN's convolution API (channels-first NCDHW, as the model stores activations): the
/// tensor, filter and convolution descriptors and the algorithm cuDNN's heuristics rank first among those whose
/// workspace fits the limit.
/// </summary>
internal sealed unsafe class CudnnConvolutionPlan : IDisposable
{
    private IntPtr _x, _w, _y, _conv;

    private CudnnConvolutionPlan()
    {
    }

    public int Algorithm { get; private set; }

    public long WorkspaceBytes { get; private set; }

    /// <summary>Whether the heuristics' first choice fitted the workspace limit (false: a slower algorithm was taken).</summary>
    public bool FirstChoice { get; private set; }

    public static CudnnConvolutionPlan Build(IntPtr handle, CudnnConvolutionKey key, int ho, int wo, long workspaceLimit)
    {
        var plan = new CudnnConvolutionPlan();
        try
        {
            Cudnn.Check(Cudnn.cudnnCreateTensorDescriptor(out plan._x), "cudnnCreateTensorDescriptor");
            Cudnn.Check(Cudnn.cudnnCreateTensorDescriptor(out plan._y), "cudnnCreateTensorDescriptor");
            Cudnn.Check(Cudnn.cudnnCreateFilterDescriptor(out plan._w), "cudnnCreateFilterDescriptor");
            Cudnn.Check(Cudnn.cudnnCreateConvolutionDescriptor(out plan._conv), "cudnnCreateConvolutionDescriptor");
            SetTensor(plan._x, key.DataType, [key.N, key.Cin, key.ChunkFrames < key.YFrames ? key.ChunkInputFrames : key.T, key.H, key.W], key.T);
            SetTensor(plan._y, key.DataType, [key.N, key.Cout, key.ChunkFrames, ho, wo], key.YFrames);
            int* filter = stackalloc int[] { key.Cout, key.Cin, key.Kt, key.Kh, key.Kw };
            Cudnn.Check(Cudnn.cudnnSetFilterNdDescriptor(plan._w, key.DataType, Cudnn.FormatNchw, 5, filter), "cudnnSetFilterNdDescriptor", key.Describe());
            int* pad = stackalloc int[] { key.P.PadT, key.P.PadH, key.P.PadW };
            int* stride = stackalloc int[] { key.P.StrideT, key.P.StrideH, key.P.StrideW };
            int* dilation = stackalloc int[] { 1, 1, 1 };
            Cudnn.Check(Cudnn.cudnnSetConvolutionNdDescriptor(plan._conv, 3, pad, stride, dilation, Cudnn.CrossCorrelation, key.ComputeType),
                "cudnnSetConvolutionNdDescriptor", key.Describe());
            Cudnn.Check(Cudnn.cudnnSetConvolutionMathType(plan._conv, key.MathType), "cudnnSetConvolutionMathType", key.Describe());

            const int requested = 16;
            var perf = stackalloc Cudnn.ConvolutionForwardAlgoPerf[requested];
            Cudnn.Check(Cudnn.cudnnGetConvolutionForwardAlgorithm_v7(handle, plan._x, plan._w, plan._conv, plan._y, requested, out int returned, perf),
                "cudnnGetConvolutionForwardAlgorithm_v7", key.Describe());
            var skipped = new List<string>();
            bool first = true;
            for (int i = 0; i < returned; i++)
            {
                if (perf[i].Status != Cudnn.Success) continue;
                // F32 runs must stay float32 (no TF32): the heuristics may offer tensor-op variants of the same algorithm.
                if (key.MathType == Cudnn.FmaMath && perf[i].MathType == Cudnn.TensorOpMath) continue;
                int status = Cudnn.cudnnGetConvolutionForwardWorkspaceSize(handle, plan._x, plan._w, plan._conv, plan._y, perf[i].Algo, out var bytes);
                if (status != Cudnn.Success) continue;
                if ((long)bytes > workspaceLimit)
                {
                    skipped.Add($"algorithm {perf[i].Algo} needs {bytes} bytes");
                    first = false;
                    continue;
                }
                plan.Algorithm = perf[i].Algo;
                plan.WorkspaceBytes = (long)bytes;
                plan.FirstChoice = first;
                return plan;
            }
            throw new CudaException("cuDNN", "cudnnGetConvolutionForwardAlgorithm_v7", 3000, "CUDNN_STATUS_NOT_SUPPORTED",
                $"no usable algorithm for {key.Describe()} ({returned} offered{(skipped.Count > 0 ? "; " + string.Join(", ", skipped) : "")})");
        }
        catch
        {
            plan.Dispose();
            throw;
        }
    }

    /// <summary>An NCDHW descriptor of <paramref name="dims"/> laid out within a contiguous tensor of <paramref name="frames"/> frames.</summary>
    private static void SetTensor(IntPtr desc, int dataType, int[] dims, int frames)
    {
        var strides = new int[dims.Length];
        long s = 1;
        for (int i = dims.Length - 1; i >= 0; i--)
        {
            strides[i] = (int)s;
            s *= i == 2 ? frames : dims[i];
        }
        fixed (int* d = dims)
        fixed (int* st = strides)
            Cudnn.Check(Cudnn.cudnnSetTensorNdDescriptor(desc, dataType, dims.Length, d, st), "cudnnSetTensorNdDescriptor", $"[{string.Join(",", dims)}]");
    }

    public void Execute(IntPtr handle, ulong x, ulong w, ulong y, ulong workspace)
    {
        float alpha = 1f, beta = 0f;
        Cudnn.Check(Cudnn.cudnnConvolutionForward(handle, &alpha, _x, x, _w, w, _conv, Algorithm, workspace, (nuint)WorkspaceBytes, &beta, _y, y),
            "cudnnConvolutionForward", $"algorithm {Algorithm}");
    }

    public void Dispose()
    {
        if (_x != IntPtr.Zero) Cudnn.cudnnDestroyTensorDescriptor(_x);
        if (_y != IntPtr.Zero) Cudnn.cudnnDestroyTensorDescriptor(_y);
        if (_w != IntPtr.Zero) Cudnn.cudnnDestroyFilterDescriptor(_w);
        if (_conv != IntPtr.Zero) Cudnn.cudnnDestroyConvolutionDescriptor(_conv);
        _x = _y = _w = _conv = IntPtr.Zero;
    }
}
