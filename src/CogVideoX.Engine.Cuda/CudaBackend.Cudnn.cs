namespace CogVideoX.Engine.Cuda;

public sealed unsafe partial class CudaBackend
{
    /// <summary>cuDNN 9.13 is the first with the unified SDPA operation.</summary>
    private const long CudnnUnifiedSdpaVersion = 91300;

    private readonly Dictionary<CudnnAttentionKey, CudnnAttentionPlan?> _attentionPlans = new();
    private readonly Dictionary<CudnnConvolutionKey, CudnnConvolutionPlan?> _convolutionPlans = new();
    private readonly HashSet<string> _noted = new(StringComparer.Ordinal);
    private readonly List<string> _notes = new();
    private IntPtr _cudnn;
    private bool _cudnnTried;
    private long _cudnnVersion;

    /// <summary>
    /// Things worth knowing about how ops ran (a cuDNN path unavailable and why, the fallback taken), each recorded once.
    /// Also written to standard error as they happen.
    /// </summary>
    public IReadOnlyList<string> Notes
    {
        get
        {
            lock (_notes) return _notes.ToList();
        }
    }

    /// <summary>How many attention and convolution calls ran through cuDNN and through this backend's own kernels.</summary>
    public (long CudnnAttention, long OwnAttention, long CudnnConvolution, long OwnConvolution) PathCounts =>
        (_cudnnAttentionCalls, _ownAttentionCalls, _cudnnConvolutionCalls, _ownConvolutionCalls);

    private long _cudnnAttentionCalls, _ownAttentionCalls, _cudnnConvolutionCalls, _ownConvolutionCalls;

    internal void Note(string message)
    {
        lock (_notes)
        {
            if (!_noted.Add(message)) return;
            _notes.Add(message);
        }
        Console.Error.WriteLine($"[cuda] {message}");
    }

    /// <summary>The cuDNN handle on this backend's stream, or zero (with a note saying why) when cuDNN cannot be used.</summary>
    private IntPtr CudnnHandle()
    {
        if (_cudnnTried) return _cudnn;
        _cudnnTried = true;
        if (!CudaLibraries.IsAvailable(CudaLibrary.Cudnn))
        {
            Note($"cuDNN not found: attention and convolutions use this backend's own kernels (to fix: {CudaLibraries.FixHint(CudaLibrary.Cudnn)})");
            return IntPtr.Zero;
        }
        try
        {
            _cudnnVersion = (long)Cudnn.cudnnGetVersion();
            MakeCurrent();
            Cudnn.Check(Cudnn.cudnnCreate(out var handle), "cudnnCreate");
            int status = Cudnn.cudnnSetStream(handle, _stream.DangerousGetHandle());
            if (status != Cudnn.Success)
            {
                Cudnn.cudnnDestroy(handle);
                Cudnn.Check(status, "cudnnSetStream");
            }
            _cudnn = handle;
        }
        catch (Exception e) when (e is CogVideoXException or EntryPointNotFoundException or DllNotFoundException)
        {
            Note($"cuDNN could not be initialised ({e.Message}): attention and convolutions use this backend's own kernels");
        }
        return _cudnn;
    }

