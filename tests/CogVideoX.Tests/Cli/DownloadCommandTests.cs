using CogVideoX.Tests.Hub;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Cli;

/// <summary>`cogvideox download` against the loopback Hub: what it prints, and its errors without stack traces.</summary>
public sealed class DownloadCommandTests(ITestOutputHelper log) : IDisposable
{
    private readonly HubTestBed _bed = new();

    public void Dispose() => _bed.Dispose();

    private (int Code, string Out, string Err) Run(IEnumerable<(string, string)> extraEnvironment, params string[] args)
    {
        var variables = new Dictionary<string, string>
        {
            ["HF_ENDPOINT"] = _bed.Hub.Endpoint,
            ["HF_HUB_CACHE"] = _bed.Cache,
            ["HOME"] = _bed.Dir.File("home"), // no token file there
        };
        foreach (var (name, value) in extraEnvironment) variables[name] = value;
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(args, stdout, stderr, name => variables.GetValueOrDefault(name));
        log.WriteLine($"$ cogvideox {string.Join(' ', args)}\n--- stdout\n{stdout}--- stderr\n{stderr}--- exit {code}");
        return (code, stdout.ToString(), stderr.ToString());
    }

    private (int Code, string Out, string Err) Run(params string[] args) => Run([], args);

    [Fact]
    public void DownloadsAndSaysWhereTheSnapshotIs()
    {
        var commit = _bed.AddTiny2b();

        var (code, output, progress) = Run("download", HubTestBed.Repo);

        Assert.Equal(0, code);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches($"^{HubTestBed.Repo}@main is commit {commit}: 12 files \\(7\\.6 MiB\\); downloaded 12 \\(7\\.6 MiB\\) in [0-9.]+ s$", lines[0]);
        Assert.Equal($"snapshot: {_bed.Snapshot(commit)}", lines[1]);
        var log = progress.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal($"{HubTestBed.Repo}: revision main is commit {commit}", log[0]);
        Assert.Equal("fetching model_index.json (411 bytes)", log[1]);
        Assert.Matches(@"^  done model_index.json \(411 bytes in [0-9.]+ s, [0-9.]+ (B|KiB|MiB)/s; git-sha1 verified\)$", log[2]);
        Assert.Contains("fetching 8 files (274.8 KiB)", log);
        Assert.Contains("fetching 3 files (7.4 MiB)", log);
        Assert.Contains(log, l => l.StartsWith("  done transformer/diffusion_pytorch_model.safetensors (2.0 MiB in ", StringComparison.Ordinal) && l.EndsWith("; sha256 verified)", StringComparison.Ordinal));
        Assert.Equal(12, log.Count(l => l.StartsWith("  done ", StringComparison.Ordinal)));

        var again = Run("download", HubTestBed.Repo, "--revision", "main");
        Assert.Equal(0, again.Code);
        Assert.Equal($"{HubTestBed.Repo}@main is commit {commit}: all 12 files (7.6 MiB) were already in the cache\nsnapshot: {_bed.Snapshot(commit)}\n", again.Out.ReplaceLineEndings("\n"));
        Assert.Equal($"{HubTestBed.Repo}: revision main is commit {commit}\n", again.Err.ReplaceLineEndings("\n"));

        var offline = Run([("HF_HUB_OFFLINE", "1")], "download", HubTestBed.Repo);
        Assert.Equal($"{HubTestBed.Repo}@main is in the cache as commit {commit} (offline: not checked against the Hub)\nsnapshot: {_bed.Snapshot(commit)}\n", offline.Out.ReplaceLineEndings("\n"));
    }

    [Fact]
    public void ResumesAndSaysSo()
    {
        _bed.AddTiny2b();
        _bed.Hub.Add(new Fault(FaultStage.Content, FaultKind.DropAt, "vae/diffusion_pytorch_model.safetensors", At: 1_000_000));

        var (code, _, progress) = Run([("HF_HUB_DOWNLOAD_TIMEOUT", "2")], "download", HubTestBed.Repo);

        Assert.Equal(0, code);
        Assert.Contains("  note: vae/diffusion_pytorch_model.safetensors: the connection closed after 976.6 KiB of 4.6 MiB; resuming at 976.6 KiB in 1 s (try 2 of 5)", progress.Split('\n'));
    }

    [Fact]
    public void ErrorsArePrintedWithoutAStackTrace()
    {
        _bed.AddTiny2b("test/gated");
        _bed.Hub.AddRepo("test/gated").Gated = true;

        var gated = Run("download", "test/gated");
        Assert.Equal(1, gated.Code);
        Assert.StartsWith("test/gated: revision main is commit ", gated.Err);
        Assert.Contains($"\nerror: test/gated is a gated model (401): its files can be downloaded only by accounts that accepted its conditions. Log in at {_bed.Hub.Endpoint}, accept them on {_bed.Hub.Endpoint}/test/gated", gated.Err.ReplaceLineEndings("\n"));
        Assert.DoesNotContain("   at ", gated.Err);

        var offline = Run([("HF_HUB_OFFLINE", "1")], "download", "2b");
        Assert.Equal(1, offline.Code);
        Assert.StartsWith("error: 2b (= THUDM/CogVideoX-2b) is not in the Hugging Face cache", offline.Err);
        Assert.Contains("Offline mode is on (HF_HUB_OFFLINE), so nothing is downloaded", offline.Err);

        var endpoint = Run([("HF_ENDPOINT", "hf-mirror.com")], "download", "2b");
        Assert.Equal("error: HF_ENDPOINT='hf-mirror.com' is not an http(s) URL; set it to a Hub mirror's address (such as https://hf-mirror.com) or unset it to use https://huggingface.co\n", endpoint.Err.ReplaceLineEndings("\n"));

        var workers = Run("download", "2b", "--max-workers", "0");
        Assert.Equal("error: --max-workers 0: give a number of parallel downloads from 1 to 64\n", workers.Err.ReplaceLineEndings("\n"));
        Assert.Equal(1, _bed.Hub.Requests.Count(r => r.Kind == "api"));
    }

    [Fact]
    public async Task ACommandThatNeedsAModelDownloadsItWithANotice()
    {
        var commit = _bed.AddTiny2b();
        var messages = new StringWriter();
        Func<string, string?> environment = name => name switch { "HF_ENDPOINT" => _bed.Hub.Endpoint, "HF_HUB_CACHE" => _bed.Cache, _ => null };

        var folder = await CogVideoX.Cli.ModelResolution.ResolveAsync(HubTestBed.Repo, messages, environment, CancellationToken.None);

        Assert.Equal(_bed.Snapshot(commit), folder.Path);
        var lines = messages.ToString().ReplaceLineEndings("\n").Split('\n');
        Assert.Equal($"{HubTestBed.Repo} is not (completely) in the Hugging Face cache at {_bed.Cache}: downloading it from {_bed.Hub.Endpoint}; later runs use the cache", lines[0]);
        Assert.StartsWith("  first the index, configs and tokenizer (kilobytes), then the weights: their count and size are printed before", lines[1]);
        Assert.Equal($"{HubTestBed.Repo}: revision main is commit {commit}", lines[2]);

        var quiet = new StringWriter();
        await CogVideoX.Cli.ModelResolution.ResolveAsync(HubTestBed.Repo, quiet, environment, CancellationToken.None);
        Assert.Equal("", quiet.ToString());
    }
}
