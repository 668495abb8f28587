using CogVideoX.Weights;

namespace CogVideoX.Tests.Hub;

/// <summary>HF_HUB_OFFLINE, a cache filled by Python's huggingface_hub, and the environment variables read as it reads them.</summary>
public sealed class HubOfflineAndSettingsTests : IDisposable
{
    private const string Commit = "1137dacfc2c9c012bed6a0793f4ecf2ca8e7ba01";

    private readonly HubTestBed _bed = new();

    public void Dispose() => _bed.Dispose();

    private static Func<string, string?> Env(params (string Name, string Value)[] vars) =>
        name => vars.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public async Task OfflineWithNothingCachedFailsWithoutTouchingTheNetwork()
    {
        _bed.AddTiny2b();
        var settings = _bed.Settings(offline: true);

        var resolve = await Assert.ThrowsAsync<HubException>(() => ModelHub.ResolveAsync(HubTestBed.Repo, settings));
        var download = await Assert.ThrowsAsync<HubException>(() => ModelHub.DownloadAsync(HubTestBed.Repo, null, settings));

        Assert.Equal((HubFailure.Offline, HubFailure.Offline), (resolve.Failure, download.Failure));
        Assert.Equal(
            $"{HubTestBed.Repo} is not in the Hugging Face cache: {_bed.RepoFolder()} does not exist (the cache is {_bed.Cache}, from $HF_HUB_CACHE); run `cogvideox download {HubTestBed.Repo}` to fetch it, or pass a local pipeline folder. " +
            "Offline mode is on (HF_HUB_OFFLINE), so nothing is downloaded: unset HF_HUB_OFFLINE to let cogvideox download it, or fill the cache on a machine with network and copy it here", resolve.Message);
        Assert.Equal(resolve.Message, download.Message);
        Assert.Empty(_bed.Hub.Requests);
    }

    /// <summary>A cache as huggingface_hub leaves it (blobs by ETag, relative links, refs/main, files the pipeline does not need) is used as it is.</summary>
    [Fact]
    public async Task ACacheWrittenByHuggingFaceHubIsUsedOfflineAsItIs()
    {
        _bed.AddTiny2b();
        var snapshot = HubTestBed.WriteAsHuggingFaceHub(_bed.Cache, "THUDM/CogVideoX-2b", Commit, Fixtures.Path2b, [("README.md", "# CogVideoX-2b\n"u8.ToArray())]);
        var settings = HubSettings.FromEnvironment(Env(("HF_HUB_OFFLINE", "1"), ("HF_HUB_CACHE", _bed.Cache), ("HF_ENDPOINT", _bed.Hub.Endpoint)));
        Assert.True(settings.Offline);

        var folder = await ModelHub.ResolveAsync("2b", settings);
        var download = await ModelHub.DownloadAsync("2b", null, settings);

        Assert.Equal((snapshot, $"THUDM/CogVideoX-2b@{Commit}"), (folder.Path, folder.Identity));
        Assert.Equal((Commit, false, 0), (download.Commit, download.Checked, download.Fetched));
        Assert.Empty(_bed.Hub.Requests);
        Assert.Equal(ModelFolder.Open(Fixtures.Path2b).WeightsChecksum, folder.WeightsChecksum);
        using var weights = Checkpoint.Open(Path.Combine(folder.Path, "transformer"));
        using var original = Checkpoint.Open(Path.Combine(Fixtures.Path2b, "transformer"));
        using var a = weights.Load("patch_embed.proj.weight");
        using var b = original.Load("patch_embed.proj.weight");
        Assert.Equal(b.ToFloatArray(), a.ToFloatArray());

        // Online, a complete cache is used just the same, without asking the Hub.
        var online = await ModelHub.ResolveAsync("THUDM/CogVideoX-2b", _bed.Settings());
        Assert.Equal(snapshot, online.Path);
        Assert.Empty(_bed.Hub.Requests);
    }

