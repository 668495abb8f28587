namespace CogVideoX.Engine.Cuda;

/// <summary>Settings of a CUDA backend.</summary>
public sealed record CudaBackendOptions
{
    /// <summary>
    /// Let float32 GEMMs use TF32 tensor cores (about 10 mantissa bits per product, normalised error near 1e-3
    /// instead of 1e-6). Off by default so F32 runs match the CPU reference at float32 tolerances.
    /// </summary>
    public bool AllowTf32 { get; init; }

    /// <summary>Largest scratch buffer an op may take (im2col chunks, attention fallback scores, cuDNN workspaces).</summary>
    public long ScratchLimitBytes { get; init; } = 256L << 20;

    /// <summary>
    /// Largest workspace a cuDNN convolution may take. The fastest algorithms for channels-first half-precision input
    /// transpose it to channels-last inside the workspace, which at 480×720 takes most of a GiB.
    /// </summary>
    public long ConvolutionWorkspaceLimitBytes { get; init; } = 1L << 30;

    /// <summary>Run F16/BF16 attention through cuDNN's fused flash engines when cuDNN 9 is present (own kernel otherwise).</summary>
    public bool UseCudnnAttention { get; init; } = true;

    /// <summary>
    /// Try this backend's sm_90 attention kernel before cuDNN where it applies (head dim 64, F16/BF16, no bias): on the
    /// H200 it measured faster than cuDNN 9.14 at the transformers' shapes (docs/gpu-runs). False puts cuDNN first.
    /// </summary>
    public bool OwnAttentionFirst { get; init; } = true;

    /// <summary>Run 3D convolutions through cuDNN when it is present (im2col + cuBLASLt otherwise).</summary>
    public bool UseCudnnConvolution { get; init; } = true;

    /// <summary>
    /// For large attention calls, time every plan cuDNN offers (both graphs, each engine configuration) on the first
    /// call of a shape and keep the fastest; otherwise the heuristics' first choice is used. Off by default: on an
    /// H100 the first choice measured as fast as the best, and building every plan costs seconds on the first call.
    /// </summary>
    public bool CudnnAttentionAutotune { get; init; }

    /// <summary>
    /// For large matrix products, time the cuBLASLt heuristics' best few algorithms on first use and keep the fastest.
    /// Off by default: on an H100 the transformer's products ran as fast with the heuristics' first choice.
    /// </summary>
    public bool GemmAutotune { get; init; }

    /// <summary>Which cuDNN attention graph to build: the unified SDPA operation first, then the composite one (Auto).</summary>
    public CudnnAttentionGraphChoice CudnnAttentionGraph { get; init; }

    /// <summary>
    /// Which kernel computes <c>--attention sage8</c>: Auto (the wgmma kernel on sm_90, the mma.sync one elsewhere),
    /// or one forced for A/B timings (COGVIDEOX_SAGE8_KERNEL = wgmma or mma).
    /// </summary>
    public Sage8Kernel Sage8Kernel { get; init; }

    /// <summary>The defaults with the user's GPU choices (flags or experiment settings) applied.</summary>
    public static CudaBackendOptions From(GpuOptions gpu)
    {
        ArgumentNullException.ThrowIfNull(gpu);
        var options = new CudaBackendOptions();
        options = gpu.Cudnn switch
        {
            CudnnUse.Off => options with { UseCudnnAttention = false, UseCudnnConvolution = false },
            CudnnUse.Autotune => options with { CudnnAttentionAutotune = true, GemmAutotune = true },
            CudnnUse.AttentionOnly => options with { UseCudnnConvolution = false },
            CudnnUse.ConvolutionOnly => options with { UseCudnnAttention = false },
            _ => options,
        };
        if (gpu.Attention == AttentionPreference.Cudnn) options = options with { OwnAttentionFirst = false };
        return options with
        {
            Sage8Kernel = gpu.Sage8Kernel,
            CudnnAttentionGraph = gpu.CudnnSdpa switch
            {
                CudnnSdpaForm.Unified => CudnnAttentionGraphChoice.Unified,
                CudnnSdpaForm.Composite => CudnnAttentionGraphChoice.Composite,
                _ => CudnnAttentionGraphChoice.Auto,
            },
        };
    }

