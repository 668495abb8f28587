namespace CogVideoX.Engine;

/// <summary>
/// Optional backend capability for weights that live in host memory and come to the device while the model runs:
/// page-locked ("pinned") host memory the device reads by DMA, and a second queue of host→device copies that runs
/// beside the compute queue, ordered against it with events. A model streams its blocks through it — the next
/// block's copy overlaps the current block's compute. The CPU backend has no such capability (its memory is the host's).
/// </summary>
public interface IWeightStreaming
{
    /// <summary>
    /// A contiguous 1-D CPU tensor of <paramref name="elementCount"/> elements in page-locked memory (uninitialised),
    /// readable by <see cref="ICopyStream.Upload"/> without a staging copy. It is an ordinary CPU tensor otherwise: the
    /// memory goes back when its last view is disposed.
    /// </summary>
    Tensor AllocatePinned(DType dtype, long elementCount);

    /// <summary>A new copy queue beside this backend's compute queue.</summary>
    ICopyStream CreateCopyStream();
}

/// <summary>
/// A queue of host→device copies running beside the backend's compute queue. Work queued on either side runs in
/// the order it was queued on that side; the two sides are ordered only through events: "copy → compute" by
/// <see cref="RecordCopies"/> then <see cref="ComputeWaits"/>, "compute → reuse of a buffer" by
/// <see cref="RecordCompute"/> then <see cref="CopiesWait"/>. All calls return at once (nothing waits on the host
/// except <see cref="Synchronize"/>).
/// </summary>
public interface ICopyStream : IDisposable
{
    IStreamEvent CreateEvent();

    /// <summary>
    /// Queues the copy of <paramref name="source"/> (a contiguous CPU tensor from <see cref="IWeightStreaming.AllocatePinned"/>,
    /// or a view of one) into <paramref name="destination"/> (a contiguous device tensor of the same dtype and size).
    /// The source must stay alive and unchanged until the copy is done (see <see cref="Synchronize"/>).
    /// </summary>
    void Upload(Tensor source, Tensor destination);

    /// <summary>The event fires when the copies queued so far have finished.</summary>
    void RecordCopies(IStreamEvent done);

    /// <summary>The event fires when the compute work queued so far has finished.</summary>
    void RecordCompute(IStreamEvent done);

    /// <summary>Compute work queued from now on starts only after the event's last recording has fired.</summary>
    void ComputeWaits(IStreamEvent done);

    /// <summary>Copies queued from now on start only after the event's last recording has fired.</summary>
    void CopiesWait(IStreamEvent done);

    /// <summary>Waits on the host until every queued copy has finished.</summary>
    void Synchronize();
}

/// <summary>A point in one queue that the other can wait for (a CUDA event).</summary>
public interface IStreamEvent : IDisposable
{
}
