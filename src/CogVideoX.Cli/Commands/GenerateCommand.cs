using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Lab;
using CogVideoX.Media;
using CogVideoX.Weights;

namespace CogVideoX.Cli.Commands;

/// <summary>
/// <c>generate</c>: one prompt to one MP4 (+ its JSON sidecar), through <see cref="PipelineRenderer"/> — the same
/// code path as the experiment runner. This class only turns flags into <see cref="GenerationSettings"/>, picks the
/// output names and prints progress and the summary.
/// </summary>
internal static class GenerateCommand
{
    private static readonly Option<string?> s_promptFile = new("--prompt-file")
    {
        Description = "Name of a prompt in prompts/ (prompts/NAME.txt, looked for in the current directory, then the repository). Adding a prompt is adding a file.",
        HelpName = "NAME",
    };

    private static readonly Option<string?> s_prompt = new("--prompt") { Description = "The prompt itself (instead of --prompt-file).", HelpName = "TEXT" };

    private static readonly Option<string?> s_negativePrompt = new("--negative-prompt") { Description = "What the video should not show (used when guidance > 1).", HelpName = "TEXT" };

    private static readonly Option<string> s_model = new("--model")
    {
        Description = "2b, 5b, 5b-i2v (image to video), 1.5 (THUDM/CogVideoX1.5-5B), 1.5-i2v, a diffusers pipeline folder, or a Hugging Face repo id in the local cache (owner/name[@revision]).",
        DefaultValueFactory = _ => "2b",
    };

    private static readonly Option<int> s_steps = new("--steps") { Description = "Denoising steps.", DefaultValueFactory = _ => GenerationDefaults.Steps };

    private static readonly Option<double> s_guidance = new("--guidance") { Description = "Classifier-free guidance scale (1 or less: none).", DefaultValueFactory = _ => GenerationDefaults.Guidance };

    private static readonly Option<int> s_frames = new("--frames") { Description = "Video frames, 4k+1 (default: the model's; 49 for CogVideoX 1.0, 81 for 1.5)." };

    private static readonly Option<int> s_fps = new("--fps") { Description = "Frames per second of the MP4 (default: the model's; 8 for CogVideoX 1.0, 16 for 1.5)." };

    private static readonly Option<long> s_seed = new("--seed") { Description = "Seed of the torch-compatible CPU generator (same seed, same latents as diffusers).", DefaultValueFactory = _ => GenerationDefaults.Seed };

    private static readonly Option<int> s_height = new("--height") { Description = "Height in pixels, a multiple of 16 (default: the model's; 480 for CogVideoX 1.0, 768 for 1.5)." };

    private static readonly Option<int> s_width = new("--width") { Description = "Width in pixels, a multiple of 16 (default: the model's; 720 for CogVideoX 1.0, 1360 for 1.5)." };

    private static readonly Option<string?> s_scheduler = new("--scheduler") { Description = "ddim or dpm (default: ddim for 2b, dpm for 5b).", HelpName = "ddim|dpm" };

    private static readonly Option<bool> s_dynamicCfg = new("--dynamic-cfg") { Description = "Raise the guidance scale over the steps (default: on with dpm, off with ddim)." };

    private static readonly Option<bool> s_noDynamicCfg = new("--no-dynamic-cfg") { Description = "Keep the guidance scale fixed (turns off the 5b default)." };

    private static readonly Option<string?> s_dtype = new("--dtype") { Description = "f32, f16 or bf16 (default: f32 on the CPU; on a GPU f16 for 2b, bf16 for 5b).", HelpName = "f32|f16|bf16" };

    private static readonly Option<string> s_device = new("--device")
    {
        Description = "auto (the GPU when one works, else the CPU; it says which and why), cpu, cuda or cuda:N.",
        DefaultValueFactory = _ => DeviceSelection.Auto,
        HelpName = "auto|cpu|cuda[:N]",
    };

