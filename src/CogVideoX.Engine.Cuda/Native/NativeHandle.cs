using System.Runtime.InteropServices;

namespace CogVideoX.Engine.Cuda;

/// <summary>
/// An owned handle of a CUDA library, invalid when null (the value every library here leaves for "none"). Each kind
/// states only how it is released; LibraryImport's marshaller makes them through the implicit public constructor.
/// </summary>
internal abstract class NativeHandle : SafeHandle
{
    protected NativeHandle() : base(IntPtr.Zero, ownsHandle: true) { }

    public override bool IsInvalid => handle == IntPtr.Zero;
}