    [Fact]
    public async Task OfflineWithAnIncompleteSnapshotNamesWhatIsMissing()
    {
        var snapshot = HubTestBed.WriteAsHuggingFaceHub(_bed.Cache, "THUDM/CogVideoX-2b", Commit, Fixtures.Path2b);
        var link = Path.Combine(snapshot, "vae", "diffusion_pytorch_model.safetensors");
        File.Delete(new FileInfo(link).ResolveLinkTarget(true)!.FullName);
        File.Delete(Path.Combine(snapshot, "tokenizer", "spiece.model"));
        File.Delete(Path.Combine(snapshot, "scheduler", "scheduler_config.json"));

        var e = await Assert.ThrowsAsync<HubException>(() => ModelHub.ResolveAsync("2b", _bed.Settings(offline: true)));

        Assert.Equal(
            $"2b (= THUDM/CogVideoX-2b): the cached snapshot {snapshot} lacks scheduler/scheduler_config.json, tokenizer/spiece.model, vae/diffusion_pytorch_model.safetensors (a link to a missing blob) (an interrupted download?); " +
            "run `cogvideox download THUDM/CogVideoX-2b`. Offline mode is on (HF_HUB_OFFLINE), so nothing is downloaded: unset HF_HUB_OFFLINE to let cogvideox download it, or fill the cache on a machine with network and copy it here", e.Message);
        Assert.Empty(_bed.Hub.Requests);
    }

    [Fact]
    public void MissingFilesOfAFolderAreNamed()
    {
        Assert.Empty(PipelineFiles.Missing(Fixtures.Path2b));
        Assert.Equal(
            ["text_encoder/ (weights: no .safetensors file)", "tokenizer/ (the whole folder)", "transformer/ (weights: no .safetensors file)", "vae/ (weights: no .safetensors file)"],
            PipelineFiles.Missing(Fixtures.GoldenFile("real_configs", "CogVideoX-2b")));
        using var dir = new TempFolder();
        Assert.Equal(["model_index.json"], PipelineFiles.Missing(dir.Path));
    }

    public static TheoryData<string?, string?, bool> OfflineValues() => new()
    {
        { "1", null, true }, { "true", null, true }, { "YES", null, true }, { "on", null, true },
        { "0", null, false }, { "", null, false }, { "no", null, false }, { null, "1", true },
    };

    [Theory]
    [MemberData(nameof(OfflineValues))]
    public void OfflineIsReadAsHuggingFaceHubReadsIt(string? hubOffline, string? transformersOffline, bool offline) =>
        Assert.Equal(offline, HubSettings.FromEnvironment(Env(("HOME", "/home/u"), ("HF_HUB_OFFLINE", hubOffline!), ("TRANSFORMERS_OFFLINE", transformersOffline!))).Offline);

    [Fact]
    public void SettingsComeFromTheEnvironmentVariablesHuggingFaceHubReads()
    {
        var defaults = HubSettings.FromEnvironment(Env(("HOME", "/home/u")));
        Assert.Equal(("https://huggingface.co", "/home/u/.cache/huggingface/hub", null, false), (defaults.Endpoint, defaults.Cache, defaults.Token, defaults.Offline));
        Assert.Equal((TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10), 8), (defaults.RequestTimeout, defaults.StallTimeout, defaults.MaxParallelDownloads));