    private static readonly Option<string> s_memory = new("--memory")
    {
        Description = "auto (chosen from the free GPU memory), full (all models stay on the GPU), balanced (each model on the GPU only while it runs) or low (weights stream from host memory; the VAE decodes in tiles).",
        DefaultValueFactory = _ => "auto",
        HelpName = "auto|full|balanced|low",
    };

    private static readonly Option<string> s_cache = new("--cache")
    {
        Description = "Step caching, a fast mode: none (every step computed, the default), teacache or fbcache (first block cache). Reused steps are approximations; see docs/fast-modes.md.",
        DefaultValueFactory = _ => "none",
        HelpName = "none|teacache|fbcache",
    };

    private static readonly Option<double?> s_cacheThreshold = new("--cache-threshold")
    {
        Description = "The step cache's threshold (higher reuses more steps): teacache 0.1 (default, slow) or 0.2 (fast); fbcache 0.05 (default).",
        HelpName = "X",
    };

    private static readonly Option<int> s_exactSteps = new("--exact-steps")
    {
        Description = "Keep the first and last N steps exact while a fast mode runs the rest (under a step cache the first and last one always are; under --linear fp8 alone, 0 quantizes every step).",
        HelpName = "N",
    };

    private static readonly Option<string> s_linear = new("--linear")
    {
        Description = "The transformer blocks' attention and feed-forward projections: exact (the model's dtype, the default) or fp8 (E4M3 weights and " +
            "activations, per-channel and per-token scales: a fast mode for sm_89+ GPUs that also holds only the FP8 projections on the GPU, about 0.6× the " +
            "transformer's weights; --exact-steps N keeps the first and last N steps exact, and the exact weights beside). See docs/fast-modes.md.",
        DefaultValueFactory = _ => "exact",
        HelpName = "exact|fp8",
    };

    private static readonly Option<bool> s_vaeTiling = new("--vae-tiling") { Description = "Decode in overlapping spatial tiles (less memory)." };

    private static readonly Option<string[]> s_lora = new("--lora")
    {
        Description = "A LoRA file (diffusers/PEFT .safetensors) fused into the transformer, with an optional strength (default 1; 0.5 weakens it). Repeat for several.",
        HelpName = "FILE[:STRENGTH]",
        AllowMultipleArgumentsPerToken = false,
    };

    private static readonly GpuFlags s_gpu = new();

    private static readonly Option<string?> s_output = new("--output", "-o")
    {
        Description = "The MP4 to write (default outputs/<model>/<prompt>.mp4); the sidecar goes next to it as .json. An existing file is not replaced without --overwrite.",
        HelpName = "FILE",
    };

    private static readonly Option<bool> s_overwrite = new("--overwrite") { Description = "Replace the video (and its sidecar) when the output file exists already." };

    private static readonly Option<string?> s_saveTensors = new("--save-tensors")
    {
        Description = "Also write a safetensors file with the final latents and the decoded frames (float32 [F, 3, H, W]).",
        HelpName = "FILE",
    };

    private static readonly Option<string?> s_image = new("--image")
    {
        Description = "Image to video: the picture to animate (PNG, JPEG or WebP; resized to --height × --width). Needs an image-to-video model: --model 5b-i2v or --model 1.5-i2v.",
        HelpName = "FILE",
    };

    private static readonly Option<string?> s_video = new("--video")
    {
        Description = "Video to video: the video to restyle (its first --frames frames, resized) on a text-to-video model (2b, 5b).",
        HelpName = "FILE",
    };

    private static readonly Option<double?> s_strength = new("--strength")
    {
        Description = "Video to video: the part of the denoising schedule that runs on the noised input, in (0, 1] (default 0.8; lower keeps more of the video).",
        HelpName = "S",
    };

    private static readonly Option<bool> s_quiet = new("--quiet", "-q") { Description = "No progress or summary; warnings and errors only." };

    private static readonly Option<bool> s_json = new("--json") { Description = "Print a machine-readable summary on stdout." };

