using CogVideoX.Weights;

namespace CogVideoX.Cli;

/// <summary>
/// The <c>--model</c> of a command that runs a model (generate, bench, ...): a folder, the cache, or — announced on
/// the error stream, with the download's progress — a download from the Hub (never when HF_HUB_OFFLINE is set).
/// </summary>
internal static class ModelResolution
{
    public static async Task<ModelFolder> ResolveAsync(string model, TextWriter messages, Func<string, string?> environment, CancellationToken ct)
    {
        var settings = HubSettings.FromEnvironment(environment);
        var view = DownloadProgressView.For(messages, environment);
        try
        {
            // Before any byte: what comes, and that the multi-gigabyte part is sized before it starts.
            void Notice(string line)
            {
                messages.WriteLine(line);
                messages.WriteLine("  first the index, configs and tokenizer (kilobytes), then the weights: their count and size are printed before their transfer starts; Ctrl+C stops it and the next run resumes");
            }
            return await ModelHub.ResolveAsync(model, settings, view, notice: Notice, ct).ConfigureAwait(false);
        }
        finally
        {
            view.Finish();
        }
    }
}
