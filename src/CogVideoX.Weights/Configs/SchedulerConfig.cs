namespace CogVideoX.Weights;

/// <summary>
/// <c>scheduler/scheduler_config.json</c> (CogVideoXDDIMScheduler / CogVideoXDPMScheduler share these keys);
/// defaults are diffusers' constructor defaults. <see cref="ClassName"/> is the scheduler the folder names.
/// </summary>
public sealed record SchedulerConfig
{
    [System.Text.Json.Serialization.JsonPropertyName("_class_name")]
    public string ClassName { get; init; } = "CogVideoXDDIMScheduler";
    public int NumTrainTimesteps { get; init; } = 1000;
    public double BetaStart { get; init; } = 0.00085;
    public double BetaEnd { get; init; } = 0.0120;
    public string BetaSchedule { get; init; } = "scaled_linear";
    public double[]? TrainedBetas { get; init; }
    public bool ClipSample { get; init; } = true;
    public bool SetAlphaToOne { get; init; } = true;
    public int StepsOffset { get; init; }
    public string PredictionType { get; init; } = "epsilon";
    public double ClipSampleRange { get; init; } = 1.0;
    public double SampleMaxValue { get; init; } = 1.0;
    public string TimestepSpacing { get; init; } = "leading";
    public bool RescaleBetasZeroSnr { get; init; }
    public double SnrShiftScale { get; init; } = 3.0;

    // The schedule tables hold one value per training timestep; the scheduler checks the rest of the keys.
    public static SchedulerConfig Load(string path) =>
        ConfigFile.Load(path, ConfigJsonContext.Default.SchedulerConfig,
            static (config, limits) => limits.Range("num_train_timesteps", config.NumTrainTimesteps, 2, 100_000, "1,000"));
}
