using CogVideoX.Engine;
using CogVideoX.Models.Blocks;
using CogVideoX.Models.Modules;

namespace CogVideoX.Tests;

/// <summary>One host-side call into the streaming machinery, in the order the host made it.</summary>
/// <param name="Kind">upload, record-copies, record-compute, compute-waits, copies-wait, sync, begin-pass, acquire, release.</param>
/// <param name="Event">The event's number (record/wait calls).</param>
/// <param name="Source">The upload's host storage.</param>
/// <param name="Target">The upload's device storage, or the storage of an acquired block's first weight.</param>
/// <param name="Block">The block index (acquire, release).</param>
public sealed record StreamOp(string Kind, int Event = -1, Storage? Source = null, Storage? Target = null, int Block = -1);

/// <summary>
/// <see cref="IWeightStreaming"/> for the CPU backend in tests: "pinned" memory is ordinary CPU memory, copies happen at
/// once (so results are those of any correct schedule), and every call is logged, so a test can check the schedule a
/// real device would run asynchronously (see <see cref="StreamingSchedule"/>).
/// </summary>
public sealed class RecordingWeightStreaming : IWeightStreaming
{
    private int _events;

    public List<StreamOp> Log { get; } = new();

    public int PinnedAllocations { get; private set; }

    public int CopyStreams { get; private set; }

    public int OpenCopyStreams { get; private set; }

    /// <summary>Page-locked allocations allowed before the system "refuses" more (as cuMemAllocHost may).</summary>
    public int PinnedLimit { get; init; } = int.MaxValue;

    public Tensor AllocatePinned(DType dtype, long elementCount)
    {
        if (PinnedAllocations >= PinnedLimit) throw new CogVideoXException("cuMemAllocHost failed with CUDA_ERROR_OUT_OF_MEMORY (2) (test)");
        PinnedAllocations++;
        return Tensor.Empty(CpuBackend.Instance, dtype, checked((int)elementCount));
    }

    public ICopyStream CreateCopyStream()
    {
        CopyStreams++;
        OpenCopyStreams++;
        return new Stream(this);
    }

    public int Count(string kind) => Log.Count(o => o.Kind == kind);

    private sealed class Event(int id) : IStreamEvent
    {
        public int Id { get; } = id;

        public bool Disposed { get; private set; }

        public void Dispose() => Disposed = true;
    }

    private sealed class Stream(RecordingWeightStreaming owner) : ICopyStream
    {
        private bool _disposed;

        public IStreamEvent CreateEvent() => new Event(++owner._events);

        public void Upload(Tensor source, Tensor destination)
        {
            Assert.False(_disposed, "upload on a disposed copy stream");
            Assert.True(source.Backend is CpuBackend && source.IsContiguous && destination.IsContiguous);
            Assert.Equal(source.DType, destination.DType);
            Assert.Equal(source.ElementCount, destination.ElementCount);
            source.CopyTo(destination);
            owner.Log.Add(new StreamOp("upload", Source: source.Storage, Target: destination.Storage));
        }

        public void RecordCopies(IStreamEvent done) => owner.Log.Add(new StreamOp("record-copies", Id(done)));

        public void RecordCompute(IStreamEvent done) => owner.Log.Add(new StreamOp("record-compute", Id(done)));

        public void ComputeWaits(IStreamEvent done) => owner.Log.Add(new StreamOp("compute-waits", Id(done)));

        public void CopiesWait(IStreamEvent done) => owner.Log.Add(new StreamOp("copies-wait", Id(done)));

        public void Synchronize() => owner.Log.Add(new StreamOp("sync"));

        private static int Id(IStreamEvent e)
        {
            var ev = Assert.IsType<Event>(e);
            Assert.False(ev.Disposed, "an event was used after it was disposed");
            return ev.Id;
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            owner.OpenCopyStreams--;
        }
    }
}

/// <summary>Logs a block source's acquire and release calls into the streaming log (with the slot each block came from).</summary>
public sealed class LoggingBlockSource<TBlock>(IBlockSource<TBlock> inner, List<StreamOp> log) : IBlockSource<TBlock>
    where TBlock : Module
{
    public int Count => inner.Count;

    public void BeginPass()
    {
        log.Add(new StreamOp("begin-pass"));
        inner.BeginPass();
    }

    public TBlock Acquire(int index)
    {
        var block = inner.Acquire(index);
        // Logged after the inner call returns: the block's compute is queued after everything the source did.
        log.Add(new StreamOp("acquire", Target: block.Parameters[0].Value.Storage, Block: index));
        return block;
    }

    public void Release(int index)
    {
        // Logged before: the compute of the block was queued before the release call.
        log.Add(new StreamOp("release", Block: index));
        inner.Release(index);
    }

    public void Dispose() => inner.Dispose();
}

