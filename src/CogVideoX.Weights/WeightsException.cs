using CogVideoX.Engine;

namespace CogVideoX.Weights;

/// <summary>A weight or config file that cannot be used as it is; the message names the file and what is wrong.</summary>
public sealed class WeightsException : CogVideoXException
{
    public WeightsException(string message) : base(message) { }

    public WeightsException(string message, Exception inner) : base(message, inner) { }
}
