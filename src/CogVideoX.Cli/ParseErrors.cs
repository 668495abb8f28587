using System.CommandLine;
using System.CommandLine.Parsing;

namespace CogVideoX.Cli;

/// <summary>
/// Parse errors as short messages: each unknown flag with the nearest option of the command (diffusers' and
/// <c>cli_demo.py</c>'s names map to ours: <c>--num_inference_steps</c> → <c>--steps</c>), and where the full list is.
/// </summary>
internal static class ParseErrors
{
    /// <summary>Names people bring from diffusers, THUDM's cli_demo.py and other tools, normalised (lower case, '-' for '_').</summary>
    private static readonly Dictionary<string, string> s_synonyms = new(StringComparer.Ordinal)
    {
        ["num-inference-steps"] = "--steps",
        ["inference-steps"] = "--steps",
        ["guidance-scale"] = "--guidance",
        ["cfg"] = "--guidance",
        ["cfg-scale"] = "--guidance",
        ["num-frames"] = "--frames",
        ["frame-count"] = "--frames",
        ["model-path"] = "--model",
        ["model-id"] = "--model",
        ["output-path"] = "--output",
        ["out"] = "--output",
        ["dtype"] = "--dtype",
        ["torch-dtype"] = "--dtype",
        ["generator"] = "--seed",
        ["manual-seed"] = "--seed",
        ["use-dynamic-cfg"] = "--dynamic-cfg",
        ["negative"] = "--negative-prompt",
        ["prompt-name"] = "--prompt-file",
        ["fps"] = "--fps",
        ["enable-tiling"] = "--vae-tiling",
        ["vae-tile"] = "--vae-tiling",
        ["enable-model-cpu-offload"] = "--memory",
        ["enable-sequential-cpu-offload"] = "--memory",
        ["cuda"] = "--device",
        ["gpu"] = "--device",
    };

    /// <summary>The message for a parse that failed, or null when there is nothing better to say than the parser's own.</summary>
    public static string? Describe(ParseResult parse)
    {
        var command = parse.CommandResult.Command;
        var path = CommandPath(parse.CommandResult);
        var lines = new List<string>();
        bool valueOfUnknownOption = false;
        foreach (var token in parse.UnmatchedTokens)
        {
            if (token.StartsWith('-'))
            {
                var suggestion = Suggest(token, command);
                lines.Add($"error: `{path}` has no option {token}{(suggestion is null ? "" : $"; did you mean {suggestion}?")}");
                // `--num_inference_steps 10`: the 10 is that option's value, not a stray argument of its own.
                valueOfUnknownOption = !token.Contains('=');
                continue;
            }
            if (valueOfUnknownOption)
            {
                valueOfUnknownOption = false;
                continue;
            }
            else if (command.Subcommands.Count > 0)
            {
                var names = command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name).ToList();
                var nearest = Nearest(token.ToLowerInvariant(), names);
                lines.Add($"error: `{path}` has no command '{token}'{(nearest is null ? "" : $"; did you mean {nearest}?")} (commands: {string.Join(", ", names)})");
            }
            else
            {
                lines.Add($"error: `{path}` takes no argument '{token}' here");
            }
        }
        foreach (var error in parse.Errors)
        {
            if (parse.UnmatchedTokens.Any(t => error.Message.Contains($"'{t}'", StringComparison.Ordinal))) continue;
            var line = $"error: {Rephrase(error) ?? error.Message}";
            if (!lines.Contains(line)) lines.Add(line);
        }
        if (lines.Count == 0) return null;
        lines.Add($"`{path} --help` lists every option.");
        return string.Join(Environment.NewLine, lines);
    }

    /// <summary>
    /// The parser's own words for an option given twice ("expects a single argument but 2 were provided") or a value
    /// of the wrong type ("... as expected type 'System.Int32'") in the user's terms; null for any other error.
    /// </summary>
    private static string? Rephrase(ParseError error)
    {
        var option = error.SymbolResult switch
        {
            OptionResult o => o,
            ArgumentResult { Parent: OptionResult o } => o,
            _ => null,
        };
        if (option is null || option.Option.Arity.MaximumNumberOfValues != 1) return null;
        var name = option.Option.Name;
        var values = option.Tokens.Select(t => t.Value).ToList();
        if (values.Count > 1)
            return $"{name} is given {values.Count} times ({string.Join(", ", values.Select(v => $"'{v}'"))}); give it once";
        var type = Nullable.GetUnderlyingType(option.Option.ValueType) ?? option.Option.ValueType;
        var kind = type == typeof(int) || type == typeof(long) ? "a whole number"
            : type == typeof(double) || type == typeof(float) ? "a number"
            : null;
        if (kind is null || values.Count != 1) return null;
        return $"{name} takes {kind}, not '{values[0]}' (e.g. {name} {Example(option.Option, type)})";
    }

    private static string Example(Option option, Type type)
    {
        if (option.HasDefaultValue && option.GetDefaultValue() is { } value)
            return Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "1";
        return type == typeof(double) || type == typeof(float) ? "0.5" : "2";
    }

    /// <summary>The nearest option of <paramref name="command"/> to a mistyped flag, or null when none is close.</summary>
    public static string? Suggest(string token, Command command)
    {
        var bare = token.TrimStart('-');
        int eq = bare.IndexOf('=');
        if (eq >= 0) bare = bare[..eq];
        bare = bare.Replace('_', '-').ToLowerInvariant();
        var names = command.Options.Where(o => !o.Hidden).SelectMany(o => o.Aliases.Prepend(o.Name))
            .Where(n => n.StartsWith("--", StringComparison.Ordinal)).Distinct().ToList();
        if (s_synonyms.TryGetValue(bare, out var synonym) && names.Contains(synonym)) return synonym;
        if (names.Contains("--" + bare)) return "--" + bare;
        return Nearest("--" + bare, names);
    }

    private static string? Nearest(string word, IReadOnlyList<string> candidates)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (var c in candidates)
        {
            int d = Distance(word, c);
            if (d < bestDistance) (best, bestDistance) = (c, d);
        }
        // Close enough to be a typo: at most a third of the word changed.
        return best is not null && bestDistance <= Math.Max(2, word.Length / 3) ? best : null;
    }

    /// <summary>Levenshtein distance.</summary>
    private static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }

    private static string CommandPath(System.CommandLine.Parsing.CommandResult result)
    {
        var names = new List<string>();
        for (System.CommandLine.Parsing.SymbolResult? r = result; r is not null; r = r.Parent)
            if (r is System.CommandLine.Parsing.CommandResult c) names.Add(c.Command is RootCommand ? "cogvideox" : c.Command.Name);
        names.Reverse();
        return string.Join(' ', names);
    }
}
