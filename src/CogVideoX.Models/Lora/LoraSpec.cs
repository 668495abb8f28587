using System.Globalization;
using CogVideoX.Engine;

namespace CogVideoX.Models.Lora;

/// <summary>
/// One LoRA file to apply and its strength, as the user gives it: <c>FILE</c> or <c>FILE:STRENGTH</c> (the weight
/// diffusers' <c>set_adapters</c> takes; 1 when left out). The strength multiplies the adapter's own scale
/// (lora_alpha / rank), as diffusers does.
/// </summary>
public sealed record LoraSpec(string File, double Strength = 1.0)
{
    /// <summary>Exit code of a LoRA the user has to change (the usage code of every invalid argument).</summary>
    public const int UsageExitCode = 2;

    /// <summary>"FILE" or "FILE:STRENGTH"; a colon followed by a path (a Windows drive, a folder) is part of the file name.</summary>
    public static LoraSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = text.Trim();
        if (text.Length == 0)
            throw Usage("lora: an empty value; give a LoRA file as FILE or FILE:STRENGTH (for example style.safetensors:0.8)");
        int colon = text.LastIndexOf(':');
        if (colon < 0 || text.AsSpan(colon + 1).IndexOfAny('/', '\\') >= 0)
            return new LoraSpec(text);
        string file = text[..colon], strength = text[(colon + 1)..].Trim();
        if (file.Length == 0)
            throw Usage($"lora: '{text}' names no file before the colon; give FILE or FILE:STRENGTH (for example style.safetensors:0.8)");
        return new LoraSpec(file, ParseStrength(strength, text));
    }

    /// <summary>A strength as text: a finite number (negative subtracts the adapter, as in diffusers).</summary>
    public static double ParseStrength(string strength, string context)
    {
        if (!double.TryParse(strength, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            throw Usage($"lora: the strength '{strength}' in '{context}' is not a number; give FILE:STRENGTH with a number such as 0.8 " +
                "(1 applies the LoRA as trained, 0 turns it off, values in between weaken it)");
        CheckStrength(value, context);
        return value;
    }

    /// <summary>Refuses NaN and infinities.</summary>
    public static void CheckStrength(double value, string context)
    {
        if (!double.IsFinite(value))
            throw Usage($"lora: the strength of '{context}' is {value.ToString(CultureInfo.InvariantCulture)}; use a finite number such as 0.8");
    }

    /// <summary>
    /// Several LoRAs in one setting: "FILE[:STRENGTH]" entries separated by ';' ("a.safetensors:0.8; b.safetensors");
    /// null, empty or "none" is no LoRA.
    /// </summary>
    public static IReadOnlyList<LoraSpec> ParseList(string? text)
    {
        if (text is null || text.Trim().Length == 0 || text.Trim().Equals("none", StringComparison.OrdinalIgnoreCase)) return [];
        var parts = text.Split(';');
        if (parts.Any(p => p.Trim().Length == 0))
            throw Usage($"lora: '{text}' has an empty entry; separate LoRA files with ';' as in \"a.safetensors:0.8; b.safetensors:0.5\"");
        return parts.Select(Parse).ToList();
    }

    /// <summary>The canonical text of a list ("FILE:STRENGTH; …"; null for none), so equal lists compare equal as text.</summary>
    public static string? FormatList(IEnumerable<LoraSpec> specs)
    {
        var list = specs.ToList();
        return list.Count == 0 ? null : string.Join("; ", list.Select(s => s.ToString()));
    }

    /// <summary>"FILE:STRENGTH", the form <see cref="Parse"/> reads.</summary>
    public override string ToString() => $"{File}:{Strength.ToString("R", CultureInfo.InvariantCulture)}";

    private static CogVideoXException Usage(string message) => new(message, UsageExitCode);
}

/// <summary>What a run applied, for sidecars: the file (full path), its SHA-256, the strength and the layers it adapts.</summary>
public sealed record LoraRecord(string File, string Sha256, double Strength, int Layers);
