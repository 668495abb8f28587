namespace CogVideoX.Engine;

/// <summary>
/// An error the user can act on: the message says what was wrong, what is allowed and what to do. The CLI prints
/// the message alone (no stack trace) and exits with <see cref="ExitCode"/>.
/// </summary>
public class CogVideoXException : Exception
{
    public CogVideoXException(string message, int exitCode = 1) : base(message) => ExitCode = exitCode;

    public CogVideoXException(string message, Exception inner, int exitCode = 1) : base(message, inner) => ExitCode = exitCode;

    public int ExitCode { get; }
}