    public static Command Create(Func<string, string?> environment, Func<GpuCheck> gpu)
    {
        var cmd = new Command("generate", "Generate a video from a prompt: text encoder → transformer → VAE → MP4 + JSON sidecar.");
        foreach (var option in new Option[]
                 {
                     s_promptFile, s_prompt, s_negativePrompt, s_model, s_steps, s_guidance, s_frames, s_fps, s_seed, s_height, s_width,
                     s_scheduler, s_dynamicCfg, s_noDynamicCfg, s_dtype, s_device, s_memory, s_vaeTiling, s_lora, s_cache, s_cacheThreshold, s_exactSteps, s_linear, s_output, s_overwrite, s_saveTensors, s_quiet, s_json,
                     s_image, s_video, s_strength,
                 })
            cmd.Options.Add(option);
        s_gpu.AddTo(cmd);
        cmd.SetAction(parse => Run(parse, environment, gpu));
        return cmd;
    }

    private static int Run(ParseResult parse, Func<string, string?> environment, Func<GpuCheck> gpu)
    {
        var stdout = parse.InvocationConfiguration.Output;
        var stderr = parse.InvocationConfiguration.Error;
        // Ctrl+C or SIGTERM stops the run at the next step boundary, leaving no partial files; a second one quits at once.
        using var interrupt = new InterruptCancellation(stderr);
        var cancellation = interrupt.Token;
        bool quiet = parse.GetValue(s_quiet);
        bool json = parse.GetValue(s_json);

        var (settings, promptSource) = Settings(parse);
        // A --model that can name nothing is a usage error, said before the device is chosen or anything is read.
        try
        {
            CogVideoX.Weights.ModelLocator.CheckName(settings.Model);
        }
        catch (CogVideoX.Weights.WeightsException e)
        {
            throw new CogVideoXException(e.Message, 2);
        }
        // Flags left out take the model's defaults (CogVideoX 1.5: 81 frames of 768×1360 at 16 fps).
        settings = ModelDefaultsFlags.Apply(parse, settings, environment, s_frames, s_height, s_width, s_fps);
        var output = parse.GetValue(s_output) ?? DefaultOutput(settings.Model, promptSource);
        var tensors = parse.GetValue(s_saveTensors);
        CheckPaths(output, tensors);
        RenderPlan.Check(settings);
        // auto: the GPU when one works, else the CPU — decided here, so the sidecar names the device that ran.
        var device = DeviceSelection.Resolve(settings.Device, gpu);
        if (device.Reason.Length > 0) settings = settings with { Device = device.Device };
        if (!parse.GetValue(s_overwrite) && RefuseToOverwrite(output, settings, parse.GetValue(s_output) is null, tensors) is { } done)
            return AlreadyThere(stdout, done, output, quiet, json);
        if (device.Reason.Length > 0 && !quiet) stderr.WriteLine(device.Reason);

        _ = CogVideoX.Media.Ffmpeg.FfmpegPath; // before any download: a missing ffmpeg should not cost gigabytes first
        // Likewise a destination that cannot be written (read-only, full, a file in the way, a sidecar path that
        // holds someone else's file): found now, not after the denoising.
        var job = new VideoJob("generate", Path.GetFileNameWithoutExtension(output), output, settings);
        VideoOutput.Check(job, "--output ");
        if (tensors is not null)
        {
            AtomicFile.CheckWritable(tensors, "--save-tensors");
            VideoOutput.CleanTemporaryFiles(tensors, onlyDeadOwners: true);
        }
        // A model that is neither a folder nor cached is downloaded first (announced, with progress; never offline).
        ModelResolution.ResolveAsync(settings.Model, stderr, environment, cancellation).GetAwaiter().GetResult();

        using var renderer = new PipelineRenderer(environment);
        var bar = quiet ? null : new ConsoleProgress(stderr, ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected);
        var result = renderer.Render(job, bar, cancellation, note =>
        {
            if (note.IsWarning) stderr.WriteLine($"warning: {note.Text}");
            else if (!quiet) stderr.WriteLine(note.Text);
        });
        bar?.Finish();

        if (tensors is not null) SaveTensors(tensors, result);
        var sidecar = result.Render.Sidecar;
        if (json)
        {
            var summary = new GenerateSummary(Path.GetFullPath(job.OutputPath), Path.GetFullPath(job.SidecarPath),
                tensors is null ? null : Path.GetFullPath(tensors), sidecar.FrameCount, sidecar.Width, sidecar.Height, settings.Fps,
                sidecar.Settings, sidecar.Resolved, sidecar.TimingsSeconds, sidecar.PeakMemoryBytes, sidecar.PeakMemoryKind,
                result.Generation.Warnings, sidecar.TruncatedPromptText, sidecar.ModelIdentity, sidecar.WeightsChecksum);
            stdout.WriteLine(JsonSerializer.Serialize(summary, GenerateJsonContext.Readable.GenerateSummary));
        }
        else if (!quiet)
        {
            WriteSummary(stdout, job, result, tensors);
        }
        return 0;
    }

