namespace CogVideoX.Engine;

/// <summary>
/// Implemented by backends that can say more about their device than <see cref="IBackend.Name"/> — a GPU's driver
/// and library versions — for the sidecars that record where a video was made. Keys are short lowercase names
/// ("driver", "cuda", "cudnn", ...); values are free text.
/// </summary>
public interface IDeviceDescription
{
    IReadOnlyDictionary<string, string> DescribeDevice();
}
