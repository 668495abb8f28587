using System.Globalization;
using System.Text.RegularExpressions;

namespace CogVideoX.Engine;

/// <summary>
/// COGVIDEOX_KERNEL_DEFINES ("NAME=VALUE NAME=VALUE", e.g. "ATTN_EXP_EMU=2"): a development knob that A/B-tests a GPU
/// kernel's compile-time variant in the shipped binary on the GPU machine, which has no compiler for the rest of it.
/// Parsed here rather than in the CUDA backend because host code outside it follows some defines too: the CPU
/// emulation of the 8-bit attention steps its softmax as the wgmma kernel was compiled (SAGE90_KEYS).
/// </summary>
public static partial class KernelDefines
{
    /// <summary>The environment variable.</summary>
    public const string Variable = "COGVIDEOX_KERNEL_DEFINES";

    /// <summary>
    /// The compiler's -D options for a value of <see cref="Variable"/> (none for null or blank). Anything but NAME=VALUE
    /// pairs (upper-case name, plain value; separated by spaces, commas or semicolons) is refused, as the value goes to
    /// the compiler; the definitions are part of the compiled kernels' cache key.
    /// </summary>
    public static string[] Options(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return [];
        var defines = new List<string>();
        foreach (var token in value.Split([' ', ',', ';'], StringSplitOptions.RemoveEmptyEntries))
        {
            if (!Definition().IsMatch(token))
                throw new CogVideoXException(
                    $"{Variable}: '{token}' is not a NAME=VALUE macro definition (upper-case name, plain value); " +
                    $"write e.g. {Variable}=\"ATTN_EXP_EMU=2\", or unset it");
            defines.Add("-D" + token);
        }
        return [.. defines];
    }

    /// <summary>
    /// The integer value <see cref="Variable"/> gives the macro <paramref name="name"/>, or null: for what a define
    /// changes on the host (a launch's geometry, the emulation's numerics), which must match the kernel as compiled.
    /// </summary>
    public static int? Integer(string name) => Integer(name, Environment.GetEnvironmentVariable(Variable));

    /// <summary><see cref="Integer(string)"/> for a given value of the variable.</summary>
    public static int? Integer(string name, string? value)
    {
        foreach (var define in Options(value))
        {
            var parts = define[2..].Split('=', 2);
            if (parts[0] == name && int.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int v))
                return v;
        }
        return null;
    }

    [GeneratedRegex("^[A-Z_][A-Z0-9_]*=[A-Za-z0-9_.+-]+$")]
    private static partial Regex Definition();
}