    /// <summary>The settings the flags describe, and the name the prompt goes by in output names.</summary>
    private static (GenerationSettings Settings, string PromptName) Settings(ParseResult parse)
    {
        var file = parse.GetValue(s_promptFile);
        var text = parse.GetValue(s_prompt);
        if (file is not null && text is not null)
            throw new CogVideoXException("--prompt and --prompt-file both given; use one: --prompt-file NAME reads prompts/NAME.txt, --prompt TEXT takes the text itself", 2);
        if (file is null && text is null)
            throw new CogVideoXException($"no prompt: use --prompt-file NAME (one of: {string.Join(", ", PromptFiles.Available(PromptFiles.DefaultSearchFolders()))}) or --prompt TEXT", 2);
        string prompt, name;
        string? promptName = null;
        if (file is not null)
        {
            var loaded = PromptFiles.Load(file);
            (prompt, name, promptName) = (loaded.Text, loaded.Name, loaded.Name);
        }
        else
        {
            prompt = text!.Trim();
            if (prompt.Length == 0) throw new CogVideoXException("--prompt is empty; give the text of the prompt, or use --prompt-file NAME", 2);
            name = Slug(prompt);
        }
        if (parse.GetValue(s_dynamicCfg) && parse.GetValue(s_noDynamicCfg))
            throw new CogVideoXException("--dynamic-cfg and --no-dynamic-cfg both given; use one (or neither for the scheduler's default)", 2);
        bool? dynamic = parse.GetValue(s_dynamicCfg) ? true : parse.GetValue(s_noDynamicCfg) ? false : null;
        var settings = new GenerationSettings
        {
            Model = parse.GetValue(s_model)!,
            PromptName = promptName,
            Prompt = prompt,
            NegativePrompt = parse.GetValue(s_negativePrompt),
            Steps = parse.GetValue(s_steps),
            Guidance = parse.GetValue(s_guidance),
            Frames = ModelDefaultsFlags.ValueOr(parse, s_frames, GenerationDefaults.Frames),
            Fps = ModelDefaultsFlags.ValueOr(parse, s_fps, GenerationDefaults.Fps),
            Seed = parse.GetValue(s_seed),
            Height = ModelDefaultsFlags.ValueOr(parse, s_height, GenerationDefaults.Height),
            Width = ModelDefaultsFlags.ValueOr(parse, s_width, GenerationDefaults.Width),
            Scheduler = parse.GetValue(s_scheduler)?.Trim().ToLowerInvariant(),
            DynamicCfg = dynamic,
            DType = parse.GetValue(s_dtype)?.Trim().ToLowerInvariant(),
            Device = parse.GetValue(s_device)!.Trim().ToLowerInvariant(),
            Memory = parse.GetValue(s_memory)!.Trim().ToLowerInvariant(),
            VaeTiling = parse.GetValue(s_vaeTiling),
            Lora = CogVideoX.Models.Lora.LoraSpec.FormatList((parse.GetValue(s_lora) ?? []).Select(CogVideoX.Models.Lora.LoraSpec.Parse)),
            Image = parse.GetValue(s_image),
            Video = parse.GetValue(s_video),
            Strength = parse.GetValue(s_strength),
            Cache = StepCaching.Name(StepCaching.Parse(parse.GetValue(s_cache)!)),
            CacheThreshold = parse.GetValue(s_cacheThreshold),
            ExactSteps = parse.GetValue(s_exactSteps),
            Linear = LinearModes.Name(LinearModes.Parse(parse.GetValue(s_linear)!)),
        };
        var (attention, cudnn, sdpa) = s_gpu.Names(parse);
        settings = settings with { Attention = attention, Cudnn = cudnn, CudnnSdpa = sdpa };
        return (settings, name);
    }