/// <summary>
/// Checks a streaming log as a device would run it: the copy queue and the compute queue each run their work in the
/// order it was queued, with arbitrary delays, ordered against each other only by events. A schedule passes when,
/// whatever the delays, every block's compute reads the slot only after its own upload has landed, and no upload
/// overwrites a slot while a compute queued earlier may still read it.
/// </summary>
public static class StreamingSchedule
{
    /// <summary>The uploads in order, as (block index, slot storage); <paramref name="blockOf"/> maps a host storage to its block.</summary>
    public static List<(int Block, Storage Slot)> Uploads(IReadOnlyList<StreamOp> log, Func<Storage, int> blockOf) =>
        log.Where(o => o.Kind == "upload").Select(o => (blockOf(o.Source!), o.Target!)).ToList();

    public static void Check(IReadOnlyList<StreamOp> log, Func<Storage, int> blockOf)
    {
        // The latest record of each event, by host position.
        for (int p = 0; p < log.Count; p++)
        {
            var op = log[p];
            if (op.Kind == "acquire") CheckCopyBeforeCompute(log, p, blockOf);
            if (op.Kind == "upload") CheckComputeBeforeReuse(log, p);
        }
    }

    /// <summary>
    /// copy → compute: the last upload into the acquired block's slot is that block, and after its RecordCopies(e)
    /// the compute queue waited on e before the block's compute was queued.
    /// </summary>
    private static void CheckCopyBeforeCompute(IReadOnlyList<StreamOp> log, int acquire, Func<Storage, int> blockOf)
    {
        var op = log[acquire];
        int upload = LastIndex(log, acquire, o => o.Kind == "upload" && ReferenceEquals(o.Target, op.Target));
        if (upload < 0)
        {
            Assert.Fail($"block {op.Block} was computed from a slot nothing was uploaded into");
            return;
        }
        Assert.True(blockOf(log[upload].Source!) == op.Block,
            $"block {op.Block} computes from a slot whose last upload was block {blockOf(log[upload].Source!)}");
        // The copy event recorded after that upload (before any later upload on the copy queue).
        int record = FirstIndex(log, upload + 1, acquire, o => o.Kind == "record-copies");
        Assert.True(record >= 0, $"no event was recorded after block {op.Block}'s upload");
        int evt = log[record].Event;
        int wait = FirstIndex(log, record + 1, acquire, o => o.Kind == "compute-waits" && o.Event == evt);
        Assert.True(wait >= 0, $"block {op.Block}'s compute was queued without waiting for its upload");
    }

    /// <summary>
    /// compute → reuse: every compute on the upload's slot queued before the upload was released, and the copy queue
    /// waited, before the upload, on an event the compute queue recorded after the last such release.
    /// </summary>
    private static void CheckComputeBeforeReuse(IReadOnlyList<StreamOp> log, int upload)
    {
        var slot = log[upload].Target!;
        int lastAcquire = LastIndex(log, upload, o => o.Kind == "acquire" && ReferenceEquals(o.Target, slot));
        if (lastAcquire < 0) return; // the slot's first use
        int block = log[lastAcquire].Block;
        int release = FirstIndex(log, lastAcquire + 1, upload, o => o.Kind == "release" && o.Block == block);
        Assert.True(release >= 0, $"an upload overwrote the slot of block {block} before that block was released (its compute may still read it)");
        // Events recorded on the compute queue after that release, and waited on by the copy queue before the upload.
        var recorded = Enumerable.Range(release + 1, upload - release - 1).Where(i => log[i].Kind == "record-compute").Select(i => log[i].Event).ToHashSet();
        bool waited = Enumerable.Range(release + 1, upload - release - 1).Any(i => log[i].Kind == "copies-wait" && recorded.Contains(log[i].Event)
            && LastIndex(log, i, o => o.Kind == "record-compute" && o.Event == log[i].Event) > release);
        Assert.True(waited, $"an upload into block {block}'s slot did not wait for that block's compute to finish");
    }

    private static int LastIndex(IReadOnlyList<StreamOp> log, int before, Func<StreamOp, bool> match)
    {
        for (int i = before - 1; i >= 0; i--)
            if (match(log[i])) return i;
        return -1;
    }

    private static int FirstIndex(IReadOnlyList<StreamOp> log, int from, int before, Func<StreamOp, bool> match)
    {
        for (int i = from; i < before; i++)
            if (match(log[i])) return i;
        return -1;
    }
}
