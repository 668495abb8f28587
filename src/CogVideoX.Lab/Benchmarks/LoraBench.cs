using System.Diagnostics;
using CogVideoX.Engine;
using CogVideoX.Engine.Testing;
using CogVideoX.Models.Lora;
using CogVideoX.Models.Transformer;
using CogVideoX.Weights;

namespace CogVideoX.Lab.Benchmarks;

/// <summary>What the LoRA benchmark applies: real files, or random adapters of a rank on a set of layers.</summary>
public sealed record LoraBenchSettings
{
    /// <summary>LoRA files to use (the first for "one LoRA", the first two for "two"); empty: random adapters.</summary>
    public IReadOnlyList<LoraSpec> Files { get; init; } = [];

    /// <summary>Rank of the random adapters.</summary>
    public int Rank { get; init; } = 64;

    /// <summary>Layers of each block the random adapters adapt ("attn": to_q, to_k, to_v, to_out.0; "all": every linear of a block).</summary>
    public string Targets { get; init; } = "attn";
}

public static partial class ModelBench
{
    private static readonly string[] s_attentionLayers = ["attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0"];

    /// <summary>
    /// LoRA's cost: the transformer's load (random weights) and its CFG step with no, one and two adapters fused in
    /// (fused, a step should cost what the plain one does), and the extra work an unfused adapter would add to every
    /// step — PEFT's run-time path, <c>y += scale · (x·Aᵀ)·Bᵀ</c> on each adapted layer's input — timed on the same
    /// token counts. Random adapters are written to a temporary safetensors file (bf16, as trainers save them) and read
    /// back through the real loader, so the load figures include reading and checking the file.
    /// </summary>
    public static IReadOnlyList<StageResult> Lora(IBackend backend, BenchSettings s, LoraBenchSettings lora, Action<string>? log = null)
    {
        var config = LoadTransformerConfig(s);
        var shapes = CogVideoXTransformer.ParameterShapes(config);
        var temporary = new List<string>();
        try
        {
            var specs = lora.Files.ToList();
            for (int i = specs.Count; i < 2; i++)
            {
                var file = Path.Combine(Path.GetTempPath(), $"cogvideox-bench-lora-{Environment.ProcessId}-{i}.safetensors");
                WriteRandomLora(file, shapes, config, lora, s.Seed + 10 + i);
                temporary.Add(file);
                specs.Add(new LoraSpec(file, 0.8));
            }
            var results = new List<StageResult>();
            var sets = new List<(string Name, LoraSet? Set)> { ("no LoRA", null) };
            for (int n = 1; n <= 2; n++)
            {
                var clock = Stopwatch.StartNew();
                var set = LoraSet.Open(specs.Take(n).ToList());
                CogVideoXTransformer.CheckLora(set, config);
                log?.Invoke($"  read and checked {n} LoRA file(s) in {clock.Elapsed.TotalSeconds:0.000} s: {string.Join(", ", set.Adapters.Select(a => a.Adapter))}");
                sets.Add(($"{n} LoRA{(n > 1 ? "s" : "")} fused", set));
            }
            foreach (var (name, set) in sets)
            {
                var loads = new List<double>();
                CogVideoXTransformer? model = null;
                try
                {
                    for (int i = 0; i < Math.Max(1, Math.Min(s.Repeats, 2)); i++)
                    {
                        model?.Dispose();
                        backend.Synchronize();
                        var clock = Stopwatch.StartNew();
                        using (var checkpoint = Checkpoint.Random("random transformer weights", s.Seed, shapes))
                            model = new CogVideoXTransformer(config, checkpoint.Scope(backend, s.DType, set));
                        backend.Synchronize();
                        loads.Add(clock.Elapsed.TotalSeconds);
                        log?.Invoke($"  load ({name}) {i + 1}: {loads[^1]:0.000} s");
                    }
                    results.Add(new StageResult("load", $"{s.ModelName} transformer load, random weights {s.DType.Name()}, {name}{Describe(set)}", loads, 0, model!.WeightBytes));
                    var step = TransformerStep(backend, s, config, model!, log, $"step ({name})");
                    results.Add(step with { Stage = "step", Description = $"{s.ModelName} transformer CFG step {s.DType.Name()}, {name}" });
                }
                finally
                {
                    model?.Dispose();
                }
            }
            foreach (var (name, set) in sets.Skip(1))
                results.Add(UnfusedOverhead(backend, s, config, set!, log) with { Description = $"extra work per step if kept apart (unfused, PEFT's run-time path), {name.Replace(" fused", "", StringComparison.Ordinal)}{Describe(set)}" });
            return results;
        }
        finally
        {
            foreach (var file in temporary) File.Delete(file);
        }
    }

    private static string Describe(LoraSet? set) => set is null ? ""
        : $": {set.Adapters.Sum(a => a.Adapter.Layers.Count)} layers, rank {string.Join("/", set.Adapters.SelectMany(a => a.Adapter.Layers).Select(l => l.Rank).Distinct())}";

