using CogVideoX.Engine;

namespace CogVideoX.Models.Text;

/// <summary>
/// A prompt as the text encoder reads it: <see cref="Ids"/> and <see cref="Mask"/> hold exactly
/// <see cref="MaxLength"/> entries (the tokens, <c>&lt;/s&gt;</c>, then <c>&lt;pad&gt;</c>). When the prompt needs
/// more, the tokens past the limit are dropped (the <c>&lt;/s&gt;</c> is kept) and <see cref="TruncatedText"/> says
/// which part of the prompt the model does not see.
/// </summary>
public sealed class TokenizedPrompt
{
    internal TokenizedPrompt(string text, long[] ids, long[] mask, int tokenCount, int maxLength, string? truncatedText)
    {
        Text = text;
        Ids = ids;
        Mask = mask;
        TokenCount = tokenCount;
        MaxLength = maxLength;
        TruncatedText = truncatedText;
    }

    public string Text { get; }

    /// <summary>Token ids, padded to <see cref="MaxLength"/>.</summary>
    public long[] Ids { get; }

    /// <summary>1 for the prompt's tokens and its <c>&lt;/s&gt;</c>, 0 for padding.</summary>
    public long[] Mask { get; }

    /// <summary>How many tokens the whole prompt needs, its <c>&lt;/s&gt;</c> included (may exceed <see cref="MaxLength"/>).</summary>
    public int TokenCount { get; }

    /// <summary>How many tokens the model reads.</summary>
    public int MaxLength { get; }

    /// <summary>
    /// The end of the prompt the model does not see, from the first word the limit falls in (a word cut in the middle
    /// is counted as cut), as written in the prompt; null when everything fits.
    /// </summary>
    public string? TruncatedText { get; }

    public bool IsTruncated => TruncatedText is not null;

    /// <summary>A sentence for the user when the prompt was cut, else null.</summary>
    public string? TruncationMessage => TruncatedText is null
        ? null
        : $"The prompt is {TokenCount} tokens; the model reads {MaxLength}; these words were cut: \"{TruncatedText}\"";

    /// <summary>The ids as an I64 tensor [1, MaxLength] on the backend (CPU when null).</summary>
    public Tensor ToTensor(IBackend? backend = null) => Tensor.FromArray(Ids, new[] { 1, Ids.Length }, backend);
}
