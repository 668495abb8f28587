using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Lab;

/// <summary>
/// The model's own defaults for the settings a user left out (frames, height, width, fps): CogVideoX 1.5 makes 81
/// frames of 768×1360 at 16 fps, the 1.0 models 49 of 480×720 at 8 (<see cref="ModelDefaults"/> holds the values).
/// The model is recognised from its folder (local or in the cache) when there is one, else from its name (the 1.5
/// aliases and repo ids), before anything is downloaded. <c>generate</c> (for flags not given) and the workbench
/// (for settings a spec does not name) both fill them in here.
/// </summary>
public static class ModelDefaultsLookup
{
    /// <summary>The settings that follow the model when left out, by their spec names.</summary>
    public static IReadOnlyList<string> Keys { get; } = ["frames", "height", "width", "fps"];

    /// <summary>The defaults of the model <paramref name="model"/> names, or null when that cannot be told yet.</summary>
    public static ModelDefaults? For(string model, Func<string, string?>? environment = null)
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

    /// <summary>
    /// <paramref name="settings"/> with each of <see cref="Keys"/> that <paramref name="given"/> says was not stated
    /// taken from <paramref name="defaults"/> (unchanged for the 1.0 models, whose defaults the settings already hold).
    /// </summary>
    public static GenerationSettings Apply(GenerationSettings settings, ModelDefaults? defaults, Func<string, bool> given)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(given);
        if (defaults is null || defaults == ModelDefaults.Version10) return settings;
        return settings with
        {
            Frames = given("frames") ? settings.Frames : defaults.Frames,
            Height = given("height") ? settings.Height : defaults.Height,
            Width = given("width") ? settings.Width : defaults.Width,
            Fps = given("fps") ? settings.Fps : defaults.Fps,
        };
    }
}