    private static StageResult TransformerStep(IBackend backend, BenchSettings s, TransformerConfig config, CogVideoXTransformer model, Action<string>? log, string what)
    {
        using var scope = new TensorScope();
        var inputs = new OpInputs(backend, s.DType, s.Seed);
        var latents = inputs.Uniform([2, s.LatentFrames, config.InChannels, s.LatentHeight, s.LatentWidth], -2f, 2f);
        var text = inputs.Uniform([2, s.TextLength, config.TextEmbedDim], -1f, 1f);
        using var rotary = config.UseRotaryPositionalEmbeddings ? model.BuildRotaryTables(s.LatentFrames, s.LatentHeight, s.LatentWidth) : null;
        var times = Repeat(backend, s, () => model.Forward(latents, text, [999f, 999f], rotary).Dispose(), log, what);
        return new StageResult("step", "", times.Seconds, times.Peak, model.WeightBytes);
    }

    /// <summary>The run-time LoRA path on every adapted layer: x [rows, in] → x·Aᵀ [rows, r] → ·Bᵀ [rows, out], scaled, added to y.</summary>
    private static StageResult UnfusedOverhead(IBackend backend, BenchSettings s, TransformerConfig config, LoraSet set, Action<string>? log)
    {
        int videoTokens = s.LatentFrames * (s.LatentHeight / config.PatchSize) * (s.LatentWidth / config.PatchSize);
        using var scope = new TensorScope();
        var inputs = new OpInputs(backend, s.DType, s.Seed + 5);
        var work = new List<(Tensor X, Tensor A, Tensor B, Tensor Y, float Scale)>();
        // One input and one base output per shape, shared by the layers of that shape: in a real step they exist anyway
        // (the layer's input and its base output), and the time does not depend on their values. A pair per layer would
        // hold 32 GiB for one 2b adapter and be drawn value by value on the host.
        var inputsByShape = new Dictionary<(int Rows, int Features), Tensor>();
        Tensor Shared(int rows, int features)
        {
            if (!inputsByShape.TryGetValue((rows, features), out var t))
                inputsByShape[(rows, features)] = t = inputs.Uniform([rows, features], -1f, 1f);
            return t;
        }
        foreach (var (adapter, strength) in set.Adapters)
            foreach (var layer in adapter.Layers)
            {
                // Rows of the layer's input in a CFG step (batch 2): text and video tokens go through the blocks together.
                int rows = 2 * (layer.Module.Contains("norm", StringComparison.Ordinal) || layer.Module.StartsWith("time_embedding", StringComparison.Ordinal) ? 1
                    : layer.Module.StartsWith("patch_embed", StringComparison.Ordinal) ? s.TextLength
                    : layer.Module.StartsWith("proj_out", StringComparison.Ordinal) ? videoTokens
                    : s.TextLength + videoTokens);
                var a = Tensor.FromArray(layer.A, layer.ShapeA, CpuBackend.Instance, DType.F32);
                var b = Tensor.FromArray(layer.B, layer.ShapeB, CpuBackend.Instance, DType.F32);
                work.Add((Shared(rows, layer.In), Place(a, backend, s.DType), Place(b, backend, s.DType),
                    Shared(rows, layer.Out), (float)(strength * layer.Scale)));
            }
        var times = Repeat(backend, s, () =>
        {
            foreach (var (x, a, b, y, scale) in work)
            {
                using var down = x.Linear(a);
                using var up = down.Linear(b);
                using var scaled = up.Scale(scale);
                using var sum = y.Add(scaled);
            }
        }, log, "unfused LoRA work");
        return new StageResult("unfused", "", times.Seconds, times.Peak, 0);
    }

    private static Tensor Place(Tensor t, IBackend backend, DType dtype)
    {
        using var typed = t.To(dtype);
        return typed.To(backend);
    }

    /// <summary>A LoRA file of random bf16 adapters (PEFT keys with the transformer. prefix, no metadata: scale 1).</summary>
    private static void WriteRandomLora(string path, IReadOnlyList<(string Name, int[] Shape)> shapes, TransformerConfig config, LoraBenchSettings lora, int seed)
    {
        var byName = shapes.ToDictionary(p => p.Name, p => p.Shape, StringComparer.Ordinal);
        var layers = new List<(string Module, int In, int Out)>();
        for (int block = 0; block < config.NumLayers; block++)
        {
            var modules = lora.Targets == "all"
                ? shapes.Where(p => p.Shape.Length == 2 && p.Name.StartsWith($"transformer_blocks.{block}.", StringComparison.Ordinal) && p.Name.EndsWith(".weight", StringComparison.Ordinal))
                    .Select(p => p.Name[..^".weight".Length])
                : s_attentionLayers.Select(l => $"transformer_blocks.{block}.{l}");
            foreach (var module in modules)
            {
                var w = byName[module + ".weight"];
                layers.Add((module, w[1], w[0]));
            }
        }
        var entries = layers.SelectMany(l => new[]
        {
            ($"transformer.{l.Module}.lora_A.weight", DType.BF16, new[] { lora.Rank, l.In }),
            ($"transformer.{l.Module}.lora_B.weight", DType.BF16, new[] { l.Out, lora.Rank }),
        }).ToList();
        var inputs = new OpInputs(CpuBackend.Instance, DType.F32, seed);
        SafetensorsWriter.Write(path, entries, i =>
        {
            using var values = inputs.Uniform(entries[i].Item3, -0.02f, 0.02f);
            return values.To(DType.BF16);
        });
    }
}
