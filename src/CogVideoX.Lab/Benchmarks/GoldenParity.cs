using System.Text.Json;
using CogVideoX.Engine;
using CogVideoX.Models.Text;
using CogVideoX.Models.Transformer;
using CogVideoX.Models.Vae;
using CogVideoX.Weights;

namespace CogVideoX.Lab.Benchmarks;

/// <summary>One stage of one golden run on a device: its largest error against the fixture and the allowed bound.</summary>
public sealed record GoldenCheck(string Style, string Run, string Stage, DType DType, double MaxAbsError, double MaxAbsReference, double Bound, double CpuBound)
{
    public bool Passed => MaxAbsError <= Bound;
}

/// <summary>
/// The golden pipeline runs' model stages on a device: each run's T5 embeddings, every transformer call and the VAE
/// decode, from the fixture's recorded inputs, and the VAE encoder's reference cases, compared with the fixture's outputs by the README's rule (max abs
/// error ≤ tolerance × max(1, max |reference|); 2e-2 on a GPU, 1e-4 on the CPU column, reported alongside).
/// </summary>
public static class GoldenParity
{
    public const double GpuTolerance = 2e-2;
    public const double CpuTolerance = 1e-4;

    /// <summary>tests/fixtures/golden, found from the working directory or the executable's folder upwards.</summary>
    public static string FindFixtures(string? explicitFolder)
    {
        if (explicitFolder is not null)
        {
            if (!Directory.Exists(Path.Combine(explicitFolder, "pipeline_2b_style")))
                throw new CogVideoXException($"{explicitFolder}: not a golden fixture folder (expected pipeline_2b_style/ and pipeline_5b_style/ in it)");
            return explicitFolder;
        }
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "tests", "fixtures", "golden");
                if (Directory.Exists(Path.Combine(candidate, "pipeline_2b_style"))) return candidate;
            }
        }
        throw new CogVideoXException($"the golden fixtures (tests/fixtures/golden) were not found above {Directory.GetCurrentDirectory()}; run from the repository or pass --fixtures <folder>");
    }

    /// <summary>Runs every style, run and stage in each dtype; progress gets one line per check.</summary>
    public static List<GoldenCheck> Run(IBackend device, string fixtures, IReadOnlyList<DType> dtypes, Action<GoldenCheck>? progress = null)
    {
        var checks = new List<GoldenCheck>();
        foreach (var style in new[] { "pipeline_2b_style", "pipeline_5b_style" })
        {
            var folder = Path.Combine(fixtures, style);
            var runs = RunTags(folder);
            foreach (var dtype in dtypes)
            {
                using var t5 = T5Encoder.Load(Path.Combine(folder, "text_encoder"), device, dtype);
                using var transformer = CogVideoXTransformer.Load(Path.Combine(folder, "transformer"), device, dtype);
                using var vae = CogVideoXVae.Load(Path.Combine(folder, "vae"), device, CogVideoXVae.DecodeDType(dtype));  // as the pipeline decodes
                foreach (var run in runs)
                {
                    using var file = SafetensorsFile.Open(Path.Combine(folder, "runs", run + ".safetensors"));
                    foreach (var check in CheckRun(style, run, file, dtype, device, t5, transformer, vae))
                    {
                        checks.Add(check);
                        progress?.Invoke(check);
                    }
                }
            }
        }
        foreach (var check in CheckEncoder(device, fixtures, dtypes))
        {
            checks.Add(check);
            progress?.Invoke(check);
        }
        return checks;
    }

    /// <summary>
    /// The VAE encoder's reference cases (tests/fixtures/reference/vae_encoder, beside the golden folder; skipped where
    /// that folder is absent) in each dtype: mean and log-variance of a one-frame, a 17- and a 49-frame video and a
    /// tiled one, the video given in float32 on the host as a pipeline would hand it over; BF16 encodes in F16, as a
    /// pipeline does (<see cref="CogVideoXVaeEncoder.EncodeDType"/>).
    /// </summary>
    internal static IEnumerable<GoldenCheck> CheckEncoder(IBackend device, string fixtures, IReadOnlyList<DType> dtypes)
    {
        var cases = Path.Combine(fixtures, "..", "reference", "vae_encoder", "vae_encoder_cases.safetensors");
        if (!File.Exists(cases)) yield break;
        using var file = SafetensorsFile.Open(cases);
        foreach (var dtype in dtypes)
        {
            using var encoder = CogVideoXVaeEncoder.Load(Path.Combine(fixtures, "pipeline_2b_style", "vae"), device, CogVideoXVaeEncoder.EncodeDType(dtype));
            string suffix = encoder.DType == dtype ? "" : $" ({encoder.DType.Name()})";  // as a pipeline encodes
            foreach (var (name, tiled) in new[] { ("f1", false), ("f17", false), ("f49", false), ("tiled", true) })
            {
                using var video = file.Load($"{name}_video");
                var options = tiled ? new VaeEncodeOptions { Tiling = new VaeTiling(32, 48, 1.0 / 4, 1.0 / 3) } : null;
                using var dist = encoder.Encode(video, options);
                using (var mean = file.Load($"{name}_mean"))
                    yield return Compare("vae_encoder", name, "encode mean" + suffix, dtype, mean, dist.Mean);
                using (var logVar = file.Load($"{name}_logvar"))
                    yield return Compare("vae_encoder", name, "encode logvar" + suffix, dtype, logVar, dist.LogVar);
            }
        }
    }

    /// <summary>The README's rule: max abs error against max(1, max |reference|) times each tolerance.</summary>
    private static GoldenCheck Compare(string style, string run, string stage, DType dtype, Tensor expected, Tensor actual)
    {
        var e = expected.ToFloatArray();
        var a = actual.ToFloatArray();
        double maxRef = 0, maxErr = 0;
        for (int i = 0; i < e.Length; i++)
        {
            maxRef = Math.Max(maxRef, Math.Abs(e[i]));
            double d = Math.Abs((double)a[i] - e[i]);
            maxErr = double.IsNaN(d) ? double.PositiveInfinity : Math.Max(maxErr, d);
        }
        if (a.Length != e.Length) maxErr = double.PositiveInfinity;
        double scale = Math.Max(1, maxRef);
        return new GoldenCheck(style, run, stage, dtype, maxErr, maxRef, GpuTolerance * scale, CpuTolerance * scale);
    }

    private static List<string> RunTags(string folder)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "runs", "runs.json")));
        return doc.RootElement.EnumerateArray().Select(r => r.GetProperty("tag").GetString()!).ToList();
    }

    private static IEnumerable<GoldenCheck> CheckRun(string style, string run, SafetensorsFile file, DType dtype, IBackend device,
        T5Encoder t5, CogVideoXTransformer transformer, CogVideoXVae vae)
    {
        GoldenCheck Compare(string stage, Tensor expected, Tensor actual) => GoldenParity.Compare(style, run, stage, dtype, expected, actual);

        foreach (var (ids, embeds) in new[] { ("prompt_ids", "prompt_embeds"), ("negative_ids", "negative_embeds") })
        {
            using var input = file.Load(ids);
            using var expected = file.Load(embeds);
            using var actual = t5.Forward(input);
            yield return Compare($"t5 {embeds}", expected, actual);
        }

        int steps = file.Entries.Keys.Count(k => k.StartsWith("transformer_in_step", StringComparison.Ordinal));
        using var prompt = file.Load("prompt_embeds");
        using var negative = file.Load("negative_embeds");
        for (int step = 0; step < steps; step++)
        {
            using var input = file.Load($"transformer_in_step{step}");
            using var expected = file.Load($"transformer_out_step{step}");
            using var timestepTensor = file.Load($"timestep_step{step}");
            float[] timesteps = Array.ConvertAll(timestepTensor.ToLongArray(), t => (float)t);
            using var textHost = input.Dim(0) == 2 ? Ops.Concat(0, negative, prompt) : prompt.Alias();
            using var text = textHost.To(device);
            using var latents = input.To(device);
            using var rotary = transformer.Config.UseRotaryPositionalEmbeddings
                ? transformer.BuildRotaryTables(input.Dim(1), input.Dim(3), input.Dim(4))
                : null;
            using var actual = transformer.Forward(latents, text, timesteps, rotary);
            yield return Compare($"transformer step {step}", expected, actual);
        }

        using (var z = file.Load("vae_input"))
        using (var expected = file.Load("vae_decoded"))
        using (var actual = vae.Decode(z))
            yield return Compare(vae.DType == dtype ? "vae decode" : $"vae decode ({vae.DType.Name()})", expected, actual);
    }
}
