using System.Globalization;
using System.Text.RegularExpressions;
using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Models.Lora;

/// <summary>A LoRA file read and the strength it is applied at.</summary>
public sealed record AppliedLora(LoraAdapter Adapter, double Strength);

/// <summary>
/// LoRA adapters fused into the transformer's weights as they load: for each adapted linear layer,
/// <c>W' = W + Σ strength · scale · B·A</c> (and <c>b' = b + Σ strength · scale · bias</c> for a LoRA bias), computed in
/// float32 on the loading backend and rounded once to the dtype the weight is held in. This is what diffusers computes
/// with <c>load_lora_weights</c> + <c>set_adapters(names, weights)</c> — PEFT adds <c>lora_B(lora_A(x)) · scale · weight</c>
/// per adapter at run time, the same sum — and what its <c>fuse_lora</c> writes into the weights (PEFT merges
/// in the weight's dtype, rounding each adapter's delta; here the sum is rounded once, which is at least as close).
/// Fused, a LoRA costs nothing per step; a new strength means loading the transformer again.
/// </summary>
public sealed class LoraSet : IWeightPatch
{
    private readonly Dictionary<string, List<(LoraLayer Layer, double Factor)>> _weights = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<(LoraLayer Layer, double Factor)>> _biases = new(StringComparer.Ordinal);

    public LoraSet(IReadOnlyList<AppliedLora> adapters)
    {
        ArgumentNullException.ThrowIfNull(adapters);
        Adapters = adapters;
        foreach (var (adapter, strength) in adapters)
        {
            LoraSpec.CheckStrength(strength, adapter.Path);
            foreach (var layer in adapter.Layers)
            {
                Add(_weights, layer.Module + ".weight", (layer, strength * layer.Scale));
                if (layer.Bias is not null) Add(_biases, layer.Module + ".bias", (layer, strength * layer.Scale));
            }
        }
    }

    /// <summary>Reads the files of <paramref name="specs"/> (each once, in order).</summary>
    public static LoraSet Open(IReadOnlyList<LoraSpec> specs)
    {
        ArgumentNullException.ThrowIfNull(specs);
        return new LoraSet(specs.Select(s => new AppliedLora(LoraAdapter.Open(s.File), s.Strength)).ToList());
    }

    public IReadOnlyList<AppliedLora> Adapters { get; }

    public bool IsEmpty => _weights.Count == 0 && _biases.Count == 0;

    /// <summary>Checkpoint tensors changed (layer weights and, with LoRA biases, their biases).</summary>
    public IEnumerable<string> ChangedTensors => _weights.Keys.Concat(_biases.Keys);

    public bool Changes(string name) => _weights.ContainsKey(name) || _biases.ContainsKey(name);

    public Tensor Apply(string name, Tensor stored)
    {
        ArgumentNullException.ThrowIfNull(stored);
        var backend = stored.Backend;
        var result = stored.Clone();
        try
        {
            if (_weights.TryGetValue(name, out var layers))
            {
                foreach (var (layer, factor) in layers)
                {
                    using var a = Tensor.FromArray(layer.A, layer.ShapeA, backend);
                    using var b = Tensor.FromArray(layer.B, layer.ShapeB, backend);
                    using var ba = b.MatMul(a);
                    using var delta = ba.Scale((float)factor);
                    using var old = result;
                    result = old.Add(delta);
                }
            }
            if (_biases.TryGetValue(name, out var biases))
            {
                foreach (var (layer, factor) in biases)
                {
                    using var bias = Tensor.FromArray(layer.Bias!, [layer.Out], backend);
                    using var delta = bias.Scale((float)factor);
                    using var old = result;
                    result = old.Add(delta);
                }
            }
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Checks every adapted layer against the model's checkpoint tensors (<paramref name="tensors"/>: names and shapes):
    /// each must be a linear layer of the model with the LoRA's in and out features. Errors name the LoRA key and the
    /// nearest layer the model has, and say when the LoRA was evidently made for another model.
    /// </summary>
    public void Validate(IReadOnlyList<(string Name, int[] Shape)> tensors, string model)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var shapes = tensors.ToDictionary(t => t.Name, t => t.Shape, StringComparer.Ordinal);
        var linears = tensors.Where(t => t.Shape.Length == 2 && t.Name.EndsWith(".weight", StringComparison.Ordinal))
            .Select(t => t.Name[..^".weight".Length]).ToList();
        int layerCount = tensors.Select(t => BlockIndex(t.Name)).DefaultIfEmpty(-1).Max() + 1;
        foreach (var (adapter, _) in Adapters)
        {
            foreach (var layer in adapter.Layers)
            {
                string file = Path.GetFileName(adapter.Path);
                if (!shapes.TryGetValue(layer.Module + ".weight", out var weight) || weight.Length != 2)
                {
                    string what = shapes.TryGetValue(layer.Module + ".weight", out var other)
                        ? $"'{layer.Module}' is not a linear layer of {model} (its weight is {Layout.Format(other)}); LoRA adapts linear layers only"
                        : $"'{layer.Module}' matches no layer of {model}; the nearest is '{Nearest(layer.Module, linears)}'";
                    int block = BlockIndex(layer.Module + ".");
                    string hint = block >= layerCount
                        ? $" — {model} has {layerCount} transformer blocks and the LoRA adapts block {block}: it was made for a larger model (CogVideoX-2b has 30 blocks, 5b 42)"
                        : "";
                    throw Error($"lora: '{file}': {layer.KeyA}: {what}{hint}.");
                }
                if (weight[1] != layer.In || weight[0] != layer.Out)
                {
                    throw Error($"lora: '{file}': layer '{layer.Module}' of {model} is {weight[1]} → {weight[0]} features (weight {Layout.Format(weight)}), " +
                        $"but the LoRA's lora_A is {Layout.Format(layer.ShapeA)} and lora_B {Layout.Format(layer.ShapeB)} ({layer.In} → {layer.Out}): " +
                        "this LoRA was made for another model (CogVideoX-2b and 5b differ in width); use it with the model it was trained on.");
                }
                if (layer.Bias is not null && !shapes.ContainsKey(layer.Module + ".bias"))
                    throw Error($"lora: '{file}': layer '{layer.Module}' of {model} has no bias, but the LoRA has one ('{layer.KeyB[..^".weight".Length]}.bias'); diffusers cannot merge it either.");
            }
        }
    }

    /// <summary>The block index in "transformer_blocks.N.…" (−1 for other names).</summary>
    private static int BlockIndex(string name)
    {
        var m = Regex.Match(name, @"^transformer_blocks\.(\d+)\.", RegexOptions.CultureInvariant);
        return m.Success && int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var i) ? i : -1;
    }

    /// <summary>The candidate with the smallest edit distance (ties: the first in ordinal order).</summary>
    internal static string Nearest(string name, IEnumerable<string> candidates) =>
        candidates.OrderBy(c => EditDistance(name, c)).ThenBy(c => c, StringComparer.Ordinal).FirstOrDefault() ?? "(none)";

    private static int EditDistance(string a, string b)
    {
        var row = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) row[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int up = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = up;
            }
        }
        return row[b.Length];
    }

    private static void Add(Dictionary<string, List<(LoraLayer, double)>> map, string name, (LoraLayer, double) item)
    {
        if (!map.TryGetValue(name, out var list)) map[name] = list = [];
        list.Add(item);
    }

    private static CogVideoXException Error(string message) => new(message, LoraSpec.UsageExitCode);
}
