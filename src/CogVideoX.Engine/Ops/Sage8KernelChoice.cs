namespace CogVideoX.Engine;

/// <summary>
/// Which GPU kernel computes the 8-bit attention (<see cref="Sage8Attention"/>): an A/B switch for measurements, not a
/// mode of the run. Their numerics differ in two details, each followed by the CPU emulation where a scope forces the
/// kernel: the wgmma kernel's softmax steps over 128 keys (<see cref="Sage8KernelChoice.WgmmaSoftmaxStep"/>) and takes
/// linear exponentials (<see cref="Sage8KernelChoice.WgmmaLinearExp"/>); the mma.sync kernel steps over 64 with exp2.
/// </summary>
public enum Sage8Kernel
{
    /// <summary>The backend's fastest for the device: on sm_90 the wgmma/TMA kernel, elsewhere the mma.sync one.</summary>
    Auto,

    /// <summary>The warpgroup (wgmma) kernel with a TMA producer (attention_sage8_sm90.cu; sm_90 only).</summary>
    Wgmma,

    /// <summary>The portable mma.sync kernel (attention_sage8.cu; sm_89 and newer).</summary>
    MmaSync,
}

/// <summary>
/// Forces one 8-bit attention kernel on this thread for the lifetime of a scope (the op catalogue checks each kernel
/// against the CPU emulation; the timings time each); backends without a choice ignore it.
/// </summary>
public static class Sage8KernelChoice
{
    [ThreadStatic] private static Sage8Kernel? t_forced;
    [ThreadStatic] private static int t_legacyPrepass;

    /// <summary>The kernel forced on this thread, or null (the backend's option decides).</summary>
    public static Sage8Kernel? Forced => t_forced;

    /// <summary>Forces <paramref name="kernel"/> until the returned scope is disposed (scopes nest).</summary>
    public static IDisposable Force(Sage8Kernel kernel)
    {
        var previous = t_forced;
        t_forced = kernel;
        return new Scope(previous);
    }

    /// <summary>Whether this thread asked for the legacy quantization pre-pass (<see cref="ForceLegacyPrepass"/>).</summary>
    public static bool LegacyPrepass => t_legacyPrepass > 0;

    /// <summary>
    /// Until the returned scope is disposed, a backend whose 8-bit attention has two pre-pass forms runs its first one
    /// (five launches), which the faster one must match bit for bit: the op catalogue compares the two on a GPU.
    /// Backends with one form ignore it.
    /// </summary>
    public static IDisposable ForceLegacyPrepass()
    {
        t_legacyPrepass++;
        return new LegacyScope();
    }

    /// <summary>The define that sets the wgmma kernel's softmax step (attention_sage8_sm90.cu).</summary>
    public const string WgmmaKeysDefine = "SAGE90_KEYS";

    /// <summary>
    /// The wgmma kernel's softmax step without SAGE90_KEYS: 128 keys, two of K's 64-key scale blocks (H200: 8.18 ms a
    /// call at [2, 30, 17776, 64] against 8.56 at 64; docs/fast-modes.md). The kernel's #define must say the same.
    /// </summary>
    public const int DefaultWgmmaSoftmaxStep = 128;

    private static readonly Lazy<int> s_wgmmaSoftmaxStep = new(() => WgmmaSoftmaxStepFrom(KernelDefines.Integer(WgmmaKeysDefine)));

    /// <summary>
    /// The keys the wgmma kernel's online softmax takes at once: <see cref="DefaultWgmmaSoftmaxStep"/>, or SAGE90_KEYS
    /// from COGVIDEOX_KERNEL_DEFINES (an A/B knob: 64 is the step before 2026-12-06). Read once, as the kernel is
    /// compiled once per process; the kernel's launch (Sage8Layout) and the CPU emulation of it
    /// (<see cref="EmulatedSoftmaxStep"/>) follow it.
    /// </summary>
    public static int WgmmaSoftmaxStep => s_wgmmaSoftmaxStep.Value;

    /// <summary>The wgmma kernel's softmax step for a value of SAGE90_KEYS (null: unset); anything but 64 or 128 is refused.</summary>
    public static int WgmmaSoftmaxStepFrom(int? defined) => defined switch
    {
        null => DefaultWgmmaSoftmaxStep,
        64 or 128 => defined.Value,
        _ => throw new CogVideoXException(
            $"{KernelDefines.Variable}: {WgmmaKeysDefine}={defined} is not a key step of the wgmma 8-bit attention kernel; " +
            $"set {WgmmaKeysDefine}=128 (the default) or {WgmmaKeysDefine}=64", 2),
    };

