using System.Text.Json;
using CogVideoX.Diffusion;

namespace CogVideoX.Tests;

/// <summary>Reads the runs.json (and cases.json) entries the reference fixtures describe their runs with.</summary>
public static class FixtureRuns
{
    /// <summary>The entries of a JSON array file (runs.json), detached from the parsed document.</summary>
    public static JsonElement[] Entries(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return [.. doc.RootElement.EnumerateArray().Select(e => e.Clone())];
    }

    /// <summary>Every golden pipeline run (tests/fixtures/golden): its pipeline folder, 2b- or 5b-style, and its runs.json entry.</summary>
    public static IEnumerable<(string Folder, JsonElement Entry)> Golden() =>
        new[] { Fixtures.Path2b, Fixtures.Path5b }.SelectMany(folder => Entries(Path.Combine(folder, "runs", "runs.json")).Select(e => (folder, e)));

    /// <summary>[MemberData] rows (pipeline folder name, run tag) of every golden run.</summary>
    public static TheoryData<string, string> GoldenStylesAndTags()
    {
        var data = new TheoryData<string, string>();
        foreach (var (folder, entry) in Golden()) data.Add(Path.GetFileName(folder), Tag(entry));
        return data;
    }

    public static string Tag(JsonElement r) => r.GetProperty("tag").GetString()!;

    /// <summary>
    /// The generation settings of one run as diffusers was called: prompt, seed, steps, guidance, frames, size; the
    /// negative prompt when the entry has one (null: none) and dynamic_cfg when given (diffusers' default is False).
    /// Settings of one fixture only (an input image, a cache) are added by the caller with <c>with</c>.
    /// </summary>
    public static GenerationRequest Request(JsonElement r) => new()
    {
        Prompt = r.GetProperty("prompt").GetString()!,
        NegativePrompt = r.TryGetProperty("negative_prompt", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null,
        Seed = r.GetProperty("seed").GetInt64(),
        Steps = r.GetProperty("steps").GetInt32(),
        Guidance = r.GetProperty("guidance").GetDouble(),
        Frames = r.GetProperty("frames").GetInt32(),
        Height = r.GetProperty("height").GetInt32(),
        Width = r.GetProperty("width").GetInt32(),
        DynamicCfg = r.TryGetProperty("dynamic_cfg", out var d) && d.GetBoolean(),
    };

    /// <summary>[MemberData] rows of single strings (run tags, case names).</summary>
    public static TheoryData<string> Theory(IEnumerable<string> values)
    {
        var data = new TheoryData<string>();
        foreach (var value in values) data.Add(value);
        return data;
    }
}