    /// <summary>
    /// An existing video is never replaced silently: without --overwrite its name is refused, saying whether it was
    /// made with the same settings or which ones differ, and what to do. The exception: the video these settings
    /// ask for is there already, complete (its sidecar has these settings, the MP4 its size and checksum, LoRA files
    /// their hashes — what <c>experiment run</c> counts as done): that sidecar is returned and nothing is rendered.
    /// </summary>
    private static VideoSidecar? RefuseToOverwrite(string output, GenerationSettings settings, bool defaultName, string? tensors)
    {
        var sidecarPath = Path.ChangeExtension(output, ".json");
        if (!File.Exists(output) && !File.Exists(sidecarPath)) return null;
        VideoSidecar? existing;
        try
        {
            existing = VideoSidecar.TryLoad(sidecarPath);
            if (existing is not { Tool: "cogvideox", Settings: not null }) existing = null; // JSON, but not our sidecar
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            existing = null;
        }
        // A file there that is no sidecar of ours and no video: the output checks say what it is and what to do.
        if (existing is null && !File.Exists(output)) return null;
        var differences = existing?.Settings.Differences(settings);
        bool same = differences is { Count: 0 };
        if (same && tensors is null && VideoSidecar.IsComplete(new VideoJob("generate", Path.GetFileNameWithoutExtension(output), output, settings)))
            return existing;
        string made = existing is null ? ""
            : !same ? $", made with other settings ({string.Join(", ", differences!)})"
            : tensors is not null ? ", made with these same settings (but --save-tensors needs the run again)"
            : ", made with these same settings, but the video does not match its sidecar (replaced or damaged)";
        throw new CogVideoXException(
            $"{output} exists already{made}; nothing was rendered. Give another name with {(defaultName ? "-o FILE (--output)" : "a different --output")}, " +
            "or add --overwrite to replace it", 2);
    }

    /// <summary>
    /// The video asked for exists already, complete: a success that renders nothing (exit 0), as <c>experiment run</c>
    /// skips a complete video; it says so, on stdout as the summary (or as JSON with --json), and how to render it again.
    /// </summary>
    private static int AlreadyThere(TextWriter stdout, VideoSidecar s, string output, bool quiet, bool json)
    {
        var sidecarPath = Path.ChangeExtension(output, ".json");
        if (json)
        {
            var summary = new GenerateSummary(Path.GetFullPath(output), Path.GetFullPath(sidecarPath), null, s.FrameCount, s.Width, s.Height,
                s.Settings.Fps, s.Settings, s.Resolved, s.TimingsSeconds, s.PeakMemoryBytes, s.PeakMemoryKind, [], s.TruncatedPromptText,
                s.ModelIdentity, s.WeightsChecksum, AlreadyExisted: true);
            stdout.WriteLine(JsonSerializer.Serialize(summary, GenerateJsonContext.Readable.GenerateSummary));
        }
        else if (!quiet)
        {
            stdout.WriteLine($"{output} exists already, made with these same settings ({s.FrameCount} frames, {s.Width}×{s.Height}, {s.Settings.Fps} fps; " +
                $"sidecar {sidecarPath}): nothing to render. Add --overwrite to render it again, or -o FILE for another copy.");
        }
        return 0;
    }

