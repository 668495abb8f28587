using CogVideoX.Engine;
using CogVideoX.Models.Text;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Models;

public class T5TokenizerTests
{
    private static readonly Lazy<T5Tokenizer> s_tokenizer = new(() => T5Tokenizer.Load(TextFixtures.TokenizerFolder));

    private static T5Tokenizer Tokenizer => s_tokenizer.Value;

    public static TheoryData<int> CaseIndices()
    {
        var data = new TheoryData<int>();
        foreach (var c in TextFixtures.TokenizerCases) data.Add(c.Index);
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void SentencePieceSegmentationMatchesSentencepiece(int index)
    {
        var c = TextFixtures.TokenizerCases[index];
        Assert.Equal(c.SpmIds, Tokenizer.EncodeWithoutSpecialTokens(c.Text));
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void EveryFixtureCaseMatchesTransformers(int index)
    {
        var c = TextFixtures.TokenizerCases[index];
        Assert.Equal(c.IdsLongest, Tokenizer.EncodeToIds(c.Text));

        var p226 = Tokenizer.Tokenize(c.Text, 226);
        Assert.Equal(c.Ids226.Select(i => (long)i), p226.Ids);
        Assert.Equal(c.Mask226.Select(i => (long)i), p226.Mask);
        Assert.Equal(c.IdsLongest.Length, p226.TokenCount);
        Assert.Equal(c.IdsLongest.Length > 226, p226.IsTruncated);

        var p16 = Tokenizer.Tokenize(c.Text, 16);
        Assert.Equal(c.Ids16.Select(i => (long)i), p16.Ids);
        Assert.Equal(c.IdsLongest.Length > 16, p16.IsTruncated);
    }

    [Theory]
    [MemberData(nameof(TextFixtures.RunTags), MemberType = typeof(TextFixtures))]
    public void GoldenRunPromptIdsMatch(string tag)
    {
        var run = TextFixtures.RunByTag(tag);
        using var f = SafetensorsFile.Open(run.TensorsPath);
        using var promptIds = f.Load("prompt_ids");
        using var negativeIds = f.Load("negative_ids");
        // Both golden pipelines ship the same tokenizer/ files; read each run's own folder as the pipeline does.
        var tokenizer = T5Tokenizer.Load(Path.Combine(run.Pipeline, "tokenizer"));
        Assert.Equal(promptIds.ToLongArray(), tokenizer.Tokenize(run.Prompt, 226).Ids);
        Assert.Equal(negativeIds.ToLongArray(), tokenizer.Tokenize(run.NegativePrompt, 226).Ids);
    }

    [Fact]
    public void VocabularyLayoutIsT5s()
    {
        var t = Tokenizer;
        Assert.Equal(2000, t.PieceCount);
        Assert.Equal(100, t.ExtraIds);
        Assert.Equal(2100, t.VocabSize);
        Assert.Equal(226, t.ModelMaxLength);
        Assert.Equal(0, t.PadId);
        Assert.Equal(1, t.EosId);
        Assert.Equal(2, t.UnkId);
        Assert.Equal(t.VocabSize - 1, t.ExtraIdToken(0));
        Assert.Equal(t.VocabSize - 100, t.ExtraIdToken(99));
        Assert.Equal(t.ExtraIdToken(5), t.EncodeToIds("<extra_id_5>", addEndOfSequence: false).Single());
        Assert.Equal(103, t.SpecialTokens.Count);
    }

    [Fact]
    public void UnknownCharacterRunsBecomeOneUnk()
    {
        // Five CJK characters outside the vocabulary: sentencepiece gives ▁ then a single <unk>.
        Assert.Equal(new[] { 3, 2 }, Tokenizer.EncodeToIds("熊猫弹吉他", addEndOfSequence: false));
    }

    [Fact]
    public void LongPromptIsCutAndTheCutWordsAreNamed()
    {
        var text = string.Join(" ", Enumerable.Repeat("word", 400));
        var p = Tokenizer.Tokenize(text, 226);
        // Each "word" is ▁ + word: 225 kept tokens end on the ▁ of the 113th word, so that word is cut.
        Assert.Equal(801, p.TokenCount);
        Assert.Equal(226, p.Ids.Length);
        Assert.Equal(Tokenizer.EosId, p.Ids[^1]);
        Assert.Equal(string.Join(" ", Enumerable.Repeat("word", 400 - 112)), p.TruncatedText);
        Assert.Contains("801 tokens", p.TruncationMessage);
        Assert.Contains("reads 226", p.TruncationMessage);
    }

    [Fact]
    public void CutNamesTheWordsAsWritten()
    {
        var text = "A panda plays guitar. ＦＵＬＬＷＩＤＴＨ ending";
        var ids = Tokenizer.EncodeToIds("A panda plays guitar.", addEndOfSequence: false);
        var p = Tokenizer.Tokenize(text, ids.Length + 1);
        Assert.Equal("ＦＵＬＬＷＩＤＴＨ ending", p.TruncatedText);
    }

    [Fact]
    public void CutAtASpecialTokenStartsThere()
    {
        const string text = "hello <extra_id_0> world";
        var ids = Tokenizer.EncodeToIds(text, addEndOfSequence: false);
        int at = Array.IndexOf(ids, Tokenizer.ExtraIdToken(0));
        var p = Tokenizer.Tokenize(text, at + 1);
        Assert.Equal("<extra_id_0> world", p.TruncatedText);
    }

    [Fact]
    public void CutInTextWhoseWordsNormalisationChangesIsDecoded()
    {
        // A zero-width space becomes a word break in normalisation, so words cannot be matched to the text.
        const string text = "apple\u200Bpie cake";
        var ids = Tokenizer.EncodeToIds(text, addEndOfSequence: false);
        var p = Tokenizer.Tokenize(text, ids.Length);
        Assert.True(p.IsTruncated);
        Assert.False(string.IsNullOrWhiteSpace(p.TruncatedText));
        Assert.EndsWith("e", p.TruncatedText);
    }

    [Fact]
    public void ShortPromptIsNotTruncated()
    {
        var p = Tokenizer.Tokenize("A whale breaching at sunset.", 226);
        Assert.False(p.IsTruncated);
        Assert.Null(p.TruncatedText);
        Assert.Null(p.TruncationMessage);
        Assert.Equal(p.TokenCount, p.Mask.Sum());
        using var t = p.ToTensor();
        Assert.Equal(new[] { 1, 226 }, t.ShapeArray());
        Assert.Equal(DType.I64, t.DType);
    }

    [Fact]
    public void MaxLengthBelowOneIsRefused()
    {
        var e = Assert.Throws<CogVideoXException>(() => Tokenizer.Tokenize("a", 0));
        Assert.Contains("at least 1", e.Message);
        var one = Tokenizer.Tokenize("a b c", 1);
        Assert.Equal(new long[] { Tokenizer.EosId }, one.Ids);
        Assert.Equal("a b c", one.TruncatedText);
    }

    [Fact]
    public void MissingFolderIsNamed()
    {
        var e = Assert.Throws<WeightsException>(() => T5Tokenizer.Load("/nonexistent/tokenizer"));
        Assert.Contains("/nonexistent/tokenizer", e.Message);
        Assert.Contains("spiece.model", e.Message);
    }

    [Fact]
    public void FolderWithOnlyTokenizerJsonSaysSpieceModelIsNeeded()
    {
        using var dir = new TempFolder();
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer.json"), "{}");
        var e = Assert.Throws<WeightsException>(() => T5Tokenizer.Load(dir.Path));
        Assert.Contains("no spiece.model", e.Message);
        Assert.Contains("tokenizer.json", e.Message);
    }

    [Fact]
    public void CorruptModelIsRefused()
    {
        using var dir = new TempFolder();
        File.WriteAllBytes(Path.Combine(dir.Path, "spiece.model"), new byte[] { 0x0A, 0xFF, 0xFF, 0xFF, 0x0F, 1, 2 });
        var e = Assert.Throws<WeightsException>(() => T5Tokenizer.Load(dir.Path));
        Assert.Contains("not a sentencepiece model", e.Message);
    }

    [Fact]
    public void BpeModelIsRefused()
    {
        using var dir = new TempFolder();
        File.WriteAllBytes(Path.Combine(dir.Path, "spiece.model"), TinyModel(modelType: 2));
        var e = Assert.Throws<WeightsException>(() => T5Tokenizer.Load(dir.Path));
        Assert.Contains("not Unigram", e.Message);
    }

    [Fact]
    public void TinyModelWithoutConfigFilesUsesT5Defaults()
    {
        using var dir = new TempFolder();
        File.WriteAllBytes(Path.Combine(dir.Path, "spiece.model"), TinyModel(modelType: 1));
        var t = T5Tokenizer.Load(dir.Path);
        Assert.Equal(4 + 100, t.VocabSize);
        Assert.Equal(103, t.ExtraIdToken(0));
        Assert.Null(t.ModelMaxLength);
        Assert.Equal(new[] { 3, 3, 103, 1 }, t.EncodeToIds("a a<extra_id_0>"));
    }

    [Fact]
    public void InvalidConfigJsonNamesTheFile()
    {
        using var dir = CopyTokenizer();
        File.WriteAllText(Path.Combine(dir.Path, "tokenizer_config.json"), "{ not json");
        var e = Assert.Throws<WeightsException>(() => T5Tokenizer.Load(dir.Path));
        Assert.Contains("tokenizer_config.json", e.Message);
        Assert.Contains("not valid JSON", e.Message);
    }

    [Fact]
    public void ExtraIdsDisagreeingWithTheSpecialTokensIsRefused()
    {
        using var dir = CopyTokenizer();
        var path = Path.Combine(dir.Path, "tokenizer_config.json");
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"extra_ids\": 100", "\"extra_ids\": 50", StringComparison.Ordinal));
        var e = Assert.Throws<WeightsException>(() => T5Tokenizer.Load(dir.Path));
        Assert.Contains("extra_ids = 50", e.Message);
    }

