using CogVideoX.Diffusion;

namespace CogVideoX.Tests;

/// <summary>Requests sized for the tiny fixture models: 9 frames of 32×48, a few steps.</summary>
public static class TinyRequest
{
    /// <summary>"A panda plays a guitar." at 9 frames of 32×48 with this many steps and this seed.</summary>
    public static GenerationRequest Panda(int steps, long seed) => new()
    {
        Prompt = "A panda plays a guitar.",
        Steps = steps,
        Frames = 9,
        Height = 32,
        Width = 48,
        Seed = seed,
    };
}
