using System.Globalization;

namespace CogVideoX.Weights;

/// <summary>Byte counts as people read them: "512 bytes", "3.4 MiB", "9.7 GiB".</summary>
public static class Sizes
{
    private static readonly string[] s_units = ["bytes", "KiB", "MiB", "GiB", "TiB"];

    public static string Format(long bytes)
    {
        double v = bytes;
        int u = 0;
        while (Math.Abs(v) >= 1024 && u < s_units.Length - 1)
        {
            v /= 1024;
            u++;
        }
        return u == 0 ? $"{bytes} bytes" : $"{v.ToString("0.0", CultureInfo.InvariantCulture)} {s_units[u]}";
    }

    /// <summary>A transfer rate: "12.3 MiB/s".</summary>
    public static string Rate(double bytesPerSecond) =>
        double.IsFinite(bytesPerSecond) && bytesPerSecond >= 0 ? Format((long)bytesPerSecond).Replace("bytes", "B", StringComparison.Ordinal) + "/s" : "?";
}
