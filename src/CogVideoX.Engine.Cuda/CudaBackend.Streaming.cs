namespace CogVideoX.Engine.Cuda;

/// <summary>
/// Weight streaming and device-memory figures: pinned host tensors, a second (copy) stream with events ordering it
/// against the compute stream, and cuMemGetInfo. The caching allocator stays single-stream: device buffers written
/// by the copy stream are only ever read by the compute stream after an event wait, and are freed only after the copy
/// stream has been synchronised (see the streaming block source in the models).
/// </summary>
public sealed partial class CudaBackend : IWeightStreaming, IDeviceMemoryInfo
{
    // ---- IDeviceMemoryInfo ----

    public long FreeBytes => DeviceMemory().Free;

    public long TotalBytes => DeviceMemory().Total;

    public long CachedBytes => _allocator.CachedBytes;

    public void TrimCache() => ReleaseCache();

    // ---- IWeightStreaming ----

    public Tensor AllocatePinned(DType dtype, long elementCount) => PinnedHostStorage.Allocate(this, dtype, elementCount);

    public ICopyStream CreateCopyStream()
    {
        MakeCurrent();
        CudaDriver.Check(CudaDriver.cuStreamCreate(out var stream, CudaDriver.StreamNonBlocking), "cuStreamCreate");
        return new CopyStream(this, stream);
    }

    /// <summary>Makes the context current unless the backend is disposed (then false: its memory went with the context).</summary>
    internal bool TryMakeCurrent()
    {
        if (_disposed) return false;
        MakeCurrent();
        return true;
    }

    private sealed unsafe class CopyStream(CudaBackend backend, CudaStreamHandle stream) : ICopyStream
    {
        private bool _disposed;

        public IStreamEvent CreateEvent()
        {
            Current();
            CudaDriver.Check(CudaDriver.cuEventCreate(out var e, CudaDriver.EventDisableTiming), "cuEventCreate");
            return new StreamEvent(e);
        }

        public void Upload(Tensor source, Tensor destination)
        {
            if (source.Storage is not CpuStorage host)
                throw new ArgumentException($"upload source {source} is not host memory");
            if (!source.IsContiguous || !destination.IsContiguous)
                throw new ArgumentException($"upload needs contiguous tensors, got {source} → {destination}");
            if (source.DType != destination.DType || source.ElementCount != destination.ElementCount)
                throw new ArgumentException($"upload of {source} into {destination}: dtype and size must match");
            Current();
            long bytes = source.ElementCount * source.DType.SizeOf();
            if (bytes == 0) return;
            var from = (byte*)host.Pointer + source.Layout.Offset * source.DType.SizeOf();
            CudaDriver.Check(CudaDriver.cuMemcpyHtoDAsync_v2(backend.Ptr(destination), from, (nuint)bytes, stream), "cuMemcpyHtoDAsync (weights)");
        }

        public void RecordCopies(IStreamEvent done)
        {
            Current();
            CudaDriver.Check(CudaDriver.cuEventRecord(Handle(done), stream), "cuEventRecord (copy stream)");
        }

        public void RecordCompute(IStreamEvent done)
        {
            Current();
            CudaDriver.Check(CudaDriver.cuEventRecord(Handle(done), backend._stream), "cuEventRecord (compute stream)");
        }

        public void ComputeWaits(IStreamEvent done)
        {
            Current();
            CudaDriver.Check(CudaDriver.cuStreamWaitEvent(backend._stream, Handle(done), 0), "cuStreamWaitEvent (compute waits for copies)");
        }

        public void CopiesWait(IStreamEvent done)
        {
            Current();
            CudaDriver.Check(CudaDriver.cuStreamWaitEvent(stream, Handle(done), 0), "cuStreamWaitEvent (copies wait for compute)");
        }

        public void Synchronize()
        {
            Current();
            CudaDriver.Check(CudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize (copy stream)");
        }

        private void Current()
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            backend.MakeCurrent();
        }

        private static CudaEventHandle Handle(IStreamEvent e) =>
            e is StreamEvent s ? s.Handle : throw new ArgumentException("the event does not come from this CUDA copy stream");

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            // Copies still queued would write into buffers their owner is about to free.
            if (backend.TryMakeCurrent()) CudaDriver.cuStreamSynchronize(stream);
            stream.Dispose();
        }
    }

    private sealed class StreamEvent(CudaEventHandle handle) : IStreamEvent
    {
        public CudaEventHandle Handle => handle;

        public void Dispose() => handle.Dispose();
    }
}
