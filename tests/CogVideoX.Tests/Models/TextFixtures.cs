using System.Text.Json;

namespace CogVideoX.Tests.Models;

/// <summary>The golden pipeline runs and tokenizer cases, as the text encoder tests read them.</summary>
public static class TextFixtures
{
    /// <summary>One golden pipeline call: its folder, tag and prompts (a null negative prompt is "").</summary>
    public sealed record Run(string Pipeline, string Tag, string Prompt, string NegativePrompt)
    {
        public string TensorsPath => Path.Combine(Pipeline, "runs", Tag + ".safetensors");

        public override string ToString() => Tag;
    }

    public sealed record TokenizerCase(int Index, string Text, int[] SpmIds, int[] Ids226, int[] Mask226, int[] Ids16, int[] IdsLongest)
    {
        public override string ToString() => $"{Index}: {Text[..Math.Min(Text.Length, 40)].ReplaceLineEndings(" ")}";
    }

    private static readonly Lazy<Run[]> s_runs = new(LoadRuns);
    private static readonly Lazy<TokenizerCase[]> s_cases = new(LoadCases);

    public static IReadOnlyList<Run> Runs => s_runs.Value;

    public static IReadOnlyList<TokenizerCase> TokenizerCases => s_cases.Value;

    public static string TokenizerFolder => Fixtures.GoldenFile("tokenizer_src");

    public static TheoryData<string> RunTags() => FixtureRuns.Theory(Runs.Select(r => r.Tag));

    public static Run RunByTag(string tag) => Runs.Single(r => r.Tag == tag);

    private static Run[] LoadRuns() =>
    [
        .. FixtureRuns.Golden().Select(g =>
        {
            var request = FixtureRuns.Request(g.Entry);
            return new Run(g.Folder, FixtureRuns.Tag(g.Entry), request.Prompt, request.NegativePrompt ?? "");
        }),
    ];

    private static TokenizerCase[] LoadCases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Fixtures.GoldenFile("tokenizer_cases.json")));
        int[] Ints(JsonElement c, string key) => c.GetProperty(key).EnumerateArray().Select(e => e.GetInt32()).ToArray();
        return doc.RootElement.GetProperty("cases").EnumerateArray()
            .Select((c, i) => new TokenizerCase(i, c.GetProperty("text").GetString()!, Ints(c, "spm_ids"), Ints(c, "ids_226"),
                Ints(c, "attention_mask_226"), Ints(c, "ids_16"), Ints(c, "ids_longest")))
            .ToArray();
    }
}
