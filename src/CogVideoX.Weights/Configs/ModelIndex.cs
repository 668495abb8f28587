using System.Text.Json;

namespace CogVideoX.Weights;

/// <summary>One entry of model_index.json: a component, the library that defines it and its class.</summary>
/// <remarks>diffusers writes <c>[null, null]</c> for an optional component the pipeline was saved without.</remarks>
public sealed record PipelineComponent(string Name, string? Library, string? ClassName)
{
    public bool IsPresent => Library is not null && ClassName is not null;
}

/// <summary>
/// A diffusers pipeline folder's <c>model_index.json</c>: the pipeline class and, for each component folder, the
/// library and class it was saved from (<c>"transformer": ["diffusers", "CogVideoXTransformer3DModel"]</c>).
/// Keys starting with '_' are metadata; other non-list values are pipeline options, which are ignored.
/// </summary>
public sealed record ModelIndex(string PipelineClass, string? DiffusersVersion, IReadOnlyList<PipelineComponent> Components)
{
    public const string FileName = "model_index.json";

    /// <summary>The component of that name, or null when the index does not list it.</summary>
    public PipelineComponent? Component(string name) => Components.FirstOrDefault(c => c.Name == name);

    public static ModelIndex Load(string path) => Parse(ConfigFile.ReadBytes(path), path);

    /// <summary>
    /// Refuses a folder whose index lists a component under a class not in <paramref name="classes"/>: the component
    /// folder would be read as a model it is not (its config keys ignored, its weights mismatched) and fail later, or
    /// not at all. A component the index does not list, or lists as [null, null], is left to the folder checks.
    /// </summary>
    public void RequireClass(string path, string component, params string[] classes)
    {
        if (Component(component) is not { IsPresent: true } c || classes.Contains(c.ClassName, StringComparer.Ordinal)) return;
        throw new WeightsException(
            $"{path}: model_index.json lists {component} as [\"{c.Library}\", \"{c.ClassName}\"]; this tool runs {component} only as " +
            $"{string.Join(" or ", classes)} (the classes of the published CogVideoX models), so the folder holds another kind of model. " +
            "Use a CogVideoX 1.0 text-to-video folder such as THUDM/CogVideoX-2b or THUDM/CogVideoX-5b.");
    }

    public static ModelIndex Parse(ReadOnlySpan<byte> json, string path)
    {
        var doc = ConfigFile.ParseDocument(json, path);
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new WeightsException($"{path}: model_index.json must be a JSON object, found {SafetensorsHeader.Describe(root)}");
            string? pipelineClass = null;
            string? version = null;
            var components = new List<PipelineComponent>();
            foreach (var p in root.EnumerateObject())
            {
                switch (p.Name)
                {
                    case "_class_name":
                        pipelineClass = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()
                            : throw new WeightsException($"{path}: key '_class_name' must be a string (the pipeline class), found {SafetensorsHeader.Describe(p.Value)}");
                        break;
                    case "_diffusers_version":
                        version = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()
                            : throw new WeightsException($"{path}: key '_diffusers_version' must be a string, found {SafetensorsHeader.Describe(p.Value)}");
                        break;
                    case var name when name.StartsWith('_'):
                        break;
                    default:
                        if (p.Value.ValueKind == JsonValueKind.Array)
                            components.Add(ParseComponent(path, p.Name, p.Value));
                        break;
                }
            }
            if (string.IsNullOrEmpty(pipelineClass))
                throw new WeightsException($"{path}: no '_class_name' (the pipeline class, e.g. \"CogVideoXPipeline\"); this is not a diffusers model_index.json");
            return new ModelIndex(pipelineClass, version, components);
        }
    }

    private static PipelineComponent ParseComponent(string path, string name, JsonElement value)
    {
        if (value.GetArrayLength() == 2
            && value[0].ValueKind is JsonValueKind.String or JsonValueKind.Null
            && value[1].ValueKind is JsonValueKind.String or JsonValueKind.Null
            && (value[0].ValueKind == JsonValueKind.Null) == (value[1].ValueKind == JsonValueKind.Null))
            return new PipelineComponent(name, value[0].GetString(), value[1].GetString());
        var raw = value.GetRawText();
        raw = string.Join(' ', raw.Split((char[])['\n', '\r', '\t', ' '], StringSplitOptions.RemoveEmptyEntries));
        throw new WeightsException($"{path}: key '{name}' must be [library, class name] (e.g. [\"diffusers\", \"AutoencoderKLCogVideoX\"]) or [null, null], found {(raw.Length <= 60 ? raw : raw[..57] + "...")}");
    }
}