    /// <summary>
    /// Runs attention through cuDNN's fused flash engine when cuDNN offers one for these shapes and strides; false
    /// (the caller runs its own kernel) otherwise. Plans are cached per shape and layout, refusals too.
    /// </summary>
    private bool TryCudnnAttention(Tensor q, Tensor k, Tensor v, Tensor? bias, float scale, Tensor y)
    {
        if (!Options.UseCudnnAttention) return false;
        if (bias is not null) return false;  // an arbitrary additive bias has no fused engine; T5's sequences are short
        if (q.DType is not (DType.F16 or DType.BF16) || k.DType != q.DType || v.DType != q.DType || y.DType != q.DType) return false;
        if (q.Dim(3) > 256 || q.Dim(3) % 8 != 0) return false;
        foreach (var t in new[] { q, k, v, y })
        {
            // Unit stride along the head dim, 16-byte aligned rows: what the fused engines read.
            if (t.Layout.Stride(3) != 1 || Ptr(t) % 16 != 0) return false;
            for (int i = 0; i < 3; i++)
                if (t.Layout.Stride(i) % 8 != 0 && t.Dim(i) > 1) return false;
        }
        var handle = CudnnHandle();
        if (handle == IntPtr.Zero) return false;
        int dataType = q.DType == DType.F16 ? Cudnn.DataHalf : Cudnn.DataBFloat16;
        var graphs = Options.CudnnAttentionGraph switch
        {
            CudnnAttentionGraphChoice.Unified when _cudnnVersion >= CudnnUnifiedSdpaVersion => new[] { CudnnSdpaGraph.Unified },
            CudnnAttentionGraphChoice.Composite => new[] { CudnnSdpaGraph.Composite },
            _ when _cudnnVersion >= CudnnUnifiedSdpaVersion => new[] { CudnnSdpaGraph.Unified, CudnnSdpaGraph.Composite },
            _ => new[] { CudnnSdpaGraph.Composite },
        };
        if (Options.CudnnAttentionAutotune && (double)q.Dim(0) * q.Dim(1) * q.Dim(2) * k.Dim(2) >= AutotuneMinimumScores
            && !ReferenceEquals(y.Storage, q.Storage) && !ReferenceEquals(y.Storage, k.Storage) && !ReferenceEquals(y.Storage, v.Storage))
        {
            // The tuned choice is cached under a key of its own (graph −1: "whichever won").
            var tunedKey = CudnnAttentionKey.Of(dataType, CudnnSdpaGraph.Unified, q, k, v, y) with { Graph = (CudnnSdpaGraph)(-1) };
            if (!_attentionPlans.TryGetValue(tunedKey, out var tuned))
            {
                tuned = Autotune(handle, graphs, dataType, q, k, v, y, scale);
                _attentionPlans[tunedKey] = tuned;
            }
            if (tuned is not null && ExecuteAttention(handle, tuned, tunedKey, q, k, v, y, scale)) return true;
        }
        foreach (var graph in graphs)
        {
            var key = CudnnAttentionKey.Of(dataType, graph, q, k, v, y);
            if (!_attentionPlans.TryGetValue(key, out var plan))
            {
                try
                {
                    MakeCurrent();
                    plan = CudnnAttentionPlan.Build(handle, key, q, k, v, y, Options.ScratchLimitBytes);
                    Note($"cuDNN fused attention ({graph} graph, engine configuration {plan.ConfigIndex} of {plan.ConfigCount}, workspace {plan.WorkspaceBytes} bytes) for {key.Describe()}");
                }
                catch (Exception e) when (e is CudaException or EntryPointNotFoundException)
                {
                    plan = null;
                    Note($"cuDNN has no {graph} attention plan for {key.Describe()}: {e.Message}");
                }
                _attentionPlans[key] = plan;
            }
            if (plan is null) continue;
            if (ExecuteAttention(handle, plan, key, q, k, v, y, scale)) return true;
        }
        return false;
    }

    /// <summary>Problems of at least this many scores (B·H·Nq·Nk) have their cuDNN plan chosen by timing.</summary>
    private const double AutotuneMinimumScores = 1 << 27;

    /// <summary>Runs a plan; a plan cuDNN built but refuses to run is dropped (this and later calls take the next choice).</summary>
    private bool ExecuteAttention(IntPtr handle, CudnnAttentionPlan plan, CudnnAttentionKey key, Tensor q, Tensor k, Tensor v, Tensor y, float scale)
    {
        MakeCurrent();
        using var workspace = plan.WorkspaceBytes > 0 ? Tensor.Empty(this, DType.F32, (int)((plan.WorkspaceBytes + 3) / 4)) : null;
        try
        {
            plan.Execute(handle, Ptr(q), Ptr(k), Ptr(v), Ptr(y), scale, workspace is null ? 0 : Ptr(workspace));
        }
        catch (CudaException e)
        {
            Note($"cuDNN attention failed to run for {key.Describe()}: {e.Message}");
            plan.Dispose();
            _attentionPlans[key] = null;
            return false;
        }
        _cudnnAttentionCalls++;
        return true;
    }

