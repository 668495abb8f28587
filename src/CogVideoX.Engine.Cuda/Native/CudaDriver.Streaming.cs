using System.Runtime.InteropServices;

namespace CogVideoX.Engine.Cuda;

/// <summary>The driver entry points weight streaming adds: one stream waiting on another's event.</summary>
internal static partial class CudaDriver
{
    [LibraryImport(Lib)] public static partial int cuStreamWaitEvent(CudaStreamHandle stream, CudaEventHandle evt, uint flags);
}
