using System.Diagnostics;
using System.Security.Cryptography;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Hub;

/// <summary>
/// What goes wrong on a network and at a Hub: dropped and stalled transfers, corrupt bytes, servers that ignore
/// Range, slow or failing answers, refused access, missing repos, revisions and files, a full disk. Each either
/// recovers (resume, retry) or fails with a message that says what to do, and leaves a consistent cache.
/// </summary>
public sealed class HubFaultTests : IDisposable
{
    private const string Transformer = "transformer/diffusion_pytorch_model.safetensors";
    private const string Vae = "vae/diffusion_pytorch_model.safetensors";

    private readonly HubTestBed _bed = new();

    /// <summary>A short stall timeout, for the tests that stall on purpose.</summary>
    private HubSettings Impatient => _bed.Settings() with { StallTimeout = TimeSpan.FromMilliseconds(400) };

    public void Dispose() => _bed.Dispose();

    private static string EtagOf(string path) => HubTestBed.Etag(path, HubTestBed.FixtureBytes(path));

    /// <summary>
    /// The invariants a failure must keep: every blob's content matches its name, no snapshot link dangles, no
    /// temporary is left, and refs/main exists only for a complete snapshot.
    /// </summary>
    private void AssertConsistent(bool complete)
    {
        foreach (var blob in Directory.Exists(_bed.Blobs()) ? Directory.GetFiles(_bed.Blobs()) : [])
        {
            var name = Path.GetFileName(blob);
            if (name.EndsWith(".incomplete", StringComparison.Ordinal)) continue;
            var bytes = File.ReadAllBytes(blob);
            Assert.Equal(name, name.Length == 64 ? Convert.ToHexStringLower(SHA256.HashData(bytes)) : FakeFile.GitBlobId(bytes));
        }
        var snapshots = Path.Combine(_bed.RepoFolder(), "snapshots");
        foreach (var entry in Directory.Exists(snapshots) ? Directory.GetFiles(snapshots, "*", SearchOption.AllDirectories) : [])
        {
            Assert.False(Path.GetFileName(entry).StartsWith('.'), $"temporary left: {entry}");
            Assert.True(File.Exists(new FileInfo(entry).ResolveLinkTarget(true)?.FullName ?? entry), $"dangling link: {entry}");
        }
        Assert.Equal(complete, File.Exists(Path.Combine(_bed.RepoFolder(), "refs", "main")));
    }

    private async Task<HubException> DownloadFails(HubSettings? settings = null, string repo = HubTestBed.Repo, string? revision = null) =>
        await Assert.ThrowsAsync<HubException>(() => ModelHub.DownloadAsync(repo, revision, settings ?? _bed.Settings()));

    [Fact]
    public async Task ADroppedConnectionIsResumedWithRangeAndVerified()
    {
        var commit = _bed.AddTiny2b();
        _bed.Hub.Add(new Fault(FaultStage.Content, FaultKind.DropAt, Transformer, At: 700_000));
        var progress = new RecordingProgress();

        var result = await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings(), progress);

