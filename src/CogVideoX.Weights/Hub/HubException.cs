using CogVideoX.Engine;

namespace CogVideoX.Weights;

/// <summary>What went wrong when finding or downloading a model on the Hugging Face Hub.</summary>
public enum HubFailure
{
    /// <summary>An environment variable or setting cannot be used.</summary>
    BadSettings,

    /// <summary>Offline (<c>HF_HUB_OFFLINE</c>) and the model is not (completely) in the cache.</summary>
    Offline,

    /// <summary>The token was refused, or a private repo needs one.</summary>
    Unauthorized,

    /// <summary>A gated repo whose conditions the token's account has not accepted.</summary>
    Gated,

    RepoNotFound,

    RevisionNotFound,

    FileNotFound,

    /// <summary>The repo is not a diffusers pipeline this program can run (no model_index.json, pickle-only weights, ...).</summary>
    NotAPipeline,

    /// <summary>The cache's disk is (or would be) full.</summary>
    DiskFull,

    /// <summary>A downloaded file's SHA-256 (or git blob id) differs from the one the server announced.</summary>
    ChecksumMismatch,

    /// <summary>The connection failed or stalled on every try.</summary>
    ConnectionLost,

    /// <summary>The server kept answering with an error (5xx, 429) or too slowly.</summary>
    ServerError,

    /// <summary>The server answered something the Hub does not (missing headers, malformed JSON, unsafe names).</summary>
    BadResponse,

    /// <summary>The cache cannot be written (permissions, a file in use by another download).</summary>
    CacheNotWritable,
}

/// <summary>A Hub or cache problem the user can act on; <see cref="Failure"/> says which kind.</summary>
public sealed class HubException : CogVideoXException
{
    public HubException(HubFailure failure, string message) : base(message) => Failure = failure;

    public HubException(HubFailure failure, string message, Exception inner) : base(message, inner) => Failure = failure;

    public HubFailure Failure { get; }
}