    /// <summary>
    /// Builds every usable plan (each graph, each engine configuration the heuristics offer, up to a few each), times
    /// each on the call's own tensors (the output is written, which the call does anyway) and keeps the fastest.
    /// </summary>
    private CudnnAttentionPlan? Autotune(IntPtr handle, CudnnSdpaGraph[] graphs, int dataType, Tensor q, Tensor k, Tensor v, Tensor y, float scale)
    {
        var candidates = new List<(CudnnAttentionPlan Plan, string Name, double Ms)>();
        var refusals = new List<string>();
        foreach (var graph in graphs)
        {
            var key = CudnnAttentionKey.Of(dataType, graph, q, k, v, y);
            for (int skip = 0; skip < 6; skip++)
            {
                CudnnAttentionPlan plan;
                try
                {
                    MakeCurrent();
                    plan = CudnnAttentionPlan.Build(handle, key, q, k, v, y, Options.ScratchLimitBytes, skip);
                }
                catch (Exception e) when (e is CudaException or EntryPointNotFoundException)
                {
                    if (skip == 0) refusals.Add($"{graph}: {e.Message}");
                    break;
                }
                try
                {
                    using var workspace = plan.WorkspaceBytes > 0 ? Tensor.Empty(this, DType.F32, (int)((plan.WorkspaceBytes + 3) / 4)) : null;
                    ulong ws = workspace is null ? 0 : Ptr(workspace);
                    plan.Execute(handle, Ptr(q), Ptr(k), Ptr(v), Ptr(y), scale, ws);
                    double ms = TimeMilliseconds(() =>
                    {
                        plan.Execute(handle, Ptr(q), Ptr(k), Ptr(v), Ptr(y), scale, ws);
                        plan.Execute(handle, Ptr(q), Ptr(k), Ptr(v), Ptr(y), scale, ws);
                    }) / 2;
                    candidates.Add((plan, $"{graph} configuration {plan.ConfigIndex}", ms));
                }
                catch (CudaException e)
                {
                    refusals.Add($"{graph} configuration {plan.ConfigIndex}: {e.Message}");
                    plan.Dispose();
                }
            }
        }
        var shape = $"[{q.Dim(0)},{q.Dim(1)},{q.Dim(2)},{q.Dim(3)}] × {k.Dim(2)} keys";
        if (candidates.Count == 0)
        {
            Note($"cuDNN attention autotuning found no plan for {shape}: {string.Join("; ", refusals)}");
            return null;
        }
        var best = candidates.MinBy(c => c.Ms);
        foreach (var c in candidates)
            if (!ReferenceEquals(c.Plan, best.Plan)) c.Plan.Dispose();
        Note($"cuDNN attention for {shape} (strides {CudnnAttentionKey.Of(dataType, CudnnSdpaGraph.Unified, q, k, v, y).Strides}): chose {best.Name} " +
            $"({string.Join(", ", candidates.Select(c => $"{c.Name} {c.Ms:0.00} ms"))})");
        return best.Plan;
    }

