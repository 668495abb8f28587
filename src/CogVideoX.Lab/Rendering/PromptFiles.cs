using System.Text;
using CogVideoX.Engine;

namespace CogVideoX.Lab;

/// <summary>A prompt read from <c>prompts/NAME.txt</c>.</summary>
public sealed record PromptFile(string Name, string Path, string Text);

/// <summary>
/// The prompt library: one <c>NAME.txt</c> per prompt in a <c>prompts/</c> folder, so adding a prompt needs no code.
/// The folder is looked for in the current directory, then next to the executable and in each folder above it (the
/// repository's <c>prompts/</c> when running from a build). A name is a plain file name — no folders, no "..", no
/// absolute paths — so a prompt file can never be read from outside <c>prompts/</c>.
/// </summary>
public static class PromptFiles
{
    public const string FolderName = "prompts";

    public const string Extension = ".txt";

    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Where <c>prompts/</c> is looked for, in order: the current directory, then the executable's folder and its parents.</summary>
    public static IReadOnlyList<string> DefaultSearchFolders()
    {
        var folders = new List<string> { System.IO.Path.Combine(Environment.CurrentDirectory, FolderName) };
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            folders.Add(System.IO.Path.Combine(dir.FullName, FolderName));
        return folders.Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>Reads the prompt <paramref name="name"/> (with or without .txt) from the first prompts folder that has it.</summary>
    public static PromptFile Load(string name, IReadOnlyList<string>? searchFolders = null)
    {
        searchFolders ??= DefaultSearchFolders();
        var stem = CheckName(name);
        var existing = searchFolders.Where(Directory.Exists).ToList();
        foreach (var folder in existing)
        {
            var path = System.IO.Path.Combine(folder, stem + Extension);
            if (!File.Exists(path)) continue;
            string text;
            try
            {
                // Strict: a file in another encoding would otherwise reach the model with its letters silently
                // replaced by U+FFFD.
                text = File.ReadAllText(path, s_strictUtf8).Trim();
            }
            catch (DecoderFallbackException e)
            {
                string where = e.BytesUnknown is { Length: > 0 } bad ? $"byte 0x{bad[0]:X2} at offset {e.Index}" : $"offset {e.Index}";
                throw new CogVideoXException(
                    $"{path}: not valid UTF-8 text ({where}); prompt files are read as UTF-8: save the file as UTF-8 " +
                    "(or convert it, e.g. iconv -f latin1 -t utf-8), or give the prompt with --prompt TEXT", 2);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CogVideoXException($"{path}: cannot be read ({e.Message})", 2);
            }
            if (text.Length == 0)
                throw new CogVideoXException(
                    $"{path} is empty; write the prompt in it (two to four descriptive English sentences, as CogVideoX was trained on) or use --prompt TEXT", 2);
            return new PromptFile(stem, path, text);
        }
        if (existing.Count == 0)
            throw new CogVideoXException(
                $"no {FolderName}/ folder found (looked in {string.Join(", ", searchFolders)}); create {FolderName}/{stem}{Extension} " +
                "in the current directory, or give the prompt itself with --prompt TEXT", 2);
        var available = Available(existing);
        throw new CogVideoXException(
            $"no prompt file named '{stem}' (looked for {stem}{Extension} in {string.Join(", ", existing)}); " +
            (available.Count == 0 ? "there are no prompt files there" : $"available: {string.Join(", ", available)}") +
            $". Add {FolderName}/{stem}{Extension} to create it, or give the prompt itself with --prompt TEXT", 2);
    }

    /// <summary>Names (without .txt) of the prompt files in the folders, sorted, each once.</summary>
    public static IReadOnlyList<string> Available(IEnumerable<string> folders) =>
        folders.Where(Directory.Exists)
            .SelectMany(f => Directory.GetFiles(f, "*" + Extension))
            .Select(f => System.IO.Path.GetFileNameWithoutExtension(f))
            .Where(n => n.Length > 0 && !n.StartsWith('.'))
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>The name without .txt, after refusing anything that is not a plain file name.</summary>
    public static string CheckName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var stem = name.EndsWith(Extension, StringComparison.OrdinalIgnoreCase) ? name[..^Extension.Length] : name;
        string? problem =
            stem.Length == 0 ? "is empty"
            : System.IO.Path.IsPathRooted(name) ? "is an absolute path"
            : stem.Contains('/') || stem.Contains('\\') ? "contains a folder separator"
            : stem.Contains("..", StringComparison.Ordinal) ? "contains '..'"
            : stem.StartsWith('.') ? "starts with '.'"
            : stem.Any(c => !(char.IsLetterOrDigit(c) || c is '_' or '-' or '.')) ? "contains characters other than letters, digits, '_', '-' and '.'"
            : null;
        if (problem is not null)
            throw new CogVideoXException(
                $"prompt file name '{name}' {problem}; --prompt-file takes the name of a file in {FolderName}/ without folders " +
                $"(e.g. panda_guitar for {FolderName}/panda_guitar{Extension})", 2);
        return stem;
    }
}
