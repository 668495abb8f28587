using System.Runtime.InteropServices;

namespace CogVideoX.Engine.Cuda;

/// <summary>cuDNN 9. Only the version query is bound so far (the doctor reports it); fused attention comes next.</summary>
internal static partial class Cudnn
{
    private const string Lib = CudaLibraries.CudnnName;

    static Cudnn() => CudaLibraries.EnsureResolver();

    [LibraryImport(Lib)] public static partial nuint cudnnGetVersion();
}
