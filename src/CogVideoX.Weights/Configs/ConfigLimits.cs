using System.Globalization;

namespace CogVideoX.Weights;

/// <summary>
/// Range checks applied when a config file is loaded, before anything is sized from it: a downloaded or edited config
/// can hold any number (num_layers 1e9, attention_head_dim 2³¹−1), and the code that builds tensor lists, tables and
/// shapes from these values must never see one that exhausts memory or overflows. The limits are generous — the
/// published CogVideoX configs sit far inside them — and each error names the key, the value, the range and the
/// published value.
/// </summary>
internal readonly struct ConfigLimits(string path)
{
    /// <summary>An integer key within [min, max]; <paramref name="published"/> says what the released models use.</summary>
    public void Range(string key, long value, long min, long max, string published)
    {
        if (value >= min && value <= max) return;
        throw new WeightsException(
            $"{path}: {key} is {value.ToString(CultureInfo.InvariantCulture)}; this tool accepts {N(min)} to {N(max)} " +
            $"(the published CogVideoX models use {published}). {Advice}");
    }

    /// <summary>A product of keys (a hidden size) within [1, max].</summary>
    public void Product(string keys, long value, long max, string published)
    {
        if (value >= 1 && value <= max) return;
        throw new WeightsException(
            $"{path}: {keys} is {value.ToString(CultureInfo.InvariantCulture)}; this tool accepts at most {N(max)} " +
            $"(the published CogVideoX models use {published}). {Advice}");
    }

    /// <summary>A finite number greater than zero (an epsilon, a scale).</summary>
    public void Positive(string key, double value, string published)
    {
        if (double.IsFinite(value) && value > 0) return;
        throw new WeightsException(
            $"{path}: {key} is {value.ToString("G", CultureInfo.InvariantCulture)}; it must be a finite number greater than 0 " +
            $"(the published CogVideoX models use {published}). {Advice}");
    }

    /// <summary>A list of at most <paramref name="maxCount"/> entries, each within [min, max].</summary>
    public void List(string key, int[] values, int maxCount, long min, long max, string published)
    {
        if (values.Length == 0 || values.Length > maxCount)
            throw new WeightsException(
                $"{path}: {key} has {values.Length} entries; this tool accepts 1 to {maxCount} " +
                $"(the published CogVideoX models use {published}). {Advice}");
        for (int i = 0; i < values.Length; i++)
            if (values[i] < min || values[i] > max)
                throw new WeightsException(
                    $"{path}: {key}[{i}] is {values[i].ToString(CultureInfo.InvariantCulture)}; each entry must be {N(min)} to {N(max)} " +
                    $"(the published CogVideoX models use {published}). {Advice}");
    }

    private const string Advice = "The file is corrupt or describes another kind of model; use the config.json that came with the weights.";

    private static string N(long v) => v.ToString("#,0", CultureInfo.InvariantCulture);
}