    private static readonly Lazy<Sage8Kernel> s_emulatedByDefault = new(() => EmulatedKernelFrom(Environment.GetEnvironmentVariable(GpuOptions.Sage8KernelVariable)));

    /// <summary>
    /// Whose numerics the CPU emulation follows outside a forcing scope, from COGVIDEOX_SAGE8_KERNEL (null: unset):
    /// wgmma's (the sm_90 kernel's 128-key steps and linear exponentials) where it names that kernel, so that a CPU run
    /// measures what an H100 or H200 computes; else the mma.sync kernel's. A value the GPU would refuse is refused.
    /// </summary>
    public static Sage8Kernel EmulatedKernelFrom(string? variable) =>
        string.IsNullOrWhiteSpace(variable) || GpuOptions.ParseSage8Kernel(variable) != Sage8Kernel.Wgmma ? Sage8Kernel.MmaSync : Sage8Kernel.Wgmma;

    /// <summary>The kernel whose numerics the CPU emulation follows on this thread: the forced one, else <see cref="EmulatedKernelFrom"/>.</summary>
    public static Sage8Kernel EmulatedKernel => t_forced is { } forced && forced != Sage8Kernel.Auto ? forced : s_emulatedByDefault.Value;

    /// <summary>
    /// The softmax step the CPU emulation uses on this thread: the wgmma kernel's where a scope forces that kernel (the
    /// op catalogue then checks it against the emulation of its own numerics) or COGVIDEOX_SAGE8_KERNEL=wgmma asks for
    /// its numerics, else 64 (the mma.sync kernel's).
    /// </summary>
    public static int EmulatedSoftmaxStep => EmulatedKernel == Sage8Kernel.Wgmma ? WgmmaSoftmaxStep : Sage8Attention.KeyTile;

    /// <summary>The define that gives the wgmma kernel its linear exponentials (attention_sage8_sm90.cu, SAGE90_EXP_LIN).</summary>
    public const string WgmmaLinearExpDefine = "SAGE90_EXP_LIN";

    /// <summary>
    /// Whether the wgmma kernel builds without SAGE90_EXP_LIN take their exponentials linear: yes since 2026-12-06 (H100,
    /// [2, 30, 17776, 64]: 7.49 ms a call against 8.08 with exp2; docs/fast-modes.md). The kernel's #define must say the same.
    /// </summary>
    public const bool DefaultWgmmaLinearExp = true;

    private static readonly Lazy<bool> s_wgmmaLinearExp = new(() => WgmmaLinearExpFrom(KernelDefines.Integer(WgmmaLinearExpDefine)));

    /// <summary>
    /// Whether the wgmma kernel computes P·448 with Schraudolph's linear exponential, an integer multiply-add on the
    /// dot product (<see cref="Sage8Attention.LinearProbabilities"/>), instead of exp2 on the special-function unit:
    /// <see cref="DefaultWgmmaLinearExp"/>, or SAGE90_EXP_LIN from COGVIDEOX_KERNEL_DEFINES. Read once, as the kernel is.
    /// </summary>
    public static bool WgmmaLinearExp => s_wgmmaLinearExp.Value;

    /// <summary>SAGE90_EXP_LIN's value as the kernel reads it (null: unset); anything but 0 or 1 is refused.</summary>
    public static bool WgmmaLinearExpFrom(int? defined) => defined switch
    {
        null => DefaultWgmmaLinearExp,
        0 or 1 => defined.Value == 1,
        _ => throw new CogVideoXException(
            $"{KernelDefines.Variable}: {WgmmaLinearExpDefine}={defined} is not a form of the wgmma 8-bit attention kernel's exponentials; " +
            $"set {WgmmaLinearExpDefine}=1 (linear) or {WgmmaLinearExpDefine}=0 (exp2)", 2),
    };

    /// <summary>Whether the CPU emulation takes linear exponentials on this thread: where it follows the wgmma kernel (<see cref="EmulatedKernel"/>), as that does.</summary>
    public static bool EmulatedLinearExp => EmulatedKernel == Sage8Kernel.Wgmma && WgmmaLinearExp;

    /// <summary>"wgmma" or "mma.sync" (auto is "auto"), as the catalogue and the timings label their cases.</summary>
    public static string Name(Sage8Kernel kernel) => kernel switch
    {
        Sage8Kernel.Wgmma => "wgmma",
        Sage8Kernel.MmaSync => "mma.sync",
        _ => "auto",
    };

    private sealed class LegacyScope : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            t_legacyPrepass--;
        }
    }

    private sealed class Scope(Sage8Kernel? previous) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            t_forced = previous;
        }
    }
}
