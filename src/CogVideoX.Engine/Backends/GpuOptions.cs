namespace CogVideoX.Engine;

/// <summary>Which attention kernel a GPU backend tries first where both apply.</summary>
public enum AttentionPreference
{
    /// <summary>The backend's own kernel (on sm_90 measured faster than cuDNN's), the default.</summary>
    Own,

    /// <summary>cuDNN's fused flash attention.</summary>
    Cudnn,
}

/// <summary>What a GPU backend uses cuDNN for.</summary>
public enum CudnnUse
{
    /// <summary>Attention and convolutions, the default.</summary>
    On,
    Off,
    AttentionOnly,
    ConvolutionOnly,

    /// <summary>Both, and time the candidate attention plans and GEMM algorithms on first use.</summary>
    Autotune,
}

/// <summary>The cuDNN operation graph attention is described with.</summary>
public enum CudnnSdpaForm
{
    /// <summary>The unified SDPA operation where cuDNN has it (9.13+), else the composite graph.</summary>
    Auto,
    Unified,
    Composite,
}

/// <summary>
/// The GPU choices a user may make for a run, as the CLI flags (<c>--attention</c>, <c>--cudnn</c>,
/// <c>--cudnn-sdpa</c>) and experiment settings spell them; a GPU backend turns them into its own options and the CPU
/// backend ignores them. The environment variables COGVIDEOX_ATTENTION, COGVIDEOX_CUDNN and COGVIDEOX_CUDNN_SDPA,
/// when set, override them (<see cref="WithEnvironment"/>), for comparisons on a device without changing a command.
/// </summary>
public sealed record GpuOptions
{
    public AttentionPreference Attention { get; init; }

    public CudnnUse Cudnn { get; init; }

    public CudnnSdpaForm CudnnSdpa { get; init; }

    /// <summary>
    /// Which kernel runs <c>--attention sage8</c> on a GPU (auto: the wgmma kernel on sm_90). Set only through
    /// COGVIDEOX_SAGE8_KERNEL, for A/B timings of the two kernels; on the CPU, wgmma makes the emulation follow that
    /// kernel's numerics (<see cref="Sage8KernelChoice.EmulatedKernelFrom"/>).
    /// </summary>
    public Sage8Kernel Sage8Kernel { get; init; }

    public static GpuOptions Default { get; } = new();

    public const string AttentionVariable = "COGVIDEOX_ATTENTION";
    public const string CudnnVariable = "COGVIDEOX_CUDNN";
    public const string CudnnSdpaVariable = "COGVIDEOX_CUDNN_SDPA";
    public const string Sage8KernelVariable = "COGVIDEOX_SAGE8_KERNEL";

    /// <summary>The names of each choice, the default first.</summary>
    public static IReadOnlyList<string> AttentionNames { get; } = ["own", "cudnn", Sage8Name];

    /// <summary>
    /// <c>--attention sage8</c>: the transformer's self-attention in 8 bits (<see cref="AttentionMode.Sage8"/>, a
    /// numerical mode of the run, not a kernel preference); every other attention runs as with own.
    /// </summary>
    public const string Sage8Name = "sage8";

    public static IReadOnlyList<string> CudnnNames { get; } = ["on", "off", "attention", "conv", "autotune"];

    public static IReadOnlyList<string> CudnnSdpaNames { get; } = ["auto", "unified", "composite"];

    /// <summary>The names of <see cref="Engine.Sage8Kernel"/>'s values, in its order.</summary>
    public static IReadOnlyList<string> Sage8KernelNames { get; } = ["auto", "wgmma", "mma"];

    /// <summary>
    /// Parses <c>--attention</c> (any case); <paramref name="source"/> names where the value came from in the error.
    /// </summary>
    public static AttentionPreference ParseAttention(string text, string source = "--attention") => Normalise(text) switch
    {
        "own" => AttentionPreference.Own,
        "cudnn" => AttentionPreference.Cudnn,
        Sage8Name when source != AttentionVariable => AttentionPreference.Own,
        Sage8Name => throw new CogVideoXException(
            $"{AttentionVariable}=sage8: 8-bit attention changes the video, so it is chosen per run with --attention sage8 (or attention: sage8 in a spec), " +
            $"not by the environment; unset {AttentionVariable} or set it to own or cudnn", 2),
        _ => throw NotUnderstood(source, text,
            "use own (this backend's sm_90 kernel first, the default), cudnn, or sage8 (8-bit attention in the transformer, a fast mode that changes the video slightly)"),
    };

