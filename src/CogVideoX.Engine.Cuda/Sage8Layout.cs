namespace CogVideoX.Engine.Cuda;

/// <summary>
/// The host's side of the 8-bit attention kernels' data layout: scratch padding, the wgmma kernel's launch geometry
/// (mirrored from attention_sage8_sm90.cu's #defines; KernelConstantsTests evaluates the source and fails when the two
/// disagree) and its two tensor maps over the pre-pass's buffers. Pure arithmetic, tested without a GPU.
/// </summary>
internal static class Sage8Layout
{
    /// <summary>
    /// Keys per tile: K's scale block, the pre-pass's Vᵀ permutation block pair, a TMA box, and the mma.sync kernel's
    /// online-softmax step (the wgmma kernel's is <see cref="HopperKeyStep"/>).
    /// </summary>
    public const int KeyTile = 64;

    /// <summary>K/Vᵀ stages of the wgmma kernel (SAGE90_STAGES), each of <see cref="HopperKeyStep"/> keys.</summary>
    public const int HopperStages = 8;

    /// <summary>
    /// The wgmma kernel's online-softmax step (SAGE90_KEYS: 128, or 64 from COGVIDEOX_KERNEL_DEFINES): a stage holds
    /// that many keys, as whole 64-key tiles; <see cref="Sage8KernelChoice.WgmmaSoftmaxStep"/>, which the CPU emulation
    /// follows too.
    /// </summary>
    public static int HopperKeyStep => Sage8KernelChoice.WgmmaSoftmaxStep;

    private static readonly int? s_definedSerial = KernelDefines.Integer("SAGE90_SERIAL");

    /// <summary>
    /// Whether the wgmma kernel's schedule for a key step and exponential form is the serial one (SAGE90_SERIAL's
    /// default): overlapped (FlashAttention-3's form, two consumer warpgroups at 240 registers) at 128-key steps with the
    /// linear exponentials, the fastest measured (H100: 7.16 ms a call at [2, 30, 17776, 64] against 7.32 serial),
    /// serial otherwise; SAGE90_SERIAL from COGVIDEOX_KERNEL_DEFINES decides where it is set.
    /// </summary>
    public static bool HopperSerialFor(int keyStep, bool linearExp) =>
        s_definedSerial is { } defined ? defined != 0 : !(keyStep == 128 && linearExp);

    /// <summary>The kernel's schedule: <see cref="HopperSerialFor"/> its key step and exponentials.</summary>
    public static bool HopperSerial => HopperSerialFor(HopperKeyStep, Sage8KernelChoice.WgmmaLinearExp);

    /// <summary>
    /// Consumer warpgroups (64 query rows each) the wgmma kernel has by default for a key step and schedule (SAGE90_NW's
    /// default): serial, 4 with 64-key steps and 3 with 128, whose scores take twice the registers; overlapped, 3 and 2.
    /// </summary>
    public static int DefaultHopperWarpgroupsFor(int keyStep, bool serial) => (serial ? 5 : 4) - keyStep / KeyTile;

    /// <summary><see cref="DefaultHopperWarpgroupsFor"/> the kernel's <see cref="HopperKeyStep"/> and schedule.</summary>
    public static int DefaultHopperWarpgroups => DefaultHopperWarpgroupsFor(HopperKeyStep, HopperSerial);

    private static readonly int? s_definedWarpgroups = KernelDefines.Integer("SAGE90_NW");

    /// <summary>
    /// The consumer warpgroups the kernel is compiled with: <see cref="DefaultHopperWarpgroups"/>, or SAGE90_NW from
    /// COGVIDEOX_KERNEL_DEFINES (an A/B knob, with SAGE90_CONSUMER_REGS to match), so the launch matches the kernel.
    /// Read once, as the module is compiled once per process.
    /// </summary>
    public static int HopperWarpgroups => s_definedWarpgroups ?? DefaultHopperWarpgroups;

    /// <summary>Threads per block: the consumer warpgroups and one producer warpgroup (SAGE90_THREADS).</summary>
    public static int HopperThreads => 128 * (HopperWarpgroups + 1);

    /// <summary>Query rows per block (SAGE90_ROWS): the wgmma kernel's Q rows are padded to a multiple of it.</summary>
    public static int HopperRows => 64 * HopperWarpgroups;

    /// <summary>Bytes of one 64 × 64 8-bit tile (SAGE90_TILE) and of one key tile's 64 float K scales (SAGE90_KSCALE).</summary>
    public const int TileBytes = KeyTile * 64, KeyScaleBytes = KeyTile * 4;

    /// <summary>
    /// Whether the kernels sum the softmax's rows on the tensor cores (common.cuh's SAGE_TC_ROWSUM, 1 unless
    /// COGVIDEOX_KERNEL_DEFINES sets it): the wgmma kernel's Vᵀ tiles then carry 8 rows of ones.
    /// </summary>
    public static bool TensorCoreRowSums { get; } = (KernelDefines.Integer("SAGE_TC_ROWSUM") ?? 1) != 0;

    /// <summary>
    /// Bytes of one 64-key Vᵀ tile in a stage (SAGE90_VT_TILE): the tile, and 512 bytes of E4M3 ones with
    /// <see cref="TensorCoreRowSums"/>; a stage of 128 keys holds two, each with its ones.
    /// </summary>
    public static int ValueStageBytes => TileBytes + (TensorCoreRowSums ? 512 : 0);

    /// <summary>
    /// The wgmma kernel's dynamic shared memory (SAGE90_SMEM) for a key step: per stage, <paramref name="keyStep"/>/64
    /// key tiles' K, Vᵀ and K scales; then the stages' two barriers, and 1024 bytes to align the tiles for the swizzle.
    /// </summary>
    public static uint HopperSharedBytesFor(int keyStep) =>
        (uint)(HopperStages * (keyStep / KeyTile) * (TileBytes + ValueStageBytes + KeyScaleBytes) + 8 * 2 * HopperStages + 1024);