    [Fact]
    public void AddedTokenWithBadIdIsRefused()
    {
        using var dir = CopyTokenizer();
        File.WriteAllText(Path.Combine(dir.Path, "added_tokens.json"), "{\"<extra_id_0>\": \"x\"}");
        var e = Assert.Throws<WeightsException>(() => T5Tokenizer.Load(dir.Path));
        Assert.Contains("added_tokens.json", e.Message);
        Assert.Contains("<extra_id_0>", e.Message);
    }

    private static TempFolder CopyTokenizer()
    {
        var dir = new TempFolder();
        foreach (var f in Directory.GetFiles(TextFixtures.TokenizerFolder))
            File.Copy(f, Path.Combine(dir.Path, Path.GetFileName(f)));
        return dir;
    }

    /// <summary>A hand-built sentencepiece model: &lt;pad&gt;, &lt;/s&gt;, &lt;unk&gt;, ▁a; T5's special ids, no BOS.</summary>
    private static byte[] TinyModel(int modelType)
    {
        var bytes = new List<byte>();
        void Varint(List<byte> o, ulong v)
        {
            for (; v >= 0x80; v >>= 7) o.Add((byte)(v | 0x80));
            o.Add((byte)v);
        }
        void Field(List<byte> o, int field, byte[] payload)
        {
            Varint(o, (ulong)(field << 3 | 2));
            Varint(o, (ulong)payload.Length);
            o.AddRange(payload);
        }
        foreach (var (piece, score, type) in new[] { ("<pad>", 0f, 3), ("</s>", 0f, 3), ("<unk>", 0f, 2), ("\u2581a", -1f, 1) })
        {
            var p = new List<byte>();
            Field(p, 1, System.Text.Encoding.UTF8.GetBytes(piece));
            Varint(p, 2 << 3 | 5);
            p.AddRange(BitConverter.GetBytes(score));
            Varint(p, 3 << 3);
            Varint(p, (ulong)type);
            Field(bytes, 1, p.ToArray());
        }
        var spec = new List<byte>();
        foreach (var (field, value) in new[] { (3, (long)modelType), (40, 2L), (41, -1L), (42, 1L), (43, 0L) })
        {
            Varint(spec, (ulong)(field << 3));
            Varint(spec, unchecked((ulong)value));
        }
        Field(bytes, 2, spec.ToArray());
        // Normaliser: identity rules, dummy prefix, whitespace collapsed and escaped (sentencepiece's defaults).
        var normalizer = new List<byte>();
        Field(normalizer, 1, System.Text.Encoding.UTF8.GetBytes("identity"));
        foreach (var field in new[] { 3, 4, 5 })
        {
            Varint(normalizer, (ulong)(field << 3));
            Varint(normalizer, 1);
        }
        Field(bytes, 3, normalizer.ToArray());
        return bytes.ToArray();
    }
}

/// <summary>A folder under the temp directory, removed on Dispose.</summary>
public sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "cogvideox-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
    }
}