    /// <summary>A 3D convolution through cuDNN (y contiguous, of x's dtype), or false when cuDNN cannot run it.</summary>
    private bool TryCudnnConvolution(Tensor x, Tensor weight, Conv3dParams p, Tensor y)
    {
        if (!Options.UseCudnnConvolution) return false;
        if (!y.IsContiguous || y.DType != x.DType || !x.IsContiguous || !weight.IsContiguous || weight.DType != x.DType) return false;
        if (x.ElementCount > int.MaxValue || y.ElementCount > int.MaxValue || weight.ElementCount > int.MaxValue) return false;
        var handle = CudnnHandle();
        if (handle == IntPtr.Zero) return false;
        var (dataType, compute, math) = x.DType switch
        {
            DType.F16 => (Cudnn.DataHalf, Cudnn.DataFloat, Cudnn.TensorOpMath),
            DType.BF16 => (Cudnn.DataBFloat16, Cudnn.DataFloat, Cudnn.TensorOpMath),
            // Float32 stays float32 unless TF32 is allowed, as for GEMMs.
            _ => (Cudnn.DataFloat, Cudnn.DataFloat, Options.AllowTf32 ? Cudnn.TensorOpMath : Cudnn.FmaMath),
        };
        int frames = y.Dim(2);
        var key = new CudnnConvolutionKey(dataType, compute, math, x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3), x.Dim(4),
            weight.Dim(0), weight.Dim(2), weight.Dim(3), weight.Dim(4), p, frames, frames);
        var plan = ConvolutionPlan(handle, key, y);
        if (plan is null) return false;
        // The fastest algorithms for channels-first input transpose it inside the workspace; when the whole tensor is
        // too large for the limit, run them on a few output frames at a time (time padding would need edge chunks).
        if (!plan.FirstChoice && frames > 1 && p.PadT == 0)
        {
            for (int chunk = (frames + 1) / 2; ; chunk = (chunk + 1) / 2)
            {
                var chunked = ConvolutionPlan(handle, key with { ChunkFrames = chunk }, y);
                if (chunked is not null && (chunked.FirstChoice || chunk == 1))
                {
                    int es = x.DType.SizeOf();
                    long xFrame = (long)x.Dim(3) * x.Dim(4) * es * p.StrideT, yFrame = (long)y.Dim(3) * y.Dim(4) * es;
                    for (int t0 = 0; t0 < frames; t0 += chunk)
                    {
                        int n = Math.Min(chunk, frames - t0);
                        var part = n == chunk ? chunked : ConvolutionPlan(handle, key with { ChunkFrames = n }, y);
                        if (part is null || !RunConvolution(handle, part, Ptr(x) + (ulong)(t0 * xFrame), Ptr(weight), Ptr(y) + (ulong)(t0 * yFrame)))
                            return false;
                    }
                    return true;
                }
                if (chunk == 1) break;
            }
        }
        return RunConvolution(handle, plan, Ptr(x), Ptr(weight), Ptr(y));
    }

    private CudnnConvolutionPlan? ConvolutionPlan(IntPtr handle, CudnnConvolutionKey key, Tensor y)
    {
        if (_convolutionPlans.TryGetValue(key, out var plan)) return plan;
        try
        {
            MakeCurrent();
            plan = CudnnConvolutionPlan.Build(handle, key, y.Dim(3), y.Dim(4), Options.ConvolutionWorkspaceLimitBytes);
        }
        catch (Exception e) when (e is CudaException or EntryPointNotFoundException)
        {
            plan = null;
            Note($"cuDNN convolution unavailable for {key.Describe()}: {e.Message}; using im2col + GEMM");
        }
        _convolutionPlans[key] = plan;
        return plan;
    }

    private bool RunConvolution(IntPtr handle, CudnnConvolutionPlan plan, ulong x, ulong w, ulong y)
    {
        MakeCurrent();
        using var workspace = plan.WorkspaceBytes > 0 ? Tensor.Empty(this, DType.F32, (int)((plan.WorkspaceBytes + 3) / 4)) : null;
        try
        {
            plan.Execute(handle, x, w, y, workspace is null ? 0 : Ptr(workspace));
        }
        catch (CudaException e)
        {
            Note($"cuDNN convolution failed to run (algorithm {plan.Algorithm}): {e.Message}; using im2col + GEMM");
            return false;
        }
        _cudnnConvolutionCalls++;
        return true;
    }

    /// <summary>The algorithm chosen for each convolution shape so far (the bench prints them).</summary>
    public IReadOnlyList<string> ConvolutionPlans =>
        _convolutionPlans.Select(p => $"{p.Key.Describe()}: {(p.Value is null ? "im2col" : $"cuDNN algorithm {p.Value.Algorithm}{(p.Value.FirstChoice ? "" : " (not the first choice)")}, workspace {p.Value.WorkspaceBytes} bytes")}").ToList();

    private void DisposeCudnn()
    {
        foreach (var plan in _attentionPlans.Values) plan?.Dispose();
        _attentionPlans.Clear();
        foreach (var plan in _convolutionPlans.Values) plan?.Dispose();
        _convolutionPlans.Clear();
        if (_cudnn != IntPtr.Zero)
        {
            Cudnn.cudnnDestroy(_cudnn);
            _cudnn = IntPtr.Zero;
        }
    }
}
