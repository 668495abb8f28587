using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace CogVideoX.Weights;

/// <summary>
/// Checks downloaded bytes against the ETag the Hub named them by: a 64-digit hex ETag is the SHA-256 of an LFS
/// file; a 40-digit one is the git blob id of a small file, SHA-1 of <c>"blob {size}\0"</c> and the content. Any
/// other ETag (some mirrors) cannot be checked beyond the size. Fed incrementally, so a resumed download hashes
/// the part already on disk once and then only the new bytes.
/// </summary>
internal sealed class BlobVerifier : IDisposable
{
    private readonly IncrementalHash? _hash;
    private readonly long _size;

    public BlobVerifier(string etag, long size)
    {
        Etag = etag.ToLowerInvariant();
        _size = size;
        Algorithm = IsHex(Etag, 64) ? "sha256" : IsHex(Etag, 40) ? "git-sha1" : null;
        _hash = Algorithm switch
        {
            "sha256" => IncrementalHash.CreateHash(HashAlgorithmName.SHA256),
            "git-sha1" => IncrementalHash.CreateHash(HashAlgorithmName.SHA1),
            _ => null,
        };
        Reset();
    }

    public string Etag { get; }

    /// <summary>"sha256", "git-sha1", or null when the ETag is not a digest this can check.</summary>
    public string? Algorithm { get; }

    /// <summary>Starts over (a server that ignored a resume request sends the file from its first byte).</summary>
    public void Reset()
    {
        if (_hash is null) return;
        _hash.GetHashAndReset();
        if (Algorithm == "git-sha1")
            _hash.AppendData(Encoding.ASCII.GetBytes($"blob {_size.ToString(CultureInfo.InvariantCulture)}\0"));
    }

    public void Append(ReadOnlySpan<byte> bytes) => _hash?.AppendData(bytes);

    /// <summary>The digest of everything appended, in lowercase hex; null when the ETag is not checkable.</summary>
    public string? Digest() => _hash is null ? null : Convert.ToHexStringLower(_hash.GetHashAndReset());

    public void Dispose() => _hash?.Dispose();

    private static bool IsHex(string text, int length) => text.Length == length && text.All(char.IsAsciiHexDigitLower);
}
