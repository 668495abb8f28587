using System.Security.Cryptography;
using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Weights;

public class ModelFolderTests
{
    private const string CommitA = "0123456789abcdef0123456789abcdef01234567";
    private const string CommitB = "fedcba9876543210fedcba9876543210fedcba98";

    private static string RealConfigs2b => Fixtures.GoldenFile("real_configs", "CogVideoX-2b");

    /// <summary>An environment holding only the given variables (the process environment is never touched).</summary>
    private static Func<string, string?> Env(params (string Name, string Value)[] vars) =>
        name => vars.FirstOrDefault(v => v.Name == name).Value;

    /// <summary>
    /// Puts a pipeline folder into a Hugging Face cache as huggingface_hub does: content in blobs/ named by its
    /// SHA-256, snapshots/&lt;commit&gt;/ made of relative symbolic links to the blobs, refs/&lt;name&gt; holding the commit.
    /// </summary>
    private static string AddToCache(string cache, string repoId, string commit, string source, params string[] refs)
    {
        var repo = Path.Combine(cache, "models--" + repoId.Replace("/", "--"));
        var snapshot = Path.Combine(repo, "snapshots", commit);
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        foreach (var file in Directory.GetFiles(source, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(source, file);
            if (relative.StartsWith("runs", StringComparison.Ordinal)) continue;
            var blob = Path.Combine(repo, "blobs", Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file))));
            if (!File.Exists(blob)) File.Copy(file, blob);
            var link = Path.Combine(snapshot, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(link)!);
            File.CreateSymbolicLink(link, Path.GetRelativePath(Path.GetDirectoryName(link)!, blob));
        }
        foreach (var r in refs)
        {
            var refFile = Path.Combine(repo, "refs", r);
            Directory.CreateDirectory(Path.GetDirectoryName(refFile)!);
            File.WriteAllText(refFile, commit);
        }
        return snapshot;
    }

    [Fact]
    public void OpensAPipelineFolder()
    {
        var folder = ModelFolder.Open(Fixtures.Path2b);
        Assert.Equal(Path.GetFullPath(Fixtures.Path2b), folder.Path);
        Assert.Equal(folder.Path, folder.Identity);
        Assert.Null(folder.Hub);
        Assert.Equal("CogVideoXPipeline", folder.PipelineClass);
        Assert.Equal(("diffusers", "CogVideoXTransformer3DModel"), (folder.Index.Component("transformer")!.Library, folder.Index.Component("transformer")!.ClassName));
        Assert.Equal(Path.Combine(folder.Path, "transformer"), folder.ComponentPath(PipelineComponents.Transformer));
        Assert.Equal(2, folder.Transformer.NumLayers);
        Assert.Equal(4, folder.Vae.LatentChannels);
        Assert.Equal(64, folder.TextEncoder.DModel);
        Assert.Equal("CogVideoXDDIMScheduler", folder.Scheduler.ClassName);
        Assert.Same(folder.Transformer, folder.Transformer);
        Assert.Equal(["diffusion_pytorch_model.safetensors"], folder.FindWeights("vae")!.Files.Select(Path.GetFileName));
        using var vae = folder.OpenWeights("vae");
        Assert.Equal(1_188_027, vae.ParameterCount);
    }

    [Fact]
    public void ConfigsAreReadWhenFirstAskedFor()
    {
        using var dir = new TempFolder();
        var copy = dir.CopyTree(RealConfigs2b, "m");
        File.WriteAllText(Path.Combine(copy, "vae", "config.json"), "{\"latent_channels\": \"sixteen\"}");
        var folder = ModelFolder.Open(copy);
        Assert.Equal(30, folder.Transformer.NumLayers);
        var e = Assert.Throws<WeightsException>(() => folder.Vae);
        Assert.Equal($"{Path.Combine(copy, "vae", "config.json")}: key 'latent_channels' must be an integer, found the string \"sixteen\"", e.Message);
    }

    [Fact]
    public void ConfigsOnlyFolderHasNoWeights()
    {
        var folder = ModelFolder.Open(Fixtures.GoldenFile("real_configs", "CogVideoX-5b"));
        Assert.Equal(48, folder.Transformer.NumAttentionHeads);
        Assert.Null(folder.FindWeights("transformer"));
        Assert.Null(folder.WeightsChecksum);
        var e = Assert.Throws<WeightsException>(() => folder.OpenWeights("transformer"));
        Assert.Equal($"{folder.ComponentPath("transformer")}: no weights in this folder (expected .safetensors files)", e.Message);
        var missing = Assert.Throws<WeightsException>(() => folder.FindWeights("tokenizer"));
        Assert.Equal($"{folder.ComponentPath("tokenizer")}: component folder not found (model_index.json lists tokenizer: transformers T5Tokenizer)", missing.Message);
    }

    [Fact]
    public void NotAPipelineFolderSaysWhy()
    {
        using var dir = new TempFolder();
        var empty = Directory.CreateDirectory(Path.Combine(dir.Path, "empty")).FullName;
        Assert.Contains("not a diffusers pipeline folder: it has no model_index.json", Assert.Throws<WeightsException>(() => ModelFolder.Open(empty)).Message);
        var component = Path.Combine(Fixtures.Path2b, "transformer");
        Assert.Equal($"{component}: this is the 'transformer' component folder, not a pipeline folder; pass its parent (the folder with model_index.json)",
            Assert.Throws<WeightsException>(() => ModelFolder.Open(component)).Message);
        var missing = Path.Combine(dir.Path, "nope");
        Assert.Equal($"{missing}: folder not found", Assert.Throws<WeightsException>(() => ModelFolder.Open(missing)).Message);
        var file = Path.Combine(Fixtures.Path2b, "model_index.json");
        Assert.Contains("is a file", Assert.Throws<WeightsException>(() => ModelFolder.Open(file)).Message);
    }

    [Fact]
    public void ChecksumIdentifiesTheWeights()
    {
        var golden = ModelFolder.Open(Fixtures.Path2b).WeightsChecksum;
        Assert.Matches("^sha256:[0-9a-f]{64}$", golden);
        Assert.Equal(golden, ModelFolder.Open(Fixtures.Path2b).WeightsChecksum);
        Assert.NotEqual(golden, ModelFolder.Open(Fixtures.Path5b).WeightsChecksum); // same layout, other values

        using var dir = new TempFolder();
        var copy = dir.CopyTree(Fixtures.Path2b, "copy");
        Directory.Delete(Path.Combine(copy, "runs"), recursive: true);
        Assert.Equal(golden, ModelFolder.Open(copy).WeightsChecksum); // where the folder lies does not matter

        // One changed byte of tensor data (the first sample) changes it.
        var weights = Path.Combine(copy, "transformer", "diffusion_pytorch_model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        long dataStart = 8 + BitConverter.ToInt64(bytes, 0);
        bytes[dataStart] ^= 1;
        File.WriteAllBytes(weights, bytes);
        Assert.NotEqual(golden, ModelFolder.Open(copy).WeightsChecksum);

        // The same weights stored as fp16 shards are other weights.
        bytes[dataStart] ^= 1;
        File.WriteAllBytes(weights, bytes);
        Assert.Equal(golden, ModelFolder.Open(copy).WeightsChecksum);
        File.Delete(weights);
        foreach (var f in Directory.GetFiles(Fixtures.GoldenFile("weights_fp16_sharded", "transformer")))
            File.Copy(f, Path.Combine(copy, "transformer", Path.GetFileName(f)), overwrite: true);
        Assert.NotEqual(golden, ModelFolder.Open(copy).WeightsChecksum);
    }

    [Fact]
    public void SmallFilesAreHashedWhole()
    {
        using var dir = new TempFolder();
        dir.Write("m/model_index.json", "{\"_class_name\": \"CogVideoXPipeline\", \"vae\": [\"diffusers\", \"AutoencoderKLCogVideoX\"]}");
        var values = Enumerable.Range(0, 1000).Select(i => (float)i).ToArray();
        var path = dir.Write("m/vae/diffusion_pytorch_model.safetensors", SafetensorsBytes.Of(("w", DType.F32, [1000], SafetensorsBytes.Floats(values))));
        var before = ModelFolder.Open(Path.Combine(dir.Path, "m")).WeightsChecksum;
        values[777] = -1;
        File.WriteAllBytes(path, SafetensorsBytes.Of(("w", DType.F32, [1000], SafetensorsBytes.Floats(values))));
        Assert.NotEqual(before, ModelFolder.Open(Path.Combine(dir.Path, "m")).WeightsChecksum);
    }

    [Fact]
    public void ResolvesAFolderPath()
    {
        var folder = ModelLocator.Resolve(Fixtures.Path2b, Env());
        Assert.Equal(Path.GetFullPath(Fixtures.Path2b), folder.Identity);
    }

    /// <summary>The alias, through the cache's symbolic links: the same weights as the folder they came from.</summary>
    [Fact]
    public void ResolvesAnAliasInTheCacheThroughSymbolicLinks()
    {
        using var dir = new TempFolder();
        var cache = Path.Combine(dir.Path, "hub");
        var snapshot = AddToCache(cache, "THUDM/CogVideoX-2b", CommitA, Fixtures.Path2b, "main");
        Assert.NotNull(new FileInfo(Path.Combine(snapshot, "transformer", "diffusion_pytorch_model.safetensors")).LinkTarget);

        var folder = ModelLocator.Resolve("2b", Env(("HF_HUB_CACHE", cache)));
        Assert.Equal(snapshot, folder.Path);
        Assert.Equal($"THUDM/CogVideoX-2b@{CommitA}", folder.Identity);
        Assert.Equal(new HubSnapshot("THUDM/CogVideoX-2b", "main", CommitA, Path.Combine(cache, "models--THUDM--CogVideoX-2b")), folder.Hub);
        Assert.Equal(ModelFolder.Open(Fixtures.Path2b).WeightsChecksum, folder.WeightsChecksum);
        Assert.Equal(2, folder.Transformer.NumLayers);
        using var cached = folder.OpenWeights("transformer");
        using var original = Checkpoint.Open(Path.Combine(Fixtures.Path2b, "transformer"));
        using var a = cached.Load("proj_out.weight");
        using var b = original.Load("proj_out.weight");
        Assert.Equal(b.ToFloatArray(), a.ToFloatArray());
        Assert.Equal(original.Files[0].Length, cached.Files[0].Length);
    }

    public static TheoryData<string[], string> CacheLocations() => new()
    {
        { ["HF_HUB_CACHE=A", "HUGGINGFACE_HUB_CACHE=B", "HF_HOME=C", "XDG_CACHE_HOME=D", "HOME=E"], "A" },
        { ["HUGGINGFACE_HUB_CACHE=B", "HF_HOME=C", "XDG_CACHE_HOME=D", "HOME=E"], "B" },
        { ["HF_HUB_CACHE=", "HF_HOME=C", "XDG_CACHE_HOME=D", "HOME=E"], "C/hub" },
        { ["XDG_CACHE_HOME=D", "HOME=E"], "D/huggingface/hub" },
        { ["HOME=E"], "E/.cache/huggingface/hub" },
        { ["HF_HOME=~/hf", "HOME=E"], "E/hf/hub" },
    };

    /// <summary>The cache is found where huggingface_hub looks: HF_HUB_CACHE, then HF_HOME/hub, then ~/.cache.</summary>
    [Theory]
    [MemberData(nameof(CacheLocations))]
    public void FindsTheCacheWhereHuggingFaceHubDoes(string[] variables, string expected)
    {
        using var dir = new TempFolder();
        var env = Env(variables.Select(v => v.Split('=', 2)).Select(p => (p[0], p[1].Length == 0 ? "" : p[1].StartsWith('~') ? p[1] : Path.Combine(dir.Path, p[1]))).ToArray());
        var cache = Path.Combine(dir.Path, expected);
        Assert.Equal(cache, ModelLocator.HubCache(env).Path);
        AddToCache(cache, "THUDM/CogVideoX-2b", CommitA, RealConfigs2b, "main");
        Assert.Equal($"THUDM/CogVideoX-2b@{CommitA}", ModelLocator.Resolve("THUDM/CogVideoX-2b", env).Identity);
    }

    [Fact]
    public void HonoursRevisions()
    {
        using var dir = new TempFolder();
        var cache = Path.Combine(dir.Path, "hub");
        var env = Env(("HF_HOME", dir.Path));
        AddToCache(cache, "THUDM/CogVideoX-5b", CommitA, Fixtures.GoldenFile("real_configs", "CogVideoX-5b"), "main");
        AddToCache(cache, "THUDM/CogVideoX-5b", CommitB, RealConfigs2b, "v1.0", "refs/pr/3");

        Assert.Equal(CommitA, ModelLocator.Resolve("5b", env).Hub!.Commit);
        Assert.Equal(48, ModelLocator.Resolve("THUDM/CogVideoX-5b@main", env).Transformer.NumAttentionHeads);
        var tagged = ModelLocator.Resolve("THUDM/CogVideoX-5b@v1.0", env);
        Assert.Equal((CommitB, "v1.0", 30), (tagged.Hub!.Commit, tagged.Hub.Revision, tagged.Transformer.NumAttentionHeads));
        Assert.Equal(CommitB, ModelLocator.Resolve("5b@refs/pr/3", env).Hub!.Commit);
        var pinned = ModelLocator.Resolve($"THUDM/CogVideoX-5b@{CommitB}", env);
        Assert.Equal(($"THUDM/CogVideoX-5b@{CommitB}", CommitB), (pinned.Identity, pinned.Hub!.Revision));

        var e = Assert.Throws<WeightsException>(() => ModelLocator.Resolve("THUDM/CogVideoX-5b@v2", env));
        var repo = Path.Combine(cache, "models--THUDM--CogVideoX-5b");
        Assert.Equal(
            $"THUDM/CogVideoX-5b: revision 'v2' is not in the cache: no {Path.Combine(repo, "refs", "v2")} and no snapshot {Path.Combine(repo, "snapshots", "v2")} " +
            $"(cached refs: main, refs/pr/3, v1.0; snapshots: {CommitA}, {CommitB}); run `cogvideox download THUDM/CogVideoX-5b@v2`", e.Message);
    }

    [Fact]
    public void RepoNotInTheCacheSaysWhereItLookedAndWhatToDo()
    {
        using var dir = new TempFolder();
        var cache = Path.Combine(dir.Path, "hub");
        var e = Assert.Throws<WeightsException>(() => ModelLocator.Resolve("THUDM/CogVideoX-2b", Env(("HF_HUB_CACHE", cache))));
        Assert.Equal(
            $"THUDM/CogVideoX-2b is not in the Hugging Face cache: {Path.Combine(cache, "models--THUDM--CogVideoX-2b")} does not exist (the cache is {cache}, from $HF_HUB_CACHE); " +
            "run `cogvideox download THUDM/CogVideoX-2b` to fetch it, or pass a local pipeline folder", e.Message);
        var alias = Assert.Throws<WeightsException>(() => ModelLocator.Resolve("5b", Env(("HOME", dir.Path))));
        Assert.StartsWith("5b (= THUDM/CogVideoX-5b) is not in the Hugging Face cache", alias.Message);
        Assert.Contains("from ~/.cache/huggingface/hub", alias.Message);
        Assert.Contains("run `cogvideox download THUDM/CogVideoX-5b`", alias.Message);
    }

    [Fact]
    public void BrokenCacheEntriesAreNamed()
    {
        using var dir = new TempFolder();
        var cache = Path.Combine(dir.Path, "hub");
        var env = Env(("HF_HUB_CACHE", cache));
        var repo = Path.Combine(cache, "models--THUDM--CogVideoX-2b");
        var snapshot = AddToCache(cache, "THUDM/CogVideoX-2b", CommitA, Fixtures.Path2b, "main");

        File.WriteAllText(Path.Combine(repo, "refs", "main"), CommitB);
        Assert.Equal($"2b (= THUDM/CogVideoX-2b): refs/main names commit {CommitB}, but {Path.Combine(repo, "snapshots", CommitB)} is missing (the cache is incomplete); run `cogvideox download THUDM/CogVideoX-2b`",
            Assert.Throws<WeightsException>(() => ModelLocator.Resolve("2b", env)).Message);

        File.WriteAllText(Path.Combine(repo, "refs", "main"), "<html>rate limited</html>");
        Assert.Contains("should hold a 40-character commit hash but holds '<html>rate limited</html>'",
            Assert.Throws<WeightsException>(() => ModelLocator.Resolve("2b", env)).Message);

        File.WriteAllText(Path.Combine(repo, "refs", "main"), CommitA);
        var blob = new FileInfo(Path.Combine(snapshot, "transformer", "diffusion_pytorch_model.safetensors")).ResolveLinkTarget(true)!.FullName;
        File.Delete(blob);
        var folder = ModelLocator.Resolve("2b", env);
        var link = Path.Combine(snapshot, "transformer", "diffusion_pytorch_model.safetensors");
        var e = Assert.Throws<WeightsException>(() => folder.OpenWeights("transformer"));
        Assert.StartsWith($"{link}: a link to '../../../blobs/", e.Message);
        Assert.EndsWith("which does not exist (an incomplete download?)", e.Message);

        File.Delete(Path.Combine(snapshot, "model_index.json"));
        Assert.Equal($"THUDM/CogVideoX-2b@{CommitA}: the cached snapshot {snapshot} has no model_index.json (an incomplete download?); run `cogvideox download THUDM/CogVideoX-2b`",
            Assert.Throws<WeightsException>(() => ModelLocator.Resolve("2b", env)).Message);
    }

    [Theory]
    [InlineData("/no/such/model/folder")]
    [InlineData("./nope")]
    [InlineData("nope")]
    [InlineData("a/b/c")]
    [InlineData("THUDM/Cog Video")]
    [InlineData("owner/name@")]
    public void SomethingThatIsNeitherAFolderNorARepoIdSaysSo(string model)
    {
        var e = Assert.Throws<WeightsException>(() => ModelLocator.Resolve(model, Env(("HF_HUB_CACHE", "/nonexistent-cache"))));
        Assert.StartsWith($"{model}: no such folder ({Path.GetFullPath(model)}), and not a Hugging Face repo id (owner/name, optionally @revision) or an alias (2b, 5b, 5b-i2v, 1.5, 1.5-5b, 1.5-i2v, 1.5-5b-i2v)", e.Message);
    }

    [Fact]
    public void EmptyModelOrAFileIsAClearError()
    {
        Assert.StartsWith("no model given", Assert.Throws<WeightsException>(() => ModelLocator.Resolve(" ", Env())).Message);
        var file = Path.Combine(Fixtures.Path2b, "transformer", "diffusion_pytorch_model.safetensors");
        Assert.StartsWith($"{file}: is a file; a model is a diffusers pipeline folder", Assert.Throws<WeightsException>(() => ModelLocator.Resolve(file, Env())).Message);
    }

    [Theory]
    [InlineData("THUDM/CogVideoX-2b", true)]
    [InlineData("a-b_c.d/E.f-g_1", true)]
    [InlineData("THUDM/CogVideoX--2b", false)]
    [InlineData("THUDM/..", false)]
    [InlineData("-x/y", false)]
    [InlineData("x/y.", false)]
    [InlineData("gpt2", false)]
    [InlineData("a/b/c", false)]
    public void RepoIdsAreValidatedAsTheHubDoes(string text, bool valid) => Assert.Equal(valid, ModelLocator.IsRepoId(text));
}