    /// <summary>
    /// The transformer's attention mode an <c>--attention</c> value asks for: <see cref="AttentionMode.Sage8"/> for
    /// sage8, else exact (null or empty too). Unknown values are refused as <see cref="ParseAttention"/> does.
    /// </summary>
    public static AttentionMode ParseAttentionMode(string? text, string source = "--attention")
    {
        if (string.IsNullOrWhiteSpace(text)) return AttentionMode.Exact;
        _ = ParseAttention(text, source);
        return Normalise(text) == Sage8Name ? AttentionMode.Sage8 : AttentionMode.Exact;
    }

    /// <summary>Parses <c>--cudnn</c>: on (1), off (0), attention or conv (only that), autotune.</summary>
    public static CudnnUse ParseCudnn(string text, string source = "--cudnn") => Normalise(text) switch
    {
        "1" or "on" => CudnnUse.On,
        "0" or "off" => CudnnUse.Off,
        "attention" => CudnnUse.AttentionOnly,
        "conv" => CudnnUse.ConvolutionOnly,
        "autotune" => CudnnUse.Autotune,
        _ => throw NotUnderstood(source, text, "use on, off, attention, conv or autotune (1 and 0 mean on and off)"),
    };

    /// <summary>Parses <c>--cudnn-sdpa</c>: auto, unified or composite.</summary>
    public static CudnnSdpaForm ParseCudnnSdpa(string text, string source = "--cudnn-sdpa") => Normalise(text) switch
    {
        "auto" => CudnnSdpaForm.Auto,
        "unified" => CudnnSdpaForm.Unified,
        "composite" => CudnnSdpaForm.Composite,
        _ => throw NotUnderstood(source, text, "use auto, unified or composite"),
    };

    /// <summary>Parses COGVIDEOX_SAGE8_KERNEL: auto, wgmma or mma (mma.sync too).</summary>
    public static Sage8Kernel ParseSage8Kernel(string text, string source = Sage8KernelVariable) => Normalise(text) switch
    {
        "auto" => Sage8Kernel.Auto,
        "wgmma" => Sage8Kernel.Wgmma,
        "mma" or "mma.sync" => Sage8Kernel.MmaSync,
        _ => throw NotUnderstood(source, text,
            "use auto (the wgmma kernel on sm_90, the default), wgmma (sm_90 only) or mma (the portable mma.sync kernel, sm_89 and newer)"),
    };

    /// <summary>Options from the user's names; null or empty keeps the default.</summary>
    public static GpuOptions Parse(string? attention, string? cudnn, string? cudnnSdpa)
    {
        var options = Default;
        if (!string.IsNullOrWhiteSpace(attention)) options = options with { Attention = ParseAttention(attention) };
        if (!string.IsNullOrWhiteSpace(cudnn)) options = options with { Cudnn = ParseCudnn(cudnn) };
        if (!string.IsNullOrWhiteSpace(cudnnSdpa)) options = options with { CudnnSdpa = ParseCudnnSdpa(cudnnSdpa) };
        return options;
    }

    /// <summary>These options with every variable that is set (and not empty) in <paramref name="environment"/> taking precedence.</summary>
    public GpuOptions WithEnvironment(Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var options = this;
        if (Set(environment(AttentionVariable)) is { } attention) options = options with { Attention = ParseAttention(attention, AttentionVariable) };
        if (Set(environment(CudnnVariable)) is { } cudnn) options = options with { Cudnn = ParseCudnn(cudnn, CudnnVariable) };
        if (Set(environment(CudnnSdpaVariable)) is { } graph) options = options with { CudnnSdpa = ParseCudnnSdpa(graph, CudnnSdpaVariable) };
        if (Set(environment(Sage8KernelVariable)) is { } sage8) options = options with { Sage8Kernel = ParseSage8Kernel(sage8, Sage8KernelVariable) };
        return options;
    }

    /// <summary>"attention own, cudnn on, cudnn-sdpa auto" (and ", sage8-kernel mma" when not auto), for logs and sidecars.</summary>
    public override string ToString() =>
        $"attention {AttentionNames[(int)Attention]}, cudnn {CudnnNames[(int)Cudnn]}, cudnn-sdpa {CudnnSdpaNames[(int)CudnnSdpa]}" +
        (Sage8Kernel == Sage8Kernel.Auto ? "" : $", sage8-kernel {Sage8KernelNames[(int)Sage8Kernel]}");

    private static string? Set(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    private static string Normalise(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Trim().ToLowerInvariant();
    }

    private static CogVideoXException NotUnderstood(string source, string text, string hint) =>
        new($"{source}='{text}' is not understood: {hint}", 2);
}
