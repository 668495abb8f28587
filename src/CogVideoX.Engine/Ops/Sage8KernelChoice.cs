namespace CogVideoX.Engine;

/// <summary>
/// Which GPU kernel computes the 8-bit attention (<see cref="Sage8Attention"/>): the numerics are the same, only the
/// speed differs, so this is an A/B switch for measurements, not a mode of the run.
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

    /// <summary>
    /// The softmax step the CPU emulation uses on this thread: the wgmma kernel's where a scope forces that kernel (the
    /// op catalogue then checks it against the emulation of its own numerics), else 64 (the mma.sync kernel's).
    /// </summary>
    public static int EmulatedSoftmaxStep => t_forced == Sage8Kernel.Wgmma ? WgmmaSoftmaxStep : Sage8Attention.KeyTile;

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
