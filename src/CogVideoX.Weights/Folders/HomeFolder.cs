namespace CogVideoX.Weights;

/// <summary>
/// The user's home folder as huggingface_hub finds it for the paths it reads from the environment
/// (<c>os.path.expanduser</c>: <c>$HOME</c> first), for the hub cache and the token file alike.
/// </summary>
internal static class HomeFolder
{
    /// <summary>"~" and a leading "~/" replaced by the home folder; any other path as it is.</summary>
    public static string Expand(string path, Func<string, string?> environment) =>
        path == "~" ? Of(environment)
        : path.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(Of(environment), path[2..])
        : path;

    public static string Of(Func<string, string?> environment) =>
        environment("HOME") is { Length: > 0 } home ? home : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
}
