using System.CommandLine;
using System.Diagnostics;
using CogVideoX.Weights;

namespace CogVideoX.Cli.Commands;

/// <summary>
/// <c>download MODEL [--revision R]</c>: fetches what the pipeline needs from the Hugging Face Hub into the standard
/// cache (the one huggingface_hub uses), resuming partial downloads and verifying every file, then prints where
/// the snapshot is. Honours HF_ENDPOINT, HF_TOKEN, HF_HOME / HF_HUB_CACHE and HF_HUB_OFFLINE.
/// </summary>
internal static class DownloadCommand
{
    public static Command Create(Func<string, string?> environment)
    {
        var model = new Argument<string>("model")
        {
            Description = "A Hugging Face repo id (THUDM/CogVideoX-2b, owner/name@revision) or an alias (2b, 5b).",
        };
        var revision = new Option<string?>("--revision")
        {
            Description = "The branch, tag or commit to download (default: main, or the @revision in the model).",
        };
        var workers = new Option<int>("--max-workers")
        {
            Description = "How many files to download at once.",
            DefaultValueFactory = _ => 8,
        };
        var cmd = new Command("download", "Download a model's pipeline files (configs, tokenizer, safetensors weights) into the Hugging Face cache, resumably and verified.");
        cmd.Arguments.Add(model);
        cmd.Options.Add(revision);
        cmd.Options.Add(workers);
        cmd.SetAction(async (parse, ct) =>
        {
            int maxWorkers = parse.GetValue(workers);
            if (maxWorkers is < 1 or > 64)
                throw new HubException(HubFailure.BadSettings, $"--max-workers {maxWorkers}: give a number of parallel downloads from 1 to 64");
            var settings = HubSettings.FromEnvironment(environment) with { MaxParallelDownloads = maxWorkers };
            var output = parse.InvocationConfiguration.Output;
            var view = DownloadProgressView.For(parse.InvocationConfiguration.Error, environment);
            var clock = Stopwatch.StartNew();
            HubDownloadResult result;
            try
            {
                result = await ModelHub.DownloadAsync(parse.GetValue(model)!, parse.GetValue(revision), settings, view, ct).ConfigureAwait(false);
            }
            finally
            {
                view.Finish();
            }
            var hub = result.Folder.Hub!;
            var name = hub.Revision == result.Commit ? hub.RepoId : $"{hub.RepoId}@{hub.Revision}";
            if (!result.Checked)
                output.WriteLine($"{name} is in the cache as commit {result.Commit} (offline: not checked against the Hub)");
            else if (result.Fetched == 0)
                output.WriteLine($"{name} is commit {result.Commit}: all {result.Files} files ({Sizes.Format(result.Bytes)}) were already in the cache");
            else
                output.WriteLine($"{name} is commit {result.Commit}: {result.Files} files ({Sizes.Format(result.Bytes)}); downloaded {result.Fetched} ({Sizes.Format(result.FetchedBytes)}) in {DownloadProgressView.Duration(clock.Elapsed.TotalSeconds)}");
            output.WriteLine($"snapshot: {result.Folder.Path}");
            return 0;
        });
        return cmd;
    }
}
