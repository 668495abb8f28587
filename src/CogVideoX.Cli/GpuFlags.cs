using System.CommandLine;
using CogVideoX.Engine;

namespace CogVideoX.Cli;

/// <summary>
/// <c>--attention</c>, <c>--cudnn</c> and <c>--cudnn-sdpa</c> for the commands that run models: the GPU backend's
/// choices as flags (the COGVIDEOX_* environment variables override them). New option objects per command.
/// </summary>
internal sealed class GpuFlags
{
    public Option<string?> Attention { get; } = new("--attention")
    {
        Description = "Which attention kernel a GPU tries first: own (this backend's sm_90 kernel, the default) or cudnn (COGVIDEOX_ATTENTION overrides); " +
            "or sage8: the transformer's self-attention in 8 bits (INT8 Q·Kᵀ, FP8 P·V; a fast mode for sm_89/sm_90 GPUs that changes the video slightly; " +
            "on the CPU an exact emulation, slow, for fidelity checks; --exact-steps N keeps the first and last N steps exact).",
        HelpName = string.Join("|", GpuOptions.AttentionNames),
    };

    public Option<string?> Cudnn { get; } = new("--cudnn")
    {
        Description = "What cuDNN is used for: on (attention and convolutions, the default), off, attention, conv, or autotune (time the candidates on first use) (COGVIDEOX_CUDNN overrides).",
        HelpName = string.Join("|", GpuOptions.CudnnNames),
    };

    public Option<string?> CudnnSdpa { get; } = new("--cudnn-sdpa")
    {
        Description = "The cuDNN attention graph: auto (unified SDPA where cuDNN has it, the default), unified or composite (COGVIDEOX_CUDNN_SDPA overrides).",
        HelpName = string.Join("|", GpuOptions.CudnnSdpaNames),
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Attention);
        command.Options.Add(Cudnn);
        command.Options.Add(CudnnSdpa);
    }

    /// <summary>The flags as given (null: not given), for settings that record them.</summary>
    public (string? Attention, string? Cudnn, string? CudnnSdpa) Names(ParseResult parse) =>
        (Clean(parse.GetValue(Attention)), Clean(parse.GetValue(Cudnn)), Clean(parse.GetValue(CudnnSdpa)));

    /// <summary>The flags as typed options; an unknown value is a usage error naming the flag and the choices.</summary>
    public GpuOptions Read(ParseResult parse)
    {
        var (attention, cudnn, sdpa) = Names(parse);
        return GpuOptions.Parse(attention, cudnn, sdpa);
    }

    private static string? Clean(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim().ToLowerInvariant();
}