        var mirror = HubSettings.FromEnvironment(Env(("HOME", "/home/u"), ("HF_ENDPOINT", "https://hf-mirror.com/"), ("HF_HOME", "/data/hf"),
            ("HF_TOKEN", " hf_abc\n"), ("HF_HUB_ETAG_TIMEOUT", "2.5"), ("HF_HUB_DOWNLOAD_TIMEOUT", "60")));
        Assert.Equal(("https://hf-mirror.com", "/data/hf/hub", "hf_abc", "$HF_TOKEN"), (mirror.Endpoint, mirror.Cache, mirror.Token, mirror.TokenSource));
        Assert.Equal((TimeSpan.FromSeconds(2.5), TimeSpan.FromSeconds(60)), (mirror.RequestTimeout, mirror.StallTimeout));
        Assert.Equal("hf_old", HubSettings.FromEnvironment(Env(("HOME", "/home/u"), ("HUGGING_FACE_HUB_TOKEN", "hf_old"))).Token);
    }

    [Fact]
    public void TheTokenFileIsFoundWhereHuggingFaceCliLoginWritesIt()
    {
        var home = _bed.Dir.File("home", ".cache", "huggingface", "token");
        File.WriteAllText(home, "hf_from_login\n");
        var fromHome = HubSettings.FromEnvironment(Env(("HOME", _bed.Dir.File("home"))));
        Assert.Equal(("hf_from_login", home), (fromHome.Token, fromHome.TokenSource));

        var hfHome = _bed.Dir.Write("hfhome/token", "hf_hfhome");
        Assert.Equal("hf_hfhome", HubSettings.FromEnvironment(Env(("HF_HOME", Path.GetDirectoryName(hfHome)!))).Token);

        var explicitPath = _bed.Dir.Write("elsewhere/my-token", "hf_explicit");
        Assert.Equal("hf_explicit", HubSettings.FromEnvironment(Env(("HF_HOME", Path.GetDirectoryName(hfHome)!), ("HF_TOKEN_PATH", explicitPath))).Token);
        // HF_TOKEN wins over any file.
        Assert.Equal("hf_env", HubSettings.FromEnvironment(Env(("HF_HOME", Path.GetDirectoryName(hfHome)!), ("HF_TOKEN", "hf_env"))).Token);
        Assert.Null(HubSettings.FromEnvironment(Env(("HF_HOME", _bed.Dir.File("empty")))).Token);
    }

    [Theory]
    [InlineData("HF_ENDPOINT", "hf-mirror.com", "HF_ENDPOINT='hf-mirror.com' is not an http(s) URL; set it to a Hub mirror's address (such as https://hf-mirror.com) or unset it to use https://huggingface.co")]
    [InlineData("HF_ENDPOINT", "ftp://mirror", "HF_ENDPOINT='ftp://mirror' is not an http(s) URL; set it to a Hub mirror's address (such as https://hf-mirror.com) or unset it to use https://huggingface.co")]
    [InlineData("HF_HUB_DOWNLOAD_TIMEOUT", "soon", "HF_HUB_DOWNLOAD_TIMEOUT='soon' is not a number of seconds between 0 and 86400; unset it for the default (10 s)")]
    [InlineData("HF_HUB_ETAG_TIMEOUT", "-1", "HF_HUB_ETAG_TIMEOUT='-1' is not a number of seconds between 0 and 86400; unset it for the default (10 s)")]
    public void UnusableSettingsSayWhatIsExpected(string name, string value, string message)
    {
        var e = Assert.Throws<HubException>(() => HubSettings.FromEnvironment(Env(("HOME", "/home/u"), (name, value))));
        Assert.Equal((HubFailure.BadSettings, message), (e.Failure, e.Message));
    }

    [Fact]
    public async Task DownloadArgumentsAreChecked()
    {
        Assert.Equal($"{Fixtures.Path2b}: is a local folder, so there is nothing to download; pass a Hugging Face repo id (THUDM/CogVideoX-2b) or an alias (2b, 5b)",
            (await Assert.ThrowsAsync<HubException>(() => ModelHub.DownloadAsync(Fixtures.Path2b, null, _bed.Settings()))).Message);
        Assert.Equal("THUDM/CogVideoX-2b@v1 names revision 'v1' but --revision says 'v2'; give the revision once",
            (await Assert.ThrowsAsync<HubException>(() => ModelHub.DownloadAsync("THUDM/CogVideoX-2b@v1", "v2", _bed.Settings()))).Message);
        Assert.Equal("--revision '../x' is not a branch, tag or commit name (letters, digits, '.', '_', '-', '/', '+'; no '..')",
            (await Assert.ThrowsAsync<HubException>(() => ModelHub.DownloadAsync("2b", "../x", _bed.Settings()))).Message);
        Assert.StartsWith("not/a/repo: no such folder",
            (await Assert.ThrowsAsync<WeightsException>(() => ModelHub.DownloadAsync("not/a/repo", null, _bed.Settings()))).Message);
        Assert.Empty(_bed.Hub.Requests);
    }
}