    /// <summary><see cref="HopperSharedBytesFor"/> the kernel's <see cref="HopperKeyStep"/>.</summary>
    public static uint HopperSharedBytes => HopperSharedBytesFor(HopperKeyStep);

    /// <summary>
    /// Q's padded row count: a multiple of 64 for the mma.sync kernel (4 warps × 16 rows a block), of
    /// <see cref="HopperRows"/> for the wgmma kernel, which reads whole blocks of rows without a bound check.
    /// </summary>
    public static int PaddedQueryRows(int nq, Sage8Kernel kernel)
    {
        int unit = kernel == Sage8Kernel.Wgmma ? HopperRows : 64;
        return (nq + unit - 1) / unit * unit;
    }

    /// <summary>
    /// K's and Vᵀ's padded key count: a multiple of <see cref="KeyTile"/> for the mma.sync kernel, of
    /// <see cref="HopperKeyStep"/> for the wgmma kernel, whose stages load whole steps (the pre-pass writes zero codes
    /// and scale 0 for the padded keys, whatever their number of 64-key tiles).
    /// </summary>
    public static int PaddedKeys(int nk, Sage8Kernel kernel) => PaddedKeys(nk, kernel, kernel == Sage8Kernel.Wgmma ? HopperKeyStep : KeyTile);

    /// <summary><see cref="PaddedKeys(int, Sage8Kernel)"/> for a given wgmma key step (the mma.sync kernel ignores it).</summary>
    public static int PaddedKeys(int nk, Sage8Kernel kernel, int hopperKeyStep)
    {
        int unit = kernel == Sage8Kernel.Wgmma ? hopperKeyStep : KeyTile;
        return (nk + unit - 1) / unit * unit;
    }

    /// <summary>
    /// sage8_scan_q's grid: (the scan's 512-token chunks + Q's 64-row blocks, batch × heads). The kernel numbers its
    /// blocks in 32 bits, so a grid of 2^31 blocks or more (about 2^37 query rows) is refused.
    /// </summary>
    public static (uint X, uint Y) ScanQueryGrid(int nk, int nqPad, int batchHeads)
    {
        long x = (nk + (long)CudaBackend.Sage8ScanChunk - 1) / CudaBackend.Sage8ScanChunk + nqPad / CudaBackend.Sage8QueryBlockRows;
        if (x * batchHeads >= int.MaxValue)
            throw new NotSupportedException($"8-bit attention: {x} x {batchHeads} pre-pass blocks exceed the kernel's 2^31 limit; split the batch");
        return ((uint)x, (uint)batchHeads);
    }

    /// <summary>sage8_quant_kv's grid: (groups of <paramref name="tilesPerBlock"/> 64-key tiles, batch × heads).</summary>
    public static (uint X, uint Y) KeyValueGrid(int nkPad, int batchHeads, int tilesPerBlock) =>
        ((uint)((nkPad / KeyTile + tilesPerBlock - 1) / tilesPerBlock), (uint)batchHeads);

    /// <summary>A tensor map's geometry as cuTensorMapEncodeTiled takes it: dims innermost first, byte strides of dims 1.., box.</summary>
    public sealed record TensorMapShape(ulong[] Dims, ulong[] ByteStrides, uint[] Box)
    {
        /// <summary>Bytes one box brings (uint8 elements): what a stage's barrier expects of it.</summary>
        public long BoxBytes => Box.Aggregate(1L, (p, b) => p * b);
    }

    /// <summary>
    /// K8 [BH][nkPad][64] bytes as (64, nkPad, BH): a box is one key tile (64 keys × 64 head-dim bytes), its rows of 64
    /// bytes the 64-byte swizzle's span; the kernel asks for the box at (0, 64 t, bh).
    /// </summary>
    public static TensorMapShape KeyMap(int batchHeads, int nkPad) =>
        new([64, (ulong)nkPad, (ulong)batchHeads], [64, 64UL * (ulong)nkPad], [64, KeyTile, 1]);

    /// <summary>
    /// Vᵀ8 [BH][64][nkPad] bytes as (nkPad, 64, BH): a box is one key tile's 64 key bytes of all 64 channels; the kernel
    /// asks for the box at (64 t, 0, bh).
    /// </summary>
    public static TensorMapShape ValueMap(int batchHeads, int nkPad) =>
        new([(ulong)nkPad, 64, (ulong)batchHeads], [(ulong)nkPad, 64UL * (ulong)nkPad], [KeyTile, 64, 1]);

    /// <summary>
    /// The kernel that runs: a forced one (op catalogue, timings) over the backend's option; Auto is the wgmma kernel on
    /// sm_90 (the one architecture its sm_90a code runs on) and the mma.sync kernel elsewhere. Asking for the wgmma
    /// kernel off sm_90 is an error saying what to use.
    /// </summary>
    public static Sage8Kernel Resolve(Sage8Kernel? forced, Sage8Kernel option, int major, int minor)
    {
        var kernel = forced ?? option;
        bool hopper = (major, minor) == (9, 0);
        if (kernel == Sage8Kernel.Auto) return hopper ? Sage8Kernel.Wgmma : Sage8Kernel.MmaSync;
        if (kernel == Sage8Kernel.Wgmma && !hopper)
            throw new CogVideoXException(
                $"--attention sage8: the wgmma 8-bit attention kernel is built for sm_90 only, this GPU is sm_{major}{minor}; " +
                $"unset {GpuOptions.Sage8KernelVariable} or set it to mma (the portable kernel) or auto", 2);
        return kernel;
    }
}
