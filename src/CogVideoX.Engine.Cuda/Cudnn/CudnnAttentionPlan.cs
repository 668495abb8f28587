namespace CogVideoX.Engine.Cuda;

/// <summary>Which operation graph describes attention to cuDNN.</summary>
internal enum CudnnSdpaGraph
{
    /// <summary>One OPERATION_SDPA_FWD node (cuDNN 9.13 and later): Q, K, V, O and a by-value scale.</summary>
    Unified,

    /// <summary>
    /// The composite graph cuDNN's fused flash engines match (as cudnn-frontend lowers SDPA before 9.13): S = Q·Kᵀ,
    /// S·scale, row max, subtract, exp, row sum, log-sum-exp statistics, divide, then P·V.
    /// </summary>
    Composite,
}

/// <summary>The shapes and strides an attention plan is built for (pointers and the scale are given at run time).</summary>
internal readonly record struct CudnnAttentionKey(int DataType, CudnnSdpaGraph Graph, int B, int H, int Nq, int Nk, int D, string Strides)
{
    public static CudnnAttentionKey Of(int dataType, CudnnSdpaGraph graph, Tensor q, Tensor k, Tensor v, Tensor o)
    {
        var strides = string.Join(",", q.Layout.Strides.ToArray()) + "|" + string.Join(",", k.Layout.Strides.ToArray()) + "|" +
            string.Join(",", v.Layout.Strides.ToArray()) + "|" + string.Join(",", o.Layout.Strides.ToArray());
        return new CudnnAttentionKey(dataType, graph, q.Dim(0), q.Dim(1), q.Dim(2), k.Dim(2), q.Dim(3), strides);
    }

    public string Describe() => $"[{B},{H},{Nq},{D}] × {Nk} keys, {Graph}, strides {Strides}";
}

/// <summary>
/// A finalized cuDNN execution plan for fused attention, with the descriptors it references. Built once per
/// <see cref="CudnnAttentionKey"/>; executing it only creates a variant pack (the data pointers).
/// </summary>
internal sealed unsafe class CudnnAttentionPlan : IDisposable
{
    private const long UidQ = 1, UidK = 2, UidV = 3, UidO = 4, UidScale = 5;

    private readonly List<CudnnDescriptor> _keep;
    private readonly CudnnDescriptor _plan;

    private CudnnAttentionPlan(CudnnDescriptor plan, List<CudnnDescriptor> keep, long workspace, int configIndex, int configCount)
    {
        _plan = plan;
        _keep = keep;
        WorkspaceBytes = workspace;
        ConfigIndex = configIndex;
        ConfigCount = configCount;
    }

    public long WorkspaceBytes { get; }

    /// <summary>Which of the heuristics' engine configurations finalized (0 = the heuristics' first choice).</summary>
    public int ConfigIndex { get; }

    public int ConfigCount { get; }

