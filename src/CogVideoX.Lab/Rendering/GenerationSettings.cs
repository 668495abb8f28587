using System.Text.Json.Serialization;

namespace CogVideoX.Lab;

/// <summary>
/// Everything that defines one video, as the user states it (names, not resolved objects). Two videos with
/// equal settings and the same weights are the same video: the sidecar stores these so a run can be reproduced
/// and a finished output recognised. Null means "the model's default" (resolved and recorded by the renderer).
/// </summary>
public sealed record GenerationSettings
{
    /// <summary>`2b`, `5b`, a folder, or a Hugging Face repo id (`owner/name[@revision]`).</summary>
    public string Model { get; init; } = "2b";

    /// <summary>The prompt file's name (under prompts/) when the prompt came from one; for labels only.</summary>
    public string? PromptName { get; init; }

    public string Prompt { get; init; } = "";

    public string? NegativePrompt { get; init; }

    public int Steps { get; init; } = 50;

    public double Guidance { get; init; } = 6.0;

    public int Frames { get; init; } = 49;

    public int Fps { get; init; } = 8;

    public long Seed { get; init; } = 42;

    public int Height { get; init; } = 480;

    public int Width { get; init; } = 720;

    /// <summary>`ddim` or `dpm`; null → per-model default (2b DDIM, 5b DPM trailing).</summary>
    public string? Scheduler { get; init; }

    /// <summary>null → per-model default (5b on, 2b off).</summary>
    public bool? DynamicCfg { get; init; }

    /// <summary>`f32`, `f16`, `bf16`; null → per-model default on a GPU (2b fp16, 5b bf16), f32 on the CPU.</summary>
    public string? DType { get; init; }

    /// <summary>`cpu`, `cuda`, `cuda:N`.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>`auto`, `full`, `balanced`, `low` (GPU memory policy).</summary>
    public string Memory { get; init; } = "auto";

    /// <summary>`own` or `cudnn`: the attention kernel a GPU tries first; null → the backend's default (own).</summary>
    public string? Attention { get; init; }

    /// <summary>`on`, `off`, `attention`, `conv`, `autotune`: what a GPU uses cuDNN for; null → on.</summary>
    public string? Cudnn { get; init; }

    /// <summary>`auto`, `unified`, `composite`: the cuDNN attention graph; null → auto.</summary>
    public string? CudnnSdpa { get; init; }

    /// <summary>
    /// True when both settings make the same video. Which GPU of a kind ran it does not matter (`cuda:1` makes the
    /// video `cuda` makes), so a sweep spread over several GPUs recognises its outputs; the kind does (CPU float32
    /// and GPU half precision differ).
    /// </summary>
    public bool DefinesSameVideoAs(GenerationSettings other) =>
        this with { Device = DeviceKind(Device) } == other with { Device = DeviceKind(other.Device) };

    /// <summary>`cuda:3` → `cuda`; `cpu` → `cpu`.</summary>
    public static string DeviceKind(string device)
    {
        int colon = device.IndexOf(':');
        return colon < 0 ? device : device[..colon];
    }
    /// <summary>Decode the latents in overlapping spatial tiles (less memory; the blended seams change pixels slightly).</summary>
    public bool VaeTiling { get; init; }
}

/// <summary>One video to make in an experiment: where it goes and what defines it.</summary>
public sealed record VideoJob(string Experiment, string Name, string OutputPath, GenerationSettings Settings)
{
    /// <summary>The sidecar next to the video: same name, .json.</summary>
    [JsonIgnore]
    public string SidecarPath => Path.ChangeExtension(OutputPath, ".json");
}
