using CogVideoX.Engine;

namespace CogVideoX.Tests;

/// <summary>
/// A backend with the core kernels only, as a new backend starts: the CPU's core kernels run on this backend's own
/// host memory, and every capability runs as its decomposition in <see cref="Decompositions"/>.
/// </summary>
public sealed class CoreOnlyBackend : HostKernelBackend
{
    public override string Name => "core-only";
}