    /// <summary>
    /// Builds the plan of the <paramref name="skip"/>-th usable engine configuration (0: the heuristics' first choice)
    /// or throws a <see cref="CudaException"/> saying which step cuDNN refused.
    /// </summary>
    public static CudnnAttentionPlan Build(IntPtr handle, CudnnAttentionKey key, Tensor q, Tensor k, Tensor v, Tensor o, long workspaceLimit, int skip = 0)
    {
        var keep = new List<CudnnDescriptor>();
        try
        {
            int io = key.DataType;
            CudnnDescriptor T(long uid, int dtype, long[] dims, long[] strides, bool isVirtual = false, bool byValue = false)
            {
                var t = CudnnDescriptor.Create(Cudnn.TensorDescriptor);
                keep.Add(t);
                t.SetEnum(Cudnn.AttrTensorDataType, Cudnn.TypeDataType, dtype);
                t.SetInt64s(Cudnn.AttrTensorDimensions, dims);
                t.SetInt64s(Cudnn.AttrTensorStrides, strides);
                t.SetInt64(Cudnn.AttrTensorUniqueId, uid);
                t.SetInt64(Cudnn.AttrTensorByteAlignment, 16);
                t.SetBoolean(Cudnn.AttrTensorIsVirtual, isVirtual);
                if (byValue) t.SetBoolean(Cudnn.AttrTensorIsByValue, true);
                return t.Finalise();
            }
            // A descriptor kept with the plan: its enum attributes set, then finalised.
            CudnnDescriptor Described(int type, params ReadOnlySpan<(int Name, int Type, int Value)> enums)
            {
                var d = CudnnDescriptor.Create(type);
                keep.Add(d);
                foreach (var (name, enumType, value) in enums) d.SetEnum(name, enumType, value);
                return d.Finalise();
            }
            // An operation node kept with the plan: its descriptor attributes set in the order given (a null one is
            // left unset), then finalised.
            CudnnDescriptor Operation(int type, params ReadOnlySpan<(int Name, CudnnDescriptor? Value)> operands)
            {
                var op = CudnnDescriptor.Create(type);
                keep.Add(op);
                foreach (var (name, value) in operands)
                    if (value is not null) op.SetDescriptor(name, value);
                return op.Finalise();
            }
            long[] Dims(Tensor t) => [t.Dim(0), t.Dim(1), t.Dim(2), t.Dim(3)];
            long[] Strides(Tensor t) => [t.Layout.Stride(0), t.Layout.Stride(1), t.Layout.Stride(2), t.Layout.Stride(3)];

            var tq = T(UidQ, io, Dims(q), Strides(q));
            var tv = T(UidV, io, Dims(v), Strides(v));
            var to = T(UidO, io, Dims(o), Strides(o));
            var scale = T(UidScale, Cudnn.DataFloat, [1, 1, 1, 1], [1, 1, 1, 1], byValue: true);
            var ops = new List<CudnnDescriptor>();
            if (key.Graph == CudnnSdpaGraph.Unified)
            {
                var tk = T(UidK, io, Dims(k), Strides(k));
                ops.Add(Operation(Cudnn.OperationSdpaForwardDescriptor, (Cudnn.AttrSdpaForwardQ, tq), (Cudnn.AttrSdpaForwardK, tk),
                    (Cudnn.AttrSdpaForwardV, tv), (Cudnn.AttrSdpaForwardO, to), (Cudnn.AttrSdpaForwardScale, scale)));
            }
            else
            {
                long b = key.B, h = key.H, nq = key.Nq, nk = key.Nk, d = key.D;
                // Kᵀ as a [B, H, D, Nk] view of K.
                var tkt = T(UidK, io, [b, h, d, nk], [k.Layout.Stride(0), k.Layout.Stride(1), k.Layout.Stride(3), k.Layout.Stride(2)]);
                long uid = 100;
                CudnnDescriptor Full(int dtype = Cudnn.DataFloat) => T(uid++, dtype, [b, h, nq, nk], [h * nq * nk, nq * nk, nk, 1], isVirtual: true);
                CudnnDescriptor Row() => T(uid++, Cudnn.DataFloat, [b, h, nq, 1], [h * nq, nq, 1, 1], isVirtual: true);

                CudnnDescriptor MatMul(CudnnDescriptor a, CudnnDescriptor bt, CudnnDescriptor c)
                {
                    var m = Described(Cudnn.MatmulDescriptor, (Cudnn.AttrMatmulComputeType, Cudnn.TypeDataType, Cudnn.DataFloat));
                    return Operation(Cudnn.OperationMatmulDescriptor, (Cudnn.AttrOperationMatmulA, a), (Cudnn.AttrOperationMatmulB, bt),
                        (Cudnn.AttrOperationMatmulC, c), (Cudnn.AttrOperationMatmulDescriptor, m));
                }
                CudnnDescriptor Pointwise(int mode, CudnnDescriptor x, CudnnDescriptor? bIn, CudnnDescriptor y)
                {
                    var p = Described(Cudnn.PointwiseDescriptor, (Cudnn.AttrPointwiseMode, Cudnn.TypePointwiseMode, mode),
                        (Cudnn.AttrPointwiseMathPrecision, Cudnn.TypeDataType, Cudnn.DataFloat));
                    return Operation(Cudnn.OperationPointwiseDescriptor, (Cudnn.AttrOperationPointwiseDescriptor, p), (Cudnn.AttrOperationPointwiseX, x),
                        (Cudnn.AttrOperationPointwiseB, bIn), (Cudnn.AttrOperationPointwiseY, y));
                }
                CudnnDescriptor Reduction(int mode, CudnnDescriptor x, CudnnDescriptor y)
                {
                    var r = Described(Cudnn.ReductionDescriptor, (Cudnn.AttrReductionOperator, Cudnn.TypeReductionOperator, mode),
                        (Cudnn.AttrReductionComputeType, Cudnn.TypeDataType, Cudnn.DataFloat));
                    return Operation(Cudnn.OperationReductionDescriptor, (Cudnn.AttrOperationReductionDescriptor, r), (Cudnn.AttrOperationReductionX, x),
                        (Cudnn.AttrOperationReductionY, y));
                }

                var s = Full();
                ops.Add(MatMul(tq, tkt, s));
                var scaled = Full();
                ops.Add(Pointwise(Cudnn.PointwiseMul, s, scale, scaled));
                var max = Row();
                ops.Add(Reduction(Cudnn.ReduceMax, scaled, max));
                var shifted = Full();
                ops.Add(Pointwise(Cudnn.PointwiseSub, scaled, max, shifted));
                var exp = Full();
                ops.Add(Pointwise(Cudnn.PointwiseExp, shifted, null, exp));
                var sum = Row();
                ops.Add(Reduction(Cudnn.ReduceAdd, exp, sum));
                var log = Row();
                ops.Add(Pointwise(Cudnn.PointwiseLog, sum, null, log));
                var stats = Row();
                ops.Add(Pointwise(Cudnn.PointwiseAdd, max, log, stats));
                // P takes the input type: the engines read it as the A operand of P·V.
                var p = Full(io);
                ops.Add(Pointwise(Cudnn.PointwiseDiv, exp, sum, p));
                ops.Add(MatMul(p, tv, to));
            }

            var graph = CudnnDescriptor.Create(Cudnn.OperationGraphDescriptor);
            keep.Add(graph);
            graph.SetHandle(Cudnn.AttrOperationGraphHandle, handle);
            graph.SetDescriptors(Cudnn.AttrOperationGraphOps, ops);
            graph.Finalise();

            var (plan, workspace, index, count) = FirstPlan(handle, graph, keep, workspaceLimit, key.Describe(), skip);
            return new CudnnAttentionPlan(plan, keep, workspace, index, count);
        }
        catch
        {
            foreach (var d in keep) d.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The first engine configuration (in the heuristics' order, mode A then the fallback list) whose execution plan
    /// finalizes and needs at most <paramref name="workspaceLimit"/> bytes of workspace, after skipping
    /// <paramref name="skip"/> such configurations.
    /// </summary>
    internal static (CudnnDescriptor Plan, long Workspace, int Index, int Count) FirstPlan(IntPtr handle, CudnnDescriptor graph,
        List<CudnnDescriptor> keep, long workspaceLimit, string what, int skip = 0)
    {
        var reasons = new List<string>();
        int tried = 0, usable = 0;
        foreach (var mode in new[] { Cudnn.HeuristicsA, Cudnn.HeuristicsFallback })
        {
            using var heuristics = CudnnDescriptor.Create(Cudnn.EngineHeuristicsDescriptor);
            heuristics.SetDescriptor(Cudnn.AttrEngineHeuristicsOperationGraph, graph);
            heuristics.SetEnum(Cudnn.AttrEngineHeuristicsMode, Cudnn.TypeHeuristicsMode, mode);
            int status = heuristics.TryFinalise();
            if (status != Cudnn.Success)
            {
                reasons.Add($"heuristics mode {mode}: {Cudnn.Describe(status)}");
                continue;
            }
            status = Cudnn.cudnnBackendGetAttribute(heuristics.Handle, Cudnn.AttrEngineHeuristicsResults, Cudnn.TypeBackendDescriptor, 0, out long count, null);
            if (status != Cudnn.Success || count <= 0)
            {
                reasons.Add($"heuristics mode {mode}: {(status != Cudnn.Success ? Cudnn.Describe(status) : "no engine configuration")}");
                continue;
            }
            var configs = new List<CudnnDescriptor>();
            try
            {
                for (int i = 0; i < count; i++) configs.Add(CudnnDescriptor.Create(Cudnn.EngineConfigDescriptor));
                var handles = configs.Select(c => c.Handle).ToArray();
                fixed (IntPtr* hp = handles)
                    Cudnn.Check(Cudnn.cudnnBackendGetAttribute(heuristics.Handle, Cudnn.AttrEngineHeuristicsResults, Cudnn.TypeBackendDescriptor, count, out count, hp),
                        "cudnnBackendGetAttribute", "engine heuristics results");
                for (int i = 0; i < count; i++)
                {
                    tried++;
                    var plan = CudnnDescriptor.Create(Cudnn.ExecutionPlanDescriptor);
                    plan.SetHandle(Cudnn.AttrExecutionPlanHandle, handle);
                    plan.SetDescriptor(Cudnn.AttrExecutionPlanEngineConfig, configs[i]);
                    status = plan.TryFinalise();
                    if (status != Cudnn.Success)
                    {
                        if (reasons.Count < 6) reasons.Add($"config {i} (mode {mode}): {Cudnn.Describe(status)}");
                        plan.Dispose();
                        continue;
                    }
                    long workspace = plan.GetInt64(Cudnn.AttrExecutionPlanWorkspaceSize);
                    if (workspace > workspaceLimit)
                    {
                        if (reasons.Count < 6) reasons.Add($"config {i} (mode {mode}) needs {workspace} bytes of workspace");
                        plan.Dispose();
                        continue;
                    }
                    if (usable++ < skip)
                    {
                        plan.Dispose();
                        continue;
                    }
                    // The chosen configuration must outlive the plan built from it.
                    keep.Add(configs[i]);
                    configs.RemoveAt(i);
                    keep.Add(plan);
                    return (plan, workspace, i, (int)count);
                }
            }
            finally
            {
                foreach (var c in configs) c.Dispose();
            }
        }
        throw new CudaException("cuDNN", "execution plan", 3000, "CUDNN_STATUS_NOT_SUPPORTED",
            $"no engine for {what} ({tried} configurations tried, {usable} usable{(skip > 0 ? $", {skip} skipped" : "")}; {string.Join("; ", reasons)})");
    }

    /// <summary>Queues the attention on the handle's stream.</summary>
    public void Execute(IntPtr handle, ulong q, ulong k, ulong v, ulong o, float scale, ulong workspace)
    {
        using var pack = CudnnDescriptor.Create(Cudnn.VariantPackDescriptor);
        // The scale is passed by value: its "data pointer" is a host pointer read when the kernel is launched.
        float scaleValue = scale;
        long* uids = stackalloc long[] { UidQ, UidK, UidV, UidO, UidScale };
        void** pointers = stackalloc void*[] { (void*)q, (void*)k, (void*)v, (void*)o, &scaleValue };
        void* ws = (void*)workspace;
        pack.Set(Cudnn.AttrVariantPackUniqueIds, Cudnn.TypeInt64, 5, uids);
        pack.Set(Cudnn.AttrVariantPackDataPointers, Cudnn.TypeVoidPointer, 5, pointers);
        pack.Set(Cudnn.AttrVariantPackWorkspace, Cudnn.TypeVoidPointer, 1, &ws);
        pack.Finalise();
        Cudnn.Check(Cudnn.cudnnBackendExecute(handle, _plan.Handle, pack.Handle), "cudnnBackendExecute", "fused attention");
    }

    public void Dispose()
    {
        foreach (var d in _keep) d.Dispose();
        _keep.Clear();
    }
}