    /// <summary>outputs/&lt;model&gt;/&lt;prompt&gt;.mp4: the alias, folder name or repo name, and the prompt file's name.</summary>
    internal static string DefaultOutput(string model, string promptName)
    {
        var trimmed = model.Trim().TrimEnd('/', '\\');
        string label = Directory.Exists(trimmed) ? Path.GetFileName(Path.GetFullPath(trimmed)) : trimmed.Split('/', '\\')[^1].Replace('@', '-');
        return Path.Combine("outputs", Safe(label, "model"), Safe(promptName, "prompt") + ".mp4");
    }

    /// <summary>The first words of a prompt as a file name ("A panda plays…" → a_panda_plays…).</summary>
    internal static string Slug(string prompt)
    {
        var words = prompt.Split((char[])[' ', '\t', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries)
            .Select(w => new string(w.Where(char.IsLetterOrDigit).ToArray()).ToLowerInvariant())
            .Where(w => w.Length > 0)
            .Take(6);
        var slug = string.Join('_', words);
        return slug.Length == 0 ? "prompt" : slug.Length > 48 ? slug[..48].TrimEnd('_') : slug;
    }

    private static string Safe(string text, string fallback)
    {
        var safe = new string(text.Select(c => char.IsLetterOrDigit(c) || c is '_' or '-' or '.' ? c : '_').ToArray()).Trim('.');
        return safe.Length == 0 ? fallback : safe;
    }

    private static void CheckPaths(string output, string? tensors)
    {
        if (!string.Equals(Path.GetExtension(output), ".mp4", StringComparison.OrdinalIgnoreCase))
            throw new CogVideoXException($"--output {output}: the video is written as MP4, so the file name must end in .mp4 (its sidecar goes next to it as .json)", 2);
        if (Directory.Exists(output))
            throw new CogVideoXException($"--output {output} is a folder; give the file to write, e.g. {Path.Combine(output, "video.mp4")}", 2);
        if (tensors is null) return;
        var full = Path.GetFullPath(tensors);
        if (full == Path.GetFullPath(output) || full == Path.GetFullPath(Path.ChangeExtension(output, ".json")))
            throw new CogVideoXException($"--save-tensors {tensors} would overwrite the video or its sidecar; give another file name (e.g. ending in .safetensors)", 2);
        if (Directory.Exists(tensors))
            throw new CogVideoXException($"--save-tensors {tensors} is a folder; give the file to write, e.g. {Path.Combine(tensors, "tensors.safetensors")}", 2);
    }

    /// <summary>latents [1, F, C, h, w] and frames [F, 3, H, W], float32, written under a temporary name and renamed.</summary>
    private static void SaveTensors(string path, PipelineRenderResult result)
    {
        var g = result.Generation;
        using var latents = Tensor.FromArray(g.Latents, g.LatentShape);
        using var frames = Tensor.FromArray(g.Frames, g.FramesShape);
        var s = result.Render.Sidecar;
        var metadata = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["tool"] = $"cogvideox {s.ToolVersion}",
            ["model"] = s.ModelIdentity,
            ["seed"] = s.Settings.Seed.ToString(CultureInfo.InvariantCulture),
            ["video"] = s.VideoFile,
        };
        try
        {
            AtomicFile.Write(path, tmp => SafetensorsWriter.Write(tmp, [("latents", latents), ("frames", frames)], metadata));
        }
        catch (Exception e) when (FileErrors.IsFileError(e))
        {
            // Checked before the run, so only a disk that filled meanwhile gets here; the video itself is kept.
            var why = FileErrors.Explain(e, "--save-tensors", path);
            throw new CogVideoXException($"{why.Message} (the video {result.Render.Sidecar.VideoFile} and its sidecar were written and are complete)", e);
        }
    }

