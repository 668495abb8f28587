using System.CommandLine;
using CogVideoX.Diffusion;
using CogVideoX.Lab;

namespace CogVideoX.Cli;

/// <summary>
/// The model's own defaults for the flags a user left out (<c>--frames</c>, <c>--height</c>, <c>--width</c>,
/// <c>--fps</c>): CogVideoX 1.5 makes 81 frames of 768×1360 at 16 fps, the 1.0 models 49 of 480×720 at 8. The model is
/// recognised from its folder (local or in the cache) when there is one, else from its name (the 1.5 aliases and repo
/// ids), before anything is downloaded.
/// </summary>
internal static class ModelDefaultsFlags
{
    /// <summary>
    /// <paramref name="settings"/> with the flags not given on the command line taken from the model's defaults.
    /// </summary>
    public static GenerationSettings Apply(ParseResult parse, GenerationSettings settings, Func<string, string?> environment,
        Option<int> frames, Option<int> height, Option<int> width, Option<int> fps)
    {
        return ModelDefaultsLookup.Apply(settings, For(settings.Model, environment), key => key switch
        {
            "frames" => Given(parse, frames),
            "height" => Given(parse, height),
            "width" => Given(parse, width),
            _ => Given(parse, fps),
        });
    }

    /// <summary>
    /// The flag's value when given, else <paramref name="fallback"/> (the 1.0 models' default), which
    /// <see cref="Apply"/> then replaces with the model's own. These flags declare no default of their own, so --help
    /// does not print a "[default: 49]" that a 1.5 model would contradict; their descriptions say what the default is.
    /// </summary>
    public static int ValueOr(ParseResult parse, Option<int> option, int fallback) =>
        Given(parse, option) ? parse.GetValue(option) : fallback;

    private static bool Given(ParseResult parse, Option<int> option) => parse.GetResult(option) is { Implicit: false };

    /// <summary>The defaults of the model <paramref name="model"/> names, or null when that cannot be told yet.</summary>
    public static ModelDefaults? For(string model, Func<string, string?> environment) => ModelDefaultsLookup.For(model, environment);
}
