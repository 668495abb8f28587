using System.CommandLine;
using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Lab;
using CogVideoX.Weights;

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
        var defaults = For(settings.Model, environment);
        if (defaults is null || defaults == ModelDefaults.Version10) return settings;
        bool Given(Option<int> option) => parse.GetResult(option) is { Implicit: false };
        return settings with
        {
            Frames = Given(frames) ? settings.Frames : defaults.Frames,
            Height = Given(height) ? settings.Height : defaults.Height,
            Width = Given(width) ? settings.Width : defaults.Width,
            Fps = Given(fps) ? settings.Fps : defaults.Fps,
        };
    }

    /// <summary>The defaults of the model <paramref name="model"/> names, or null when that cannot be told yet.</summary>
    public static ModelDefaults? For(string model, Func<string, string?> environment)
    {
        if (string.IsNullOrWhiteSpace(model)) return null;
        try
        {
            return ModelDefaults.For(ModelLocator.Resolve(model, environment).Transformer);
        }
        catch (CogVideoXException)
        {
            // Not on disk yet (it will be downloaded) or unreadable (the run says why): judge by the name.
            string name = model.Trim();
            int at = name.IndexOf('@', StringComparison.Ordinal);
            if (at >= 0) name = name[..at];
            if (ModelLocator.Aliases.TryGetValue(name, out var repo)) name = repo;
            return name.Contains("CogVideoX1.5", StringComparison.OrdinalIgnoreCase) ? ModelDefaults.Version15 : null;
        }
    }
}