    private static void WriteSummary(TextWriter o, VideoJob job, PipelineRenderResult result, string? tensors)
    {
        var s = result.Render.Sidecar;
        var t = s.TimingsSeconds;
        o.WriteLine($"wrote {job.OutputPath} ({s.FrameCount} frames, {s.Width}×{s.Height}, {job.Settings.Fps} fps) and {job.SidecarPath}");
        if (tensors is not null) o.WriteLine($"wrote {tensors} (latents, frames)");
        var parts = new List<string>();
        double loads = t.Where(p => p.Key.StartsWith("load_", StringComparison.Ordinal)).Sum(p => p.Value);
        if (loads > 0) parts.Add($"loading {Seconds(loads)}");
        if (t.TryGetValue(PipelineStages.TextEncoder, out var te)) parts.Add($"text encoder {Seconds(te)}");
        if (t.TryGetValue(PipelineStages.VaeEncode, out var ve)) parts.Add($"VAE encode {Seconds(ve)}");
        if (t.TryGetValue(PipelineStages.Denoise, out var dn))
            parts.Add($"denoise {Seconds(dn)}{(t.TryGetValue("denoise_step_mean", out var m) ? $" ({Seconds(m)}/step)" : "")}");
        if (t.TryGetValue(PipelineStages.VaeDecode, out var vd)) parts.Add($"VAE decode {Seconds(vd)}");
        if (t.TryGetValue(PipelineStages.EncodeVideo, out var ev)) parts.Add($"MP4 {Seconds(ev)}");
        if (t.TryGetValue("total", out var total)) parts.Add($"total {Seconds(total)}");
        o.WriteLine(string.Join(" · ", parts));
        o.WriteLine($"peak memory {Size(s.PeakMemoryBytes)} ({s.PeakMemoryKind}); {s.Resolved.GetValueOrDefault("scheduler")}, {s.Resolved.GetValueOrDefault("dtype")}, dynamic CFG {s.Resolved.GetValueOrDefault("dynamic_cfg")}, seed {s.Settings.Seed}");
        foreach (var lora in s.Lora ?? [])
            o.WriteLine($"LoRA {lora.File} at strength {lora.Strength.ToString("R", CultureInfo.InvariantCulture)} ({lora.Layers} layers, sha256 {lora.Sha256[..12]}…)");
    }

    private static string Size(long bytes) => bytes >= 1L << 30
        ? $"{(bytes / (double)(1L << 30)).ToString("0.00", CultureInfo.InvariantCulture)} GiB"
        : $"{(bytes / (double)(1L << 20)).ToString("0.0", CultureInfo.InvariantCulture)} MiB";

    internal static string Seconds(double s) => s < 60
        ? $"{s.ToString(s < 10 ? "0.00" : "0.0", CultureInfo.InvariantCulture)} s"
        : Clock(TimeSpan.FromSeconds(s));

    internal static string Clock(TimeSpan t) => t.TotalHours >= 1
        ? $"{(int)t.TotalHours}:{t.Minutes:00}:{t.Seconds:00}"
        : $"{t.Minutes}:{t.Seconds:00}";
}

/// <summary>
/// Turns the first Ctrl+C (SIGINT) or SIGTERM into a cancellation the pipeline sees between steps; a second one is
/// left to its default action and ends the process.
/// </summary>
internal sealed class InterruptCancellation : IDisposable
{
    private readonly CancellationTokenSource _source = new();
    private readonly TextWriter _error;
    private readonly PosixSignalRegistration[] _registrations;