        Assert.Equal(commit, result.Commit);
        Assert.Equal([null, "bytes=700000-"], _bed.Hub.ContentRequests(Transformer).Select(r => r.Range));
        Assert.Contains(progress.Notes, n => n.StartsWith($"note {Transformer}: the connection closed after 683.6 KiB of 2.0 MiB; resuming at 683.6 KiB in 10 ms (try 2 of 3)", StringComparison.Ordinal));
        Assert.Contains(progress.Done, d => d == $"done {Transformer} 2106960 sha256 verified");
        Assert.Equal(HubTestBed.FixtureBytes(Transformer), File.ReadAllBytes(Path.Combine(_bed.Snapshot(commit), Transformer)));
        AssertConsistent(complete: true);
    }

    [Fact]
    public async Task ALostConnectionKeepsWhatArrivedAndTheNextDownloadResumesIt()
    {
        var commit = _bed.AddTiny2b();
        // The connection dies at the same byte every time: the first try brings 500 000 bytes, the others none.
        _bed.Hub.Add(new Fault(FaultStage.Content, FaultKind.DropAt, Transformer, At: 500_000) { Times = 100 });

        var e = await DownloadFails();

        var incomplete = Path.Combine(_bed.Blobs(), EtagOf(Transformer) + ".incomplete");
        Assert.Equal(HubFailure.ConnectionLost, e.Failure);
        Assert.Equal(
            $"{HubTestBed.Repo}: {Transformer}: the connection closed after 488.3 KiB of 2.0 MiB (3 tries without new data). " +
            $"The 488.3 KiB of 2.0 MiB downloaded so far are kept in {incomplete}, and the next try resumes from there; check the network, then run the download again. " +
            $"2 of the 3 files being fetched are in the cache; partial downloads are kept in {_bed.Blobs()} and resumed by the next try", e.Message);
        Assert.Equal(500_000, new FileInfo(incomplete).Length);
        Assert.False(File.Exists(Path.Combine(_bed.Snapshot(commit), Transformer)));
        AssertConsistent(complete: false);
        // No ref, so the cache does not claim the model.
        Assert.Throws<WeightsException>(() => ModelLocator.Resolve(HubTestBed.Repo, n => n == "HF_HUB_CACHE" ? _bed.Cache : null));

        _bed.Hub.ClearFaults();
        int before = _bed.Hub.Requests.Count;
        var result = await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings());

        Assert.Equal(1, result.Fetched);
        Assert.Equal(["bytes=500000-"], _bed.Hub.ContentRequests(Transformer).Skip(3).Select(r => r.Range));
        Assert.Equal(["api", "head", "content"], _bed.Hub.Requests.Skip(before).Select(r => r.Kind));
        Assert.False(File.Exists(incomplete));
        AssertConsistent(complete: true);
    }

    [Fact]
    public async Task AServerThatIgnoresRangeMakesTheFileStartOverCleanly()
    {
        var commit = _bed.AddTiny2b();
        // A partial file from an earlier try, but not a prefix of this file: appending to it would corrupt the blob.
        Directory.CreateDirectory(_bed.Blobs());
        var incomplete = Path.Combine(_bed.Blobs(), EtagOf(Vae) + ".incomplete");
        File.WriteAllBytes(incomplete, HubTestBed.RandomBytes(1000, 7));
        _bed.Hub.Add(new Fault(FaultStage.Content, FaultKind.IgnoreRange, Vae));
        var progress = new RecordingProgress();

        await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings(), progress);

        Assert.Equal(["bytes=1000-"], _bed.Hub.ContentRequests(Vae).Select(r => r.Range));
        Assert.Contains($"started {Vae} 4790940 from 1000", progress.Events);
        Assert.Contains($"note {Vae}: the server ignored the request to resume at 1000 bytes: downloading the file again from its first byte", progress.Notes);
        Assert.Equal(HubTestBed.FixtureBytes(Vae), File.ReadAllBytes(Path.Combine(_bed.Snapshot(commit), Vae)));
        AssertConsistent(complete: true);
    }

    [Theory]
    [InlineData(Vae, 12_345, "sha256")]
    [InlineData("transformer/config.json", 100, "git-sha1")]
    public async Task AWrongChecksumIsRefusedAndThePartialFileDeleted(string path, long at, string algorithm)
    {
        var commit = _bed.AddTiny2b();
        _bed.Hub.Add(new Fault(FaultStage.Content, FaultKind.Corrupt, path, At: at));

        var e = await DownloadFails();

        var etag = EtagOf(path);
        var incomplete = Path.Combine(_bed.Blobs(), etag + ".incomplete");
        Assert.Equal(HubFailure.ChecksumMismatch, e.Failure);
        Assert.Matches($"^{HubTestBed.Repo}: {path}: the downloaded bytes have {algorithm} [0-9a-f]+, but the Hub names the file {etag}; ", e.Message);
        Assert.Contains($"so it was deleted ({incomplete}) and nothing was added to the cache; run the download again", e.Message);
        Assert.False(File.Exists(incomplete));
        Assert.False(File.Exists(Path.Combine(_bed.Blobs(), etag)));
        Assert.False(File.Exists(Path.Combine(_bed.Snapshot(commit), path)));
        AssertConsistent(complete: false);

        _bed.Hub.ClearFaults();
        var result = await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings());
        Assert.Equal(HubTestBed.FixtureBytes(path), File.ReadAllBytes(Path.Combine(result.Folder.Path, path)));
        AssertConsistent(complete: true);
    }

    [Fact]
    public async Task AStalledTransferIsDetectedAndResumed()
    {
        var commit = _bed.AddTiny2b();
        _bed.Hub.Add(new Fault(FaultStage.Content, FaultKind.StallAt, Transformer, At: 300_000, Delay: TimeSpan.FromSeconds(30)));
        var progress = new RecordingProgress();
        var clock = Stopwatch.StartNew();

        await ModelHub.DownloadAsync(HubTestBed.Repo, null, Impatient, progress);

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.Equal([null, "bytes=300000-"], _bed.Hub.ContentRequests(Transformer).Select(r => r.Range));
        Assert.Contains(progress.Notes, n => n.StartsWith($"note {Transformer}: no data for 400 ms after 293.0 KiB of 2.0 MiB (a stalled connection; HF_HUB_DOWNLOAD_TIMEOUT sets the limit); resuming at 293.0 KiB", StringComparison.Ordinal));
        Assert.Equal(HubTestBed.FixtureBytes(Transformer), File.ReadAllBytes(Path.Combine(_bed.Snapshot(commit), Transformer)));
    }

    [Fact]
    public async Task AConnectionThatKeepsStallingFailsWithWhatArrivedKept()
    {
        _bed.AddTiny2b();
        _bed.Hub.Add(new Fault(FaultStage.Content, FaultKind.StallAt, Transformer, At: 300_000, Delay: TimeSpan.FromSeconds(30)) { Times = 100 });

        var e = await DownloadFails(Impatient);

        Assert.Equal(HubFailure.ConnectionLost, e.Failure);
        Assert.StartsWith($"{HubTestBed.Repo}: {Transformer}: no data for 400 ms after 293.0 KiB of 2.0 MiB (a stalled connection; HF_HUB_DOWNLOAD_TIMEOUT sets the limit) (3 tries without new data). The 293.0 KiB", e.Message);
        Assert.Equal(300_000, new FileInfo(Path.Combine(_bed.Blobs(), EtagOf(Transformer) + ".incomplete")).Length);
        AssertConsistent(complete: false);
    }

    [Fact]
    public async Task ASlowAnswerTimesOut()
    {
        _bed.AddTiny2b();
        _bed.Hub.Add(new Fault(FaultStage.Api, FaultKind.Delay, Delay: TimeSpan.FromSeconds(30)) { Times = 100 });
        var clock = Stopwatch.StartNew();

        var e = await DownloadFails(_bed.Settings() with { RequestTimeout = TimeSpan.FromMilliseconds(300), MaxAttempts = 2 });

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.Equal(HubFailure.ServerError, e.Failure);
        Assert.Equal($"the file list of {HubTestBed.Repo}@main: {new Uri(_bed.Hub.Endpoint).Authority} did not answer within 300 ms (HF_HUB_ETAG_TIMEOUT) (2 tries); the Hub may be busy or down: try again later", e.Message);
        Assert.Equal(2, _bed.Hub.Requests.Count(r => r.Kind == "api"));
        Assert.False(Directory.Exists(_bed.RepoFolder()));
    }

    [Fact]
    public async Task AnOccasionalServerErrorIsRetried()
    {
        var commit = _bed.AddTiny2b();
        _bed.Hub.Add(new Fault(FaultStage.Api, FaultKind.Status, Status: 503) { Times = 2 });
        _bed.Hub.Add(new Fault(FaultStage.Head, FaultKind.Status, "vae/config.json", Status: 500));
        _bed.Hub.Add(new Fault(FaultStage.Content, FaultKind.Status, Vae, Status: 503));

        var result = await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings());

        Assert.Equal(commit, result.Commit);
        Assert.Equal(3, _bed.Hub.Requests.Count(r => r.Kind == "api"));
        Assert.Equal(2, _bed.Hub.ContentRequests(Vae).Count);
        AssertConsistent(complete: true);
    }

    [Fact]
    public async Task AServerThatKeepsFailingIsReported()
    {
        _bed.AddTiny2b();
        _bed.Hub.Add(new Fault(FaultStage.Api, FaultKind.Status, Status: 503, Message: "Service Unavailable") { Times = 100 });

        var e = await DownloadFails();

        Assert.Equal(HubFailure.ServerError, e.Failure);
        Assert.Equal($"the file list of {HubTestBed.Repo}@main: {new Uri(_bed.Hub.Endpoint).Authority} answered 503 Service Unavailable: Service Unavailable (3 tries); the Hub may be busy or down: try again later", e.Message);
    }

    [Fact]
    public async Task APrivateRepoWithoutATokenSaysHowToGetAccess()
    {
        _bed.AddTiny2b("test/private");
        _bed.Hub.AddRepo("test/private").Private = true;

        var e = await DownloadFails(repo: "test/private");

        Assert.Equal(HubFailure.RepoNotFound, e.Failure);
        Assert.Equal($"test/private: repository not found on {_bed.Hub.Endpoint} (401); check the name (such as THUDM/CogVideoX-2b); if it is private, set HF_TOKEN to an access token of an account that can read it ({_bed.Hub.Endpoint}/settings/tokens)", e.Message);

        _bed.Hub.Tokens.Add("hf_stranger");
        var withToken = await DownloadFails(_bed.Settings(token: "hf_stranger"), repo: "test/private");
        Assert.Equal($"test/private: repository not found on {_bed.Hub.Endpoint} (404); check the name (such as THUDM/CogVideoX-2b); if it is private, the token from $HF_TOKEN gives no access to it", withToken.Message);

        _bed.Hub.Tokens.Add("hf_owner");
        _bed.Hub.AddRepo("test/private").Readers.Add("hf_owner");
        var result = await ModelHub.DownloadAsync("test/private", null, _bed.Settings(token: "hf_owner"));
        Assert.Equal(12, result.Fetched);
    }

    [Fact]
    public async Task ARejectedTokenSaysSo()
    {
        _bed.AddTiny2b();

        var e = await DownloadFails(_bed.Settings(token: "hf_expired"));

        Assert.Equal(HubFailure.Unauthorized, e.Failure);
        Assert.Equal($"{_bed.Hub.Endpoint} rejected the access token from $HF_TOKEN (401: Invalid credentials in Authorization header); create a new token at {_bed.Hub.Endpoint}/settings/tokens and set HF_TOKEN to it, or unset HF_TOKEN (and remove the token file) to download public models without one", e.Message);
    }

    [Fact]
    public async Task AGatedRepoSaysHowToAcceptItsLicence()
    {
        var commit = _bed.AddTiny2b("test/gated");
        var repo = _bed.Hub.AddRepo("test/gated");
        repo.Gated = true;
        var page = $"{_bed.Hub.Endpoint}/test/gated";

        var anonymous = await DownloadFails(repo: "test/gated");

        Assert.Equal(HubFailure.Gated, anonymous.Failure);
        Assert.Equal($"test/gated is a gated model (401): its files can be downloaded only by accounts that accepted its conditions. Log in at {_bed.Hub.Endpoint}, accept them on {page}, and use a token of that account; no token was sent: set HF_TOKEN to an access token of that account ({_bed.Hub.Endpoint}/settings/tokens)", anonymous.Message);
        Assert.Empty(Directory.Exists(_bed.Blobs("test/gated")) ? Directory.GetFiles(_bed.Blobs("test/gated")) : []);

        _bed.Hub.Tokens.Add("hf_not_accepted");
        var refused = await DownloadFails(_bed.Settings(token: "hf_not_accepted"), repo: "test/gated");
        Assert.Equal(HubFailure.Gated, refused.Failure);
        Assert.EndsWith("the token from $HF_TOKEN was sent, but its account has no access yet (if the conditions are accepted, access may still await the authors' approval)", refused.Message);
        Assert.StartsWith("test/gated is a gated model (403)", refused.Message);

        // Accepted, with the token from the token file huggingface-cli login writes.
        _bed.Hub.Tokens.Add("hf_accepted");
        repo.Readers.Add("hf_accepted");
        var home = Path.Combine(_bed.Dir.Path, "hf-home");
        Directory.CreateDirectory(home);
        File.WriteAllText(Path.Combine(home, "token"), "hf_accepted\n");
        var settings = HubSettings.FromEnvironment(n => n switch { "HF_HOME" => home, "HF_ENDPOINT" => _bed.Hub.Endpoint, "HF_HUB_CACHE" => _bed.Cache, _ => null });
        Assert.Equal((_bed.Cache, "hf_accepted", Path.Combine(home, "token")), (settings.Cache, settings.Token, settings.TokenSource));
        var result = await ModelHub.DownloadAsync("test/gated", null, settings);
        Assert.Equal(commit, result.Commit);
    }

    [Fact]
    public async Task AMissingRepoRevisionOrFileIsNamed()
    {
        var commit = _bed.AddTiny2b();

        var repo = await DownloadFails(repo: "test/no-such-model");
        Assert.Equal(HubFailure.RepoNotFound, repo.Failure);
        Assert.StartsWith($"test/no-such-model: repository not found on {_bed.Hub.Endpoint} (401); check the name", repo.Message);

        var revision = await DownloadFails(revision: "v9");
        Assert.Equal(HubFailure.RevisionNotFound, revision.Failure);
        Assert.Equal($"{HubTestBed.Repo}: revision 'v9' not found on {_bed.Hub.Endpoint} (404: no branch, tag or commit of that name); see {_bed.Hub.Endpoint}/{HubTestBed.Repo}/tree/main for the repository's branches and files, or leave the revision out for 'main'", revision.Message);
        Assert.False(Directory.Exists(_bed.RepoFolder()));

        _bed.Hub.AddRepo(HubTestBed.Repo).Unservable.Add("vae/config.json");
        var file = await DownloadFails();
        Assert.Equal(HubFailure.FileNotFound, file.Failure);
        Assert.StartsWith($"{HubTestBed.Repo}@{commit}: file 'vae/config.json' not found on {_bed.Hub.Endpoint} (404) although the repository's file list names it; the repository may have changed during the download: run it again", file.Message);
        Assert.False(File.Exists(Path.Combine(_bed.Snapshot(commit), "vae", "config.json")));
        AssertConsistent(complete: false);
    }

    [Fact]
    public async Task ARepoThatIsNotAPipelineIsRefused()
    {
        _bed.Hub.AddCommit("test/not-a-pipeline", new Dictionary<string, byte[]> { ["README.md"] = "hi"u8.ToArray(), ["model.safetensors"] = new byte[16] });
        var e = await DownloadFails(repo: "test/not-a-pipeline");
        Assert.Equal(HubFailure.NotAPipeline, e.Failure);
        Assert.Equal("test/not-a-pipeline@main: not a diffusers pipeline: the repository has no model_index.json (its files: README.md, model.safetensors); pass a repository in the diffusers layout, such as THUDM/CogVideoX-2b", e.Message);

        var files = HubTestBed.PipelineFiles.Where(p => p != Transformer).ToDictionary(p => p, HubTestBed.FixtureBytes);
        files["transformer/diffusion_pytorch_model.bin"] = new byte[64];
        _bed.Hub.AddCommit("test/pickles", files);
        var pickles = await DownloadFails(repo: "test/pickles");
        Assert.Equal("test/pickles@main: transformer/ has only pickle checkpoints (diffusion_pytorch_model.bin), which are never downloaded because loading them can run arbitrary code; this repository has no safetensors weights for its transformer", pickles.Message);
        Assert.DoesNotContain(_bed.Hub.Requests, r => r.FilePath == "transformer/diffusion_pytorch_model.bin");
    }

    [Fact]
    public async Task NotEnoughDiskSpaceIsFoundBeforeDownloading()
    {
        _bed.AddTiny2b();
        var settings = _bed.Settings() with { FreeSpace = _ => 1_000_000 };

        var e = await DownloadFails(settings);

        Assert.Equal(HubFailure.DiskFull, e.Failure);
        Assert.Equal($"not enough disk space for {HubTestBed.Repo}: the files still to download take 7.4 MiB, but only 976.6 KiB is free on the disk holding {_bed.RepoFolder()}; free some space, or set HF_HUB_CACHE (or HF_HOME) to a folder on a larger disk", e.Message);
        Assert.DoesNotContain(_bed.Hub.Requests, r => r.Kind == "content" && r.FilePath!.EndsWith(".safetensors", StringComparison.Ordinal));
        AssertConsistent(complete: false);
    }

    /// <summary>A real ENOSPC from the kernel: the partial file is a link to /dev/full, which accepts no byte.</summary>
    [Fact]
    public async Task ADiskThatFillsUpDuringTheDownloadIsReported()
    {
        if (!OperatingSystem.IsLinux()) return; // /dev/full is Linux's
        var commit = _bed.AddTiny2b();
        Directory.CreateDirectory(_bed.Blobs());
        var incomplete = Path.Combine(_bed.Blobs(), EtagOf(Vae) + ".incomplete");
        File.CreateSymbolicLink(incomplete, "/dev/full");

        var e = await DownloadFails();

        Assert.Equal(HubFailure.DiskFull, e.Failure);
        Assert.StartsWith($"the disk is full: writing {Vae} of {HubTestBed.Repo} to {incomplete} failed (No space left on device", e.Message);
        Assert.Contains("the download still needs ", e.Message);
        Assert.Matches(" and [0-9.]+ [KMGT]iB is free there. Free some space, or set HF_HUB_CACHE \\(or HF_HOME\\) to a folder on a larger disk, and run again: the 0 bytes already written are kept and will be resumed", e.Message);
        Assert.False(File.Exists(Path.Combine(_bed.Blobs(), EtagOf(Vae))));
        Assert.False(File.Exists(Path.Combine(_bed.Snapshot(commit), Vae)));
        AssertConsistent(complete: false);
    }

    [Fact]
    public async Task AnotherProcessWritingTheSamePartialFileIsNotDisturbed()
    {
        _bed.AddTiny2b();
        Directory.CreateDirectory(_bed.Blobs());
        var incomplete = Path.Combine(_bed.Blobs(), EtagOf(Vae) + ".incomplete");
        using var other = new FileStream(incomplete, FileMode.Create, FileAccess.ReadWrite, FileShare.None);
        other.Write(new byte[100]);
        other.Flush();

        var e = await DownloadFails();

        Assert.Equal(HubFailure.CacheNotWritable, e.Failure);
        Assert.StartsWith($"{incomplete} is being written by another download (another cogvideox process?); wait for it to finish, or stop it, and run again", e.Message);
        Assert.Equal(100, other.Length);
    }

    [Fact]
    public async Task AServerThatIgnoresRangeGetsNoFreshTriesForGettingFurther()
    {
        _bed.AddTiny2b();
        // Every try starts the file over and drops a little later than the one before: never "progress".
        _bed.Hub.Add(new Fault(FaultStage.Content, FaultKind.IgnoreRange, Transformer) { Times = 100 });
        _bed.Hub.Add(new Fault(FaultStage.Content, FaultKind.DropAt, Transformer, At: 300_000, Step: 300_000) { Times = 100 });

        var e = await DownloadFails();

        Assert.Equal(HubFailure.ConnectionLost, e.Failure);
        Assert.StartsWith($"{HubTestBed.Repo}: {Transformer}: the connection closed after 878.9 KiB of 2.0 MiB (3 tries; the server does not resume downloads, so each try started the file over). ", e.Message);
        Assert.Equal(3, _bed.Hub.ContentRequests(Transformer).Count);
        AssertConsistent(complete: false);
    }

    [Fact]
    public async Task AConnectionThatDropsOnEveryTryEndsAfterTheTriesAllowedInAll()
    {
        _bed.AddTiny2b();
        // Each try brings new bytes (so the tries without new data never run out), but the drops never stop.
        _bed.Hub.Add(new Fault(FaultStage.Content, FaultKind.DropAt, Transformer, At: 100_000, Step: 100_000) { Times = 100 });

        var e = await DownloadFails(_bed.Settings() with { MaxTotalAttempts = 4 });

        Assert.StartsWith($"{HubTestBed.Repo}: {Transformer}: the connection closed after 390.6 KiB of 2.0 MiB (4 tries in all, the most for one file). The 390.6 KiB", e.Message);
        Assert.Equal([null, "bytes=100000-", "bytes=200000-", "bytes=300000-"], _bed.Hub.ContentRequests(Transformer).Select(r => r.Range));
        Assert.Equal(400_000, new FileInfo(Path.Combine(_bed.Blobs(), EtagOf(Transformer) + ".incomplete")).Length);
    }

    [Fact]
    public async Task RetriesWithoutNewDataEndAfterTheTimeAllowed()
    {
        _bed.AddTiny2b();
        _bed.Hub.Add(new Fault(FaultStage.Content, FaultKind.StallAt, Transformer, At: 300_000, Delay: TimeSpan.FromSeconds(30)) { Times = 1000 });
        var clock = Stopwatch.StartNew();

        var e = await DownloadFails(Impatient with { MaxAttempts = 1000, RetryTimeLimit = TimeSpan.FromSeconds(1) });

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"took {clock.Elapsed}");
        Assert.Matches(@"\(no new data for [0-9.]+ s, more than the 1 s allowed\)\. The 293\.0 KiB", e.Message);
    }

    [Fact]
    public async Task AFileListWithoutContentLengthIsReadWithASizeCap()
    {
        _bed.AddTiny2b();
        _bed.Hub.FileListWithoutLength = true;
        var settings = _bed.Settings() with { MaxFileListBytes = 64 << 10 };

        // Ended by the connection closing: read as usual.
        var result = await ModelHub.DownloadAsync(HubTestBed.Repo, null, settings);
        Assert.Equal(12, result.Files);

        _bed.Hub.FileListPadding = 1 << 20;
        var e = await DownloadFails(settings);
        Assert.Equal(HubFailure.BadResponse, e.Failure);
        Assert.Equal($"the file list of {HubTestBed.Repo}@main from {new Uri(_bed.Hub.Endpoint).Authority} is larger than 64.0 KiB, far more than a model repository's; check HF_ENDPOINT and any proxy", e.Message);

        // A Content-Length over the cap is refused before reading.
        _bed.Hub.FileListWithoutLength = false;
        e = await DownloadFails(settings);
        Assert.Contains("is larger than 64.0 KiB", e.Message);
    }

    [Fact]
    public async Task ADamagedBlobInTheCacheIsFetchedAgainNotCalledComplete()
    {
        var commit = _bed.AddTiny2b();
        await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings());
        var blob = Path.Combine(_bed.Blobs(), EtagOf(Transformer));
        var bytes = HubTestBed.FixtureBytes(Transformer);

        // Truncated (an interrupted copy).
        File.WriteAllBytes(blob, bytes[..1000]);
        var progress = new RecordingProgress();
        var result = await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings(), progress);
        Assert.Equal(1, result.Fetched);
        Assert.Contains($"note {Transformer}: the cached copy {blob} is damaged (1000 bytes instead of 2.0 MiB): downloading it again", progress.Notes);
        Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(_bed.Snapshot(commit), Transformer)));
        AssertConsistent(complete: true);

        // The right size, other content (a flipped bit).
        var damaged = bytes.ToArray();
        damaged[12_345] ^= 1;
        File.WriteAllBytes(blob, damaged);
        progress = new RecordingProgress();
        result = await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings(), progress);
        Assert.Equal(1, result.Fetched);
        Assert.Contains(progress.Notes, n => n.StartsWith($"note {Transformer}: the cached copy {blob} is damaged (its sha256 is ", StringComparison.Ordinal));
        Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(_bed.Snapshot(commit), Transformer)));

        // A sound cache is left as it is.
        result = await ModelHub.DownloadAsync(HubTestBed.Repo, null, _bed.Settings());
        Assert.Equal(0, result.Fetched);
        AssertConsistent(complete: true);
    }
}
