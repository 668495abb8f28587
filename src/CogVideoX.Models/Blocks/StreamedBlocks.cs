using CogVideoX.Engine;
using CogVideoX.Models.Modules;

namespace CogVideoX.Models.Blocks;

/// <summary>
/// Blocks streamed from host images (<see cref="HostBlocks{TBlock}"/>) through a few device slots, each sized for one
/// block. Acquiring block i makes the compute queue wait for i's copy and queues the copy of block i + 1 into another
/// slot on the copy queue, so that copy runs while block i computes; a copy into a slot first waits for the compute
/// that last read the slot (an event recorded when that block was released). With two slots and more blocks every
/// block is copied once per pass, in order; with as many slots as blocks each is copied once and then stays (the
/// balanced mode: the whole model comes to the device during the first pass, the copies overlapping its compute).
/// </summary>
/// <remarks>
/// Slot choice is least-recently-used, so consecutive blocks always alternate between two slots, across the end of
/// a pass too (block 0 of the next pass never waits for the last block of this one). A block already in a slot is not
/// copied again.
/// </remarks>
public sealed class StreamedBlocks<TBlock> : IBlockSource<TBlock> where TBlock : Module
{
    private readonly HostBlocks<TBlock> _host;
    private readonly IBackend _device;
    private readonly ICopyStream _stream;
    private readonly Slot[] _slots;
    private readonly int[] _slotOfBlock;
    private long _clock;
    private bool _disposed;

    /// <param name="host">The images; they must outlive this source.</param>
    /// <param name="device">The backend the blocks compute on.</param>
    /// <param name="stream">The copy queue; this source owns it.</param>
    /// <param name="slots">Device slots (2 for streaming; the block count or more for upload-once).</param>
    public StreamedBlocks(HostBlocks<TBlock> host, IBackend device, ICopyStream stream, int slots)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(slots, 1);
        _host = host;
        _device = device;
        _stream = stream;
        _slotOfBlock = Enumerable.Repeat(-1, host.Count).ToArray();
        _slots = new Slot[Math.Min(slots, host.Count)];
        try
        {
            for (int s = 0; s < _slots.Length; s++) _slots[s] = CreateSlot(s);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int Count => _host.Count;

    public int SlotCount => _slots.Length;

    /// <summary>Device bytes the slots hold.</summary>
    public long DeviceBytes => _host.Layout.Bytes * _slots.Length;

    /// <summary>Block copies queued so far.</summary>
    public int Uploads { get; private set; }

    private Slot CreateSlot(int index)
    {
        var arenas = _host.Layout.AllocateArenas((dtype, n) => Tensor.Empty(_device, dtype, checked((int)n)));
        Tensor[]? views = null;
        try
        {
            views = _host.Layout.Views(arenas);
            // The slot's block is built once; its parameters are views of the slot, whose contents the uploads swap.
            var block = _host.CreateBlock();
            try
            {
                block.Bind(views);
            }
            catch
            {
                block.Dispose();
                throw;
            }
            var slot = new Slot(arenas, block, _stream.CreateEvent(), _stream.CreateEvent());
            // The allocator may hand out memory whose last user is compute still queued (it orders reuse on the
            // compute queue only): the slot's first copy waits for the compute queued so far, like every later one.
            _stream.RecordCompute(slot.ComputeDone);
            return slot;
        }
        catch
        {
            if (views is not null) foreach (var v in views) v.Dispose();
            foreach (var a in arenas) a.Dispose();
            throw;
        }
    }

    public void BeginPass()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Fetch(0);
    }

    public TBlock Acquire(int index)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        var slot = _slots[Fetch(index)];
        slot.LastUse = ++_clock;
        // copy → compute: nothing queued from here on reads the slot before its copy has landed.
        _stream.ComputeWaits(slot.CopyDone);
        // The next block's copy overlaps this block's compute.
        if (index + 1 < Count) Fetch(index + 1);
        return slot.Block;
    }

    public void Release(int index)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int s = _slotOfBlock[index];
        if (s < 0) throw new InvalidOperationException($"{_host.Name}: block {index} released but not acquired");
        // compute → reuse: a later copy into this slot waits for the work queued so far (this block's compute).
        _stream.RecordCompute(_slots[s].ComputeDone);
    }

    /// <summary>The slot holding <paramref name="index"/>, queuing its copy into the least recently used slot when needed.</summary>
    private int Fetch(int index)
    {
        int s = _slotOfBlock[index];
        if (s >= 0) return s;
        s = 0;
        for (int k = 1; k < _slots.Length; k++)
            if (_slots[k].LastUse < _slots[s].LastUse) s = k;
        var slot = _slots[s];
        // The block acquired last has the newest use, so it is never the one overwritten.
        if (slot.Holds >= 0) _slotOfBlock[slot.Holds] = -1;
        _stream.CopiesWait(slot.ComputeDone);
        for (int a = 0; a < slot.Arenas.Length; a++) _stream.Upload(_host.Arena(index, a), slot.Arenas[a]);
        _stream.RecordCopies(slot.CopyDone);
        slot.Holds = index;
        // A slot fetched ahead counts as just used, so the next fetch picks another one.
        slot.LastUse = ++_clock;
        _slotOfBlock[index] = s;
        Uploads++;
        return s;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        // Queued copies write into the slots and queued compute reads them: both must be done before they are freed.
        try
        {
            _stream.Synchronize();
            _device.Synchronize();
        }
        finally
        {
            foreach (var slot in _slots) slot?.Dispose();
            _stream.Dispose();
        }
    }

    private sealed class Slot(Tensor[] arenas, TBlock block, IStreamEvent copyDone, IStreamEvent computeDone) : IDisposable
    {
        public Tensor[] Arenas { get; } = arenas;

        public TBlock Block { get; } = block;

        public IStreamEvent CopyDone { get; } = copyDone;

        public IStreamEvent ComputeDone { get; } = computeDone;

        /// <summary>The block whose weights the slot holds (or is being copied), −1 when empty.</summary>
        public int Holds { get; set; } = -1;

        public long LastUse { get; set; }

        public void Dispose()
        {
            Block.Dispose();
            foreach (var a in Arenas) a.Dispose();
            CopyDone.Dispose();
            ComputeDone.Dispose();
        }
    }
}