    public InterruptCancellation(TextWriter error)
    {
        _error = error;
        _registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle), PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle)];
    }

    public CancellationToken Token => _source.Token;

    private void Handle(PosixSignalContext context)
    {
        if (_source.IsCancellationRequested) return;
        context.Cancel = true;
        _error.WriteLine();
        _error.WriteLine("stopping after the current step (again to quit at once); no partial files are left");
        _source.Cancel();
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _source.Dispose();
    }
}

/// <summary>What <c>generate --json</c> prints.</summary>
internal sealed record GenerateSummary(
    string Video,
    string Sidecar,
    string? Tensors,
    int Frames,
    int Width,
    int Height,
    int Fps,
    GenerationSettings Settings,
    [property: JsonConverter(typeof(ResolvedValuesConverter))] Dictionary<string, string> Resolved,
    Dictionary<string, double> TimingsSeconds,
    long PeakMemoryBytes,
    string PeakMemoryKind,
    IReadOnlyList<string> Warnings,
    string? TruncatedPromptText,
    string ModelIdentity,
    string WeightsChecksum,
    bool AlreadyExisted = false);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(GenerateSummary))]
internal sealed partial class GenerateJsonContext : JsonSerializerContext
{
    /// <summary>The same, writing prompts as people read them (quotes, apostrophes and non-ASCII letters unescaped).</summary>
    public static GenerateJsonContext Readable { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}

/// <summary>
/// Progress on stderr: a bar redrawn in place on a terminal, plain lines when redirected (every step of the
/// denoising, every tenth of the decode and the MP4); other stage changes on lines of their own. Remaining time is
/// the mean step time of the stage so far times the steps left.
/// </summary>
internal sealed class ConsoleProgress(TextWriter error, bool interactive) : IProgress<RenderProgress>
{
    private const int BarWidth = 28;
    private readonly object _gate = new();
    private TimeSpan _stageStart;
    private int _lastTenth = -1;
    private bool _barOpen;

    public void Report(RenderProgress p)
    {
        lock (_gate)
        {
            if (p.Step == 0)
            {
                CloseBar();
                (_stageStart, _lastTenth) = (p.Elapsed, -1);
                if (p.Stage != PipelineStages.Denoise) error.WriteLine($"{PipelineStages.Describe(p.Stage)}…");
                return;
            }
            // The end of a stage without steps of its own (a load, the text encoder).
            if (p.TotalSteps <= 1)
            {
                CloseBar();
                return;
            }
            bool denoise = p.Stage == PipelineStages.Denoise;
            var spent = p.Elapsed - _stageStart;
            var perStep = spent / p.Step;
            var remaining = perStep * (p.TotalSteps - p.Step);
            var label = denoise ? "denoise" : p.Stage == PipelineStages.VaeDecode ? "decode" : p.Stage == PipelineStages.EncodeVideo ? "MP4" : p.Stage;
            var line = $"{label} {p.Step}/{p.TotalSteps}  elapsed {GenerateCommand.Clock(spent)}  remaining {GenerateCommand.Clock(remaining)}" +
                (denoise ? $"  ({GenerateCommand.Seconds(perStep.TotalSeconds)}/step)" : "") + (p.StepReused ? "  reused (step cache)" : "");
            if (interactive)
            {
                int filled = (int)Math.Round(BarWidth * (double)p.Step / p.TotalSteps);
                error.Write($"\r[{new string('#', filled)}{new string('.', BarWidth - filled)}] {line}   ");
                _barOpen = true;
                if (p.Step == p.TotalSteps) CloseBar();
            }
            else
            {
                // Redirected: every denoising step, and about every tenth of the shorter stages.
                int tenth = 10 * p.Step / p.TotalSteps;
                if (denoise || tenth != _lastTenth) error.WriteLine(line);
                _lastTenth = tenth;
            }
        }
    }

    /// <summary>Ends an open bar line (before the summary).</summary>
    public void Finish()
    {
        lock (_gate) CloseBar();
    }

    private void CloseBar()
    {
        if (!_barOpen) return;
        error.WriteLine();
        _barOpen = false;
    }

}