    /// <summary>
    /// The defaults, changed by environment variables for comparisons on a device (see <see cref="GpuOptions"/>):
    /// COGVIDEOX_CUDNN = 0 (no cuDNN), attention or conv (only that), autotune (time the candidate attention plans and
    /// GEMM algorithms on first use), 1 (both, the default); COGVIDEOX_CUDNN_SDPA = unified, composite or auto;
    /// COGVIDEOX_ATTENTION = own (the default) or cudnn (which of the two goes first where both apply);
    /// COGVIDEOX_SAGE8_KERNEL = auto, wgmma or mma (which kernel runs --attention sage8).
    /// </summary>
    public static CudaBackendOptions FromEnvironment(Func<string, string?>? environment = null) =>
        From(GpuOptions.Default.WithEnvironment(environment));
}

/// <summary>The cuDNN operation graph attention is described with.</summary>
public enum CudnnAttentionGraphChoice
{
    /// <summary>The unified SDPA operation when cuDNN is 9.13 or later, else (or when it has no engine) the composite graph.</summary>
    Auto,
    Unified,
    Composite,
}

/// <summary>
/// The CUDA backend: one device's primary context, one compute stream, a caching allocator, cuBLASLt for matrix
/// products and NVRTC-compiled kernels for everything else. F16/BF16 are storage types: every kernel computes in
/// float32 (norm and softmax statistics in double), GEMMs accumulate in float32.
/// All work is queued on one stream, so ops run in program order; host copies and <see cref="Synchronize"/> wait.
/// An instance serves one thread at a time (its GEMM plan cache is not locked); storages may be
/// released from any thread.
/// </summary>
public sealed unsafe partial class CudaBackend : IBackend, IMemoryStatistics, ILinearKernel, ISoftmaxKernel, ILayerNormKernel, IRmsNormKernel, IGroupNormKernel,
    IModulatedLayerNormKernel, IGatedResidualKernel, ISpatialGroupNormKernel, IUpsampleNearestKernel, IAttentionKernel, IRotaryKernel, ILayerNormRotaryKernel,
    ISage8AttentionKernel, IFp8LinearKernel, IModulatedLayerNormFp8Kernel
{
    private const int StagingBytes = 16 << 20;
    private const long WorkspaceBytes = 32L << 20;

    [ThreadStatic] private static IntPtr t_currentContext;

    private readonly int _device;
    private readonly IntPtr _context;
    private readonly CudaStreamHandle _stream;
    private readonly CachingAllocator _allocator;
    private readonly CublasLtHandle _cublas;
    private readonly DeviceBlock _workspace;
    private readonly Dictionary<string, CudaModuleHandle> _modules = new();

    /// <summary>Optional modules that could not be built here, with the reason.</summary>
    private readonly Dictionary<string, string> _unavailableModules = new();
    private readonly Dictionary<string, KernelFunction> _functions = new();
    private readonly List<CompiledModule> _compiled = new();
    private readonly object _kernelGate = new();
    private PinnedHostBuffer?[] _staging = new PinnedHostBuffer?[2];
    private CudaEventHandle?[] _stagingDone = new CudaEventHandle?[2];
    private bool _contextRetained;
    private bool _disposed;

    private CudaBackend(CudaDeviceInfo info, CudaBackendOptions options)
    {
        Info = info;
        Options = options;
        Device = Device.Cuda(info.Index);
        CudaDriver.Check(CudaDriver.cuDeviceGet(out _device, info.Index), "cuDeviceGet");
        CudaDriver.Check(CudaDriver.cuDevicePrimaryCtxRetain(out _context, _device), "cuDevicePrimaryCtxRetain");
        _contextRetained = true;
        try
        {
            MakeCurrent();
            CudaDriver.Check(CudaDriver.cuStreamCreate(out _stream, CudaDriver.StreamNonBlocking), "cuStreamCreate");
            _allocator = new CachingAllocator(new DriverMemory(this));
            CublasLt.Check(CublasLt.cublasLtCreate(out _cublas), "cublasLtCreate");
            _workspace = _allocator.Allocate(WorkspaceBytes);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Opens device <paramref name="index"/>; errors name what is missing and how to fix it.</summary>
    public static CudaBackend Create(int index = 0, CudaBackendOptions? options = null)
    {
        CudaDevices.Initialise();
        var info = CudaDevices.Info(index);
        CudaLibraries.Require(CudaLibrary.Nvrtc);
        CudaLibraries.Require(CudaLibrary.CublasLt);
        return new CudaBackend(info, options ?? new CudaBackendOptions());
    }

    /// <summary>
    /// Makes "cuda" / "cuda:N" resolvable through <see cref="Backends"/>, which passes the caller's GPU options with
    /// the COGVIDEOX_* environment variables already applied.
    /// </summary>
    public static void Register() =>
        Backends.Register(DeviceKind.Cuda, (i, gpu) => Create(i, CudaBackendOptions.From(gpu)));

    public string Name => $"cuda:{Info.Index} ({Info.Name}, {Info.Architecture})";

    public Device Device { get; }

    public CudaDeviceInfo Info { get; }

    public CudaBackendOptions Options { get; }

    // ---- memory statistics ----

    public long AllocatedBytes => _allocator.AllocatedBytes;

    public long PeakBytes => _allocator.PeakAllocatedBytes;

    public long ReservedBytes => _allocator.ReservedBytes;

    public long PeakReservedBytes => _allocator.PeakReservedBytes;

    public void ResetPeak() => _allocator.ResetPeak();

    /// <summary>Returns cached, unused device memory to the driver (other processes can then use it).</summary>
    public void ReleaseCache()
    {
        MakeCurrent();
        _allocator.ReleaseCache();
    }

    /// <summary>Free and total device memory as the driver reports it.</summary>
    public (long Free, long Total) DeviceMemory()
    {
        MakeCurrent();
        CudaDriver.Check(CudaDriver.cuMemGetInfo_v2(out var free, out var total), "cuMemGetInfo");
        return ((long)free, (long)total);
    }

    /// <summary>The modules compiled or loaded from the kernel cache so far (the doctor reports them).</summary>
    public IReadOnlyList<KernelModuleInfo> KernelModules
    {
        get
        {
            lock (_kernelGate)
                return _compiled.Select(c => c.Info)
                    .Concat(_unavailableModules.Select(p => KernelModuleInfo.Failed(p.Key, p.Value))).ToList();
        }
    }

    /// <summary>Compiles (or loads from the cache) every kernel module now instead of on first use.</summary>
    public void LoadAllKernels()
    {
        lock (_kernelGate)
        {
            var missing = KernelCompiler.ModulesFor(Info.Major, Info.Minor)
                .Where(m => !_modules.ContainsKey(m) && !_unavailableModules.ContainsKey(m)).ToArray();
            // NVRTC programs are independent, so the modules compile side by side; loading is per context.
            var compiled = new CompiledModule?[missing.Length];
            var failures = new Exception?[missing.Length];
            Parallel.For(0, missing.Length, i =>
            {
                try { compiled[i] = KernelCompiler.Compile(missing[i], Info.Major, Info.Minor); }
                catch (Exception e) { failures[i] = e; }
            });
            for (int i = 0; i < missing.Length; i++)
            {
                if (compiled[i] is { } c) Load(c);
                else if (failures[i] is CogVideoXException e && KernelCompiler.IsOptional(missing[i])) ModuleUnavailable(missing[i], e);
                else System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failures[i]!);
            }
        }
    }

    // ---- IBackend: memory ----

    public Storage Allocate(DType dtype, long elementCount)
    {
        if (elementCount < 0) throw new ArgumentOutOfRangeException(nameof(elementCount));
        MakeCurrent();
        var block = _allocator.Allocate(Math.Max(elementCount * dtype.SizeOf(), 1));
        return new CudaStorage(this, _allocator, dtype, elementCount, block);
    }

    public void CopyFromHost(ReadOnlySpan<byte> source, Storage destination, long destinationByteOffset)
    {
        var s = Own(destination);
        if (destinationByteOffset < 0 || destinationByteOffset + source.Length > s.ByteLength)
            throw new ArgumentOutOfRangeException(nameof(destinationByteOffset));
        if (source.IsEmpty) return;
        MakeCurrent();
        int chunk = 0;
        for (long done = 0; done < source.Length; done += StagingBytes, chunk++)
        {
            int n = (int)Math.Min(StagingBytes, source.Length - done);
            int slot = chunk & 1;
            var (buffer, ready) = Staging(slot);
            // The buffer's previous copy must have left it before it is overwritten.
            CudaDriver.Check(CudaDriver.cuEventSynchronize(ready), "cuEventSynchronize");
            source.Slice((int)done, n).CopyTo(new Span<byte>(buffer.Pointer, n));
            CudaDriver.Check(CudaDriver.cuMemcpyHtoDAsync_v2(s.Pointer + (ulong)(destinationByteOffset + done), buffer.Pointer, (nuint)n, _stream), "cuMemcpyHtoDAsync");
            CudaDriver.Check(CudaDriver.cuEventRecord(ready, _stream), "cuEventRecord");
        }
    }

    public void CopyToHost(Storage source, long sourceByteOffset, Span<byte> destination)
    {
        var s = Own(source);
        if (sourceByteOffset < 0 || sourceByteOffset + destination.Length > s.ByteLength)
            throw new ArgumentOutOfRangeException(nameof(sourceByteOffset));
        if (destination.IsEmpty) return;
        MakeCurrent();
        int chunks = (int)((destination.Length + (long)StagingBytes - 1) / StagingBytes);
        // Two buffers in flight: chunk i copies out of the device while chunk i - 1 is copied into the span.
        for (int i = 0; i <= chunks; i++)
        {
            if (i < chunks)
            {
                var (buffer, ready) = Staging(i & 1);
                long at = (long)i * StagingBytes;
                int n = (int)Math.Min(StagingBytes, destination.Length - at);
                CudaDriver.Check(CudaDriver.cuMemcpyDtoHAsync_v2(buffer.Pointer, s.Pointer + (ulong)(sourceByteOffset + at), (nuint)n, _stream), "cuMemcpyDtoHAsync");
                CudaDriver.Check(CudaDriver.cuEventRecord(ready, _stream), "cuEventRecord");
            }
            if (i > 0)
            {
                var (buffer, ready) = Staging((i - 1) & 1);
                long at = (long)(i - 1) * StagingBytes;
                int n = (int)Math.Min(StagingBytes, destination.Length - at);
                CudaDriver.Check(CudaDriver.cuEventSynchronize(ready), "cuEventSynchronize");
                new ReadOnlySpan<byte>(buffer.Pointer, n).CopyTo(destination.Slice((int)at, n));
            }
        }
    }

    private (PinnedHostBuffer Buffer, CudaEventHandle Ready) Staging(int slot)
    {
        _staging[slot] ??= PinnedHostBuffer.Allocate(StagingBytes);
        if (_stagingDone[slot] is null)
        {
            CudaDriver.Check(CudaDriver.cuEventCreate(out var e, CudaDriver.EventDisableTiming), "cuEventCreate");
            _stagingDone[slot] = e;
        }
        return (_staging[slot]!, _stagingDone[slot]!);
    }

    public void Synchronize()
    {
        MakeCurrent();
        CudaDriver.Check(CudaDriver.cuStreamSynchronize(_stream), "cuStreamSynchronize");
    }

    // ---- timing ----

    /// <summary>Milliseconds of device time spent by the work <paramref name="body"/> queues, measured with events.</summary>
    public float TimeMilliseconds(Action body)
    {
        MakeCurrent();
        CudaDriver.Check(CudaDriver.cuEventCreate(out var start, CudaDriver.EventDefault), "cuEventCreate");
        using (start)
        {
            CudaDriver.Check(CudaDriver.cuEventCreate(out var end, CudaDriver.EventDefault), "cuEventCreate");
            using (end)
            {
                CudaDriver.Check(CudaDriver.cuEventRecord(start, _stream), "cuEventRecord");
                body();
                CudaDriver.Check(CudaDriver.cuEventRecord(end, _stream), "cuEventRecord");
                CudaDriver.Check(CudaDriver.cuEventSynchronize(end), "cuEventSynchronize");
                CudaDriver.Check(CudaDriver.cuEventElapsedTime(out float ms, start, end), "cuEventElapsedTime");
                return ms;
            }
        }
    }

    // ---- plumbing ----

    internal void MakeCurrent()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (t_currentContext == _context) return;
        CudaDriver.Check(CudaDriver.cuCtxSetCurrent(_context), "cuCtxSetCurrent");
        t_currentContext = _context;
    }

    private CudaStorage Own(Storage storage)
    {
        if (storage is not CudaStorage s || !ReferenceEquals(s.Backend, this))
            throw new ArgumentException($"storage on {storage.Backend.Device} used with the {Device} backend");
        return s;
    }

    /// <summary>The device address of a tensor's first element (its view offset applied).</summary>
    internal ulong Ptr(Tensor t)
    {
        var s = Own(t.Storage);
        return s.Pointer + (ulong)(t.Layout.Offset * t.DType.SizeOf());
    }

    internal static ulong Ptr(Tensor? t, CudaBackend backend) => t is null ? 0 : backend.Ptr(t);

    internal static string Suffix(DType t) => t switch
    {
        DType.F32 => "f32",
        DType.F16 => "f16",
        DType.BF16 => "bf16",
        DType.I64 => "i64",
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>Input/output dtype pairs the float kernels are built for: same type, or a half type widened to F32.</summary>
    internal static bool HasKernelPair(DType input, DType output) =>
        input.IsFloat() && output.IsFloat() && (input == output || output == DType.F32);

    internal KernelFunction Function(string module, string name)
    {
        lock (_kernelGate)
        {
            var key = module + "/" + name;
            if (_functions.TryGetValue(key, out var f)) return f;
            var m = Module(module);
            CudaDriver.Check(CudaDriver.cuModuleGetFunction(out var handle, m, name), $"cuModuleGetFunction({name})");
            f = new KernelFunction(handle, name);
            _functions[key] = f;
            return f;
        }
    }

    private CudaModuleHandle Module(string module)
    {
        lock (_kernelGate)
        {
            if (_modules.TryGetValue(module, out var loaded)) return loaded;
            if (_unavailableModules.TryGetValue(module, out var reason))
                throw new CogVideoXException($"kernel module {module} is unavailable: {reason}");
            try
            {
                return Load(KernelCompiler.Compile(module, Info.Major, Info.Minor));
            }
            catch (CogVideoXException e) when (KernelCompiler.IsOptional(module))
            {
                ModuleUnavailable(module, e);
                throw;
            }
        }
    }

    /// <summary>Whether an optional module has been built and loaded, building it on first ask (false, noted once, when it cannot be).</summary>
    internal bool TryModule(string module)
    {
        // Checked first so a module known to be unavailable costs a lookup per call, not a thrown exception.
        lock (_kernelGate)
            if (_unavailableModules.ContainsKey(module)) return false;
        try
        {
            Module(module);
            return true;
        }
        catch (CogVideoXException) when (KernelCompiler.IsOptional(module))
        {
            return false;
        }
    }

    private void ModuleUnavailable(string module, CogVideoXException e)
    {
        var reason = KernelCompiler.FailureSummary(e.Message);
        _unavailableModules[module] = reason;
        Note($"kernel module {module} is unavailable ({reason}); {KernelCompiler.WithoutIt(module)}");
    }

    private CudaModuleHandle Load(CompiledModule compiled)
    {
        MakeCurrent();
        CudaModuleHandle handle;
        fixed (byte* image = compiled.Image)
            CudaDriver.Check(CudaDriver.cuModuleLoadData(out handle, image), $"cuModuleLoadData({compiled.Module}, {compiled.Target})");
        _modules[compiled.Module] = handle;
        _compiled.Add(compiled);
        return handle;
    }

    internal void Launch<T>(KernelFunction function, uint gridX, uint gridY, uint block, ref T args) where T : unmanaged =>
        Launch(function, gridX, gridY, block, 0, ref args);

    /// <summary>A launch with <paramref name="sharedBytes"/> of dynamic shared memory (above 48 KiB the function's limit is raised first).</summary>
    internal void Launch<T>(KernelFunction function, uint gridX, uint gridY, uint block, uint sharedBytes, ref T args) where T : unmanaged
    {
        MakeCurrent();
        if (sharedBytes > 48 * 1024 && function.DynamicSharedBytes < sharedBytes)
        {
            const int MaxDynamicSharedSizeBytes = 8;  // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            CudaDriver.Check(CudaDriver.cuFuncSetAttribute(function.Handle, MaxDynamicSharedSizeBytes, (int)sharedBytes), $"cuFuncSetAttribute({function.Name}, {sharedBytes} bytes of shared memory)");
            function.DynamicSharedBytes = sharedBytes;
        }
        fixed (T* p = &args)
        {
            void* slot = p;
            int r = CudaDriver.cuLaunchKernel(function.Handle, gridX, gridY, 1, block, 1, 1, sharedBytes, _stream, &slot, null);
            if (r != CudaDriver.Success) throw CudaDriver.Error(r, $"cuLaunchKernel({function.Name})", $"grid {gridX}x{gridY}, block {block}, {sharedBytes} bytes of shared memory");
        }
    }

    /// <summary>Blocks for a grid-stride loop over count items: enough to fill the GPU, no more.</summary>
    internal uint Blocks(long count, int threads = 256)
    {
        long blocks = (count + threads - 1) / threads;
        return (uint)Math.Clamp(blocks, 1, (long)Info.Multiprocessors * 32);
    }

    /// <summary>This tensor if contiguous (a new reference), else a contiguous copy on this backend.</summary>
    internal Tensor Contiguous(Tensor t) => t.IsContiguous ? t.Alias() : t.Clone();

    /// <summary>A contiguous F32 copy (or reference) of a small parameter vector such as gamma or a bias.</summary>
    internal Tensor? F32(Tensor? t)
    {
        if (t is null) return null;
        if (t.DType == DType.F32 && t.IsContiguous) return t.Alias();
        var y = Tensor.Empty(this, DType.F32, t.ShapeArray());
        Copy(t, y);
        return y;
    }

    /// <summary>
    /// Runs a kernel writing a contiguous output of a dtype it is built for; when y is strided or of another dtype the
    /// kernel writes a contiguous F32 temporary that is then copied (and narrowed once) into y.
    /// </summary>
    internal void IntoOutput(Tensor y, DType input, Action<Tensor> kernel)
    {
        if (y.IsContiguous && HasKernelPair(input, y.DType))
        {
            kernel(y);
            return;
        }
        using var tmp = Tensor.Empty(this, DType.F32, y.ShapeArray());
        kernel(tmp);
        Copy(tmp, y);
    }

    public void Dispose()
    {
        if (_disposed) return;
        try
        {
            if (_contextRetained)
            {
                CudaDriver.cuCtxSetCurrent(_context);
                t_currentContext = _context;
                if (_stream is { IsInvalid: false }) CudaDriver.cuStreamSynchronize(_stream);
            }
            try
            {
                _allocator?.Dispose();
            }
            catch (CudaException)
            {
                // A failed kernel leaves the context unusable; its memory goes with the context below.
            }
            foreach (var plan in _plans.Values) plan.Dispose();
            _plans.Clear();
            DisposeFp8Plans();
            DisposeCudnn();
            DisposeProfile();
            _cublas?.Dispose();
            foreach (var m in _modules.Values) m.Dispose();
            _modules.Clear();
            _functions.Clear();
            foreach (var b in _staging) b?.Dispose();
            foreach (var e in _stagingDone) e?.Dispose();
            _staging = [null, null];
            _stagingDone = [null, null];
            _stream?.Dispose();
        }
        finally
        {
            _disposed = true;
            if (_contextRetained)
            {
                CudaDriver.cuDevicePrimaryCtxRelease_v2(_device);
                _contextRetained = false;
                t_currentContext = IntPtr.Zero;
            }
        }
    }

    /// <summary>Device memory from the driver, for the caching allocator.</summary>
    private sealed class DriverMemory(CudaBackend backend) : IDeviceMemory
    {
        public bool TryAllocate(long bytes, out ulong pointer)
        {
            int r = CudaDriver.cuMemAlloc_v2(out pointer, (nuint)bytes);
            if (r == CudaDriver.ErrorOutOfMemory) return false;
            if (r != CudaDriver.Success) throw CudaDriver.Error(r, "cuMemAlloc", $"{Bytes.Format(bytes)}");
            return true;
        }

        public void Free(ulong pointer) => CudaDriver.Check(CudaDriver.cuMemFree_v2(pointer), "cuMemFree");

        public void Synchronize() => CudaDriver.Check(CudaDriver.cuStreamSynchronize(backend._stream), "cuStreamSynchronize");

        public (long Free, long Total) Info()
        {
            CudaDriver.Check(CudaDriver.cuMemGetInfo_v2(out var free, out var total), "cuMemGetInfo");
            return ((long)free, (long)total);
        }
    }
}

/// <summary>A kernel entry point of a loaded module (valid while the backend lives).</summary>
internal sealed record KernelFunction(IntPtr Handle, string Name)
{
    /// <summary>The dynamic shared memory limit set for this function so far (0: the default 48 KiB).</summary>
    public uint DynamicSharedBytes { get; set; }
}
