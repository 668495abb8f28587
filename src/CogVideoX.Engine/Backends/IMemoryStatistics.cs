namespace CogVideoX.Engine;

/// <summary>
/// Implemented by backends that track device memory (CUDA). Peak device memory is a figure every run and benchmark
/// reports, so it is read through this interface rather than from a particular backend type.
/// </summary>
public interface IMemoryStatistics
{
    /// <summary>Bytes currently held by tensors.</summary>
    long AllocatedBytes { get; }

    /// <summary>The most bytes held by tensors at once since the last <see cref="ResetPeak"/>.</summary>
    long PeakBytes { get; }

    /// <summary>Bytes obtained from the device: held by tensors plus cached for reuse.</summary>
    long ReservedBytes { get; }

    long PeakReservedBytes { get; }

    void ResetPeak();
}
