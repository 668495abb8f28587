namespace CogVideoX.Weights;

/// <summary>
/// What a model download reports while it runs. Called from several download tasks at once: implementations must
/// be thread-safe and quick (a display throttles its redraws itself). All methods have empty defaults.
/// </summary>
public interface IDownloadProgress
{
    /// <summary>The Hub says the revision is this commit.</summary>
    void Resolved(string repoId, string revision, string commit) { }

    /// <summary>
    /// These files will be fetched, <paramref name="alreadyCached"/> others of this stage are in the cache (called once
    /// per stage: model_index.json, configs and tokenizer, weights). Sizes may be unknown (null).
    /// </summary>
    void Planned(IReadOnlyList<(string Path, long? Size)> files, int alreadyCached) { }

    /// <summary>A file's transfer starts, at <paramref name="resumedFrom"/> bytes when a partial download is resumed.</summary>
    void FileStarted(string path, long size, long resumedFrom) { }

    /// <summary>The file now holds <paramref name="bytes"/> bytes (may go back to 0 when a server ignores the resume request).</summary>
    void FileAdvanced(string path, long bytes) { }

    /// <summary>Something worth a line: a retry, a restarted file, a blob found in the cache.</summary>
    void Note(string path, string message) { }

    /// <summary>The file is verified and in the cache; <paramref name="verification"/> says how ("sha256 ok").</summary>
    void FileDone(string path, long size, string verification) { }
}
