using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Diffusion;

/// <summary>
/// What the fixtures do not reach: the other prediction types, set_alpha_to_one, steps_offset, the schedule without
/// the SNR shift or rescaling, in-place stepping, and the errors for bad configs, bad step counts and misuse.
/// </summary>
public class SchedulerBehaviourTests
{
    private static SchedulerConfig Config2b => SchedulerCaseTests.ConfigOf("ddim");

    private static IScheduler Create(SchedulerKind kind, SchedulerConfig config) => new SchedulerChoice(kind, config).Create();

    private static float[] Random(int n, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1)).ToArray();
    }

    [Theory]
    [InlineData(SchedulerKind.Ddim, "v_prediction")]
    [InlineData(SchedulerKind.Ddim, "sample")]
    [InlineData(SchedulerKind.Ddim, "epsilon")]
    [InlineData(SchedulerKind.Dpm, "v_prediction")]
    [InlineData(SchedulerKind.Dpm, "sample")]
    [InlineData(SchedulerKind.Dpm, "epsilon")]
    public void TensorStepsAreBitIdenticalToSpanSteps(SchedulerKind kind, string type)
    {
        // The pipeline's tensor step (on the latents' backend, DPM's noise uploaded from the same generator stream)
        // must give the span step's floats exactly, at every step of an uneven (7-step) schedule: DPM's first-order
        // step 0, its second-order middle and its first-order last step, with the previous x̂₀ held as a tensor.
        var config = Config2b with { PredictionType = type, RescaleBetasZeroSnr = false };
        using var spans = Create(kind, config);
        using var tensors = Create(kind, config);
        spans.SetTimesteps(7);
        tensors.SetTimesteps(7);
        var spanGenerator = new TorchGenerator(5);
        var tensorGenerator = new TorchGenerator(5);
        const int n = 37;
        var sample = Random(n, 3);
        for (int i = 0; i < 7; i++)
        {
            var modelOut = Random(n, 10 + i);
            var expected = new float[n];
            spans.Step(i, modelOut, sample, expected, spanGenerator);
            using var x = Tensor.FromArray(sample, [1, n]);
            using var m = Tensor.FromArray(modelOut, [1, n]);
            using var next = tensors.Step(i, m, x, tensorGenerator);
            Assert.Equal(DType.F32, next.DType);
            Assert.Equal([1, n], next.ShapeArray());
            TorchGeneratorTests.AssertBitExact(expected, next.ToFloatArray(), $"{kind} {type} step {i}");
            sample = expected;
        }
        // Both generators have advanced the same way.
        Assert.Equal(spanGenerator.Randn([4]), tensorGenerator.Randn([4]));
    }

    [Fact]
    public void DpmMixesStepFormsThroughItsHeldEstimate()
    {
        // A tensor step after a span step (and the reverse) reads the previous x̂₀ wherever it is held.
        using var reference = new CogVideoXDpmScheduler(Config2b);
        using var mixed = new CogVideoXDpmScheduler(Config2b);
        reference.SetTimesteps(4);
        mixed.SetTimesteps(4);
        var g1 = new TorchGenerator(7);
        var g2 = new TorchGenerator(7);
        const int n = 24;
        var sample = Random(n, 1);
        for (int i = 0; i < 4; i++)
        {
            var modelOut = Random(n, 20 + i);
            var expected = new float[n];
            reference.Step(i, modelOut, sample, expected, g1);
            float[] actual;
            if (i % 2 == 0)
            {
                actual = new float[n];
                mixed.Step(i, modelOut, sample, actual, g2);
            }
            else
            {
                using var x = Tensor.FromArray(sample, [2, 3, 4]);
                using var m = Tensor.FromArray(modelOut, [2, 3, 4]);
                using var next = mixed.Step(i, m, x, g2);
                actual = next.ToFloatArray();
            }
            TorchGeneratorTests.AssertBitExact(expected, actual, $"step {i}");
            sample = expected;
        }
    }

    [Theory]
    [InlineData(SchedulerKind.Ddim)]
    [InlineData(SchedulerKind.Dpm)]
    public void PredictionTypesAgreeOnTheSameDenoisedSample(SchedulerKind kind)
    {
        // A sample built from known x₀ and ε at step 1's timestep; each prediction type gets the model output that
        // encodes them (v = √ᾱ·ε − √(1−ᾱ)·x₀, ε, or x₀) and must recover x₀ and take the same step. Without the
        // zero-terminal-SNR rescaling: at ᾱ = 0 an ε-prediction cannot give x̂₀ (in diffusers neither).
        const int n = 100;
        var x0 = Random(n, 1);
        var eps = Random(n, 2);
        float[]? reference = null;
        foreach (var type in new[] { "v_prediction", "epsilon", "sample" })
        {
            var scheduler = Create(kind, Config2b with { PredictionType = type, RescaleBetasZeroSnr = false });
            scheduler.SetTimesteps(5);
            (float[] Sample, float[] ModelOut) At(int step)
            {
                double a = scheduler.AlphasCumprod[scheduler.Timesteps[step]];
                double sa = Math.Sqrt(a), sb = Math.Sqrt(1 - a);
                var sample = x0.Zip(eps, (x, e) => (float)(sa * x + sb * e)).ToArray();
                var modelOut = type switch
                {
                    "v_prediction" => x0.Zip(eps, (x, e) => (float)(sa * e - sb * x)).ToArray(),
                    "epsilon" => eps,
                    _ => x0,
                };
                return (sample, modelOut);
            }
            var generator = new TorchGenerator(9);
            var (sample0, modelOut0) = At(0);
            scheduler.Step(0, modelOut0, sample0, new float[n], generator); // DPM's step 1 uses step 0's x̂₀
            var (sample1, modelOut1) = At(1);
            var next = new float[n];
            scheduler.Step(1, modelOut1, sample1, next, generator);
            Compare.AssertAbs(x0, scheduler.PredictedOriginalSample, 1e-5, $"{kind} {type} x̂₀");
            if (reference is null) reference = next;
            else Compare.AssertAbs(reference, next, 1e-5, $"{kind} {type} step vs v_prediction");
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DdimStepsAlongItsClosedForm(bool alphaToOne)
    {
        // DDIM (η = 0): x_prev = √ᾱ_prev·x̂₀ + √(1 − ᾱ_prev)·ε̂ with ε̂ = (x_t − √ᾱ_t·x̂₀)/√(1 − ᾱ_t); past t = 0, ᾱ_prev is
        // 1 with set_alpha_to_one and ᾱ_0 without.
        var scheduler = new CogVideoXDdimScheduler(Config2b with { SetAlphaToOne = alphaToOne });
        scheduler.SetTimesteps(5);
        var sample = Random(64, 3);
        var modelOut = Random(64, 4);
        for (int i = 0; i < 5; i++)
        {
            int t = scheduler.Timesteps[i];
            int prev = t - 1000 / 5;
            double a = scheduler.AlphasCumprod[t];
            double aPrev = prev >= 0 ? scheduler.AlphasCumprod[prev] : alphaToOne ? 1.0 : scheduler.AlphasCumprod[0];
            var next = new float[64];
            scheduler.Step(i, modelOut, sample, next);
            var x0 = scheduler.PredictedOriginalSample.ToArray();
            var expected = sample.Zip(x0, (s, x) =>
            {
                double epsHat = (s - Math.Sqrt(a) * x) / Math.Sqrt(1 - a);
                return (float)(Math.Sqrt(aPrev) * x + Math.Sqrt(1 - aPrev) * epsHat);
            }).ToArray();
            // At t = 999 ᾱ_t is 0 (zero terminal SNR) and ε̂ is the sample itself: the identity still holds.
            Compare.AssertAbs(expected, next, 1e-5, $"step {i} (t = {t})");
            if (prev < 0 && alphaToOne) TorchGeneratorTests.AssertBitExact(x0, next, "last step lands on x̂₀");
            sample = next;
        }
    }

    [Fact]
    public void ScheduleWithoutShiftOrRescaleIsThePlainCumulativeProduct()
    {
        var plain = new CogVideoXDdimScheduler(Config2b with { SnrShiftScale = 1.0, RescaleBetasZeroSnr = false });
        double product = 1;
        for (int i = 0; i < 1000; i++)
        {
            double root = Math.Sqrt(0.00085) + (Math.Sqrt(0.012) - Math.Sqrt(0.00085)) * i / 999;
            product *= 1 - root * root;
            Assert.Equal(product, plain.AlphasCumprod[i], 1e-12);
        }
        // The SNR shift divides ᾱ by s + (1 − s)·ᾱ.
        var shifted = new CogVideoXDdimScheduler(Config2b with { SnrShiftScale = 3.0, RescaleBetasZeroSnr = false });
        foreach (int i in new[] { 0, 500, 999 })
        {
            double a = plain.AlphasCumprod[i];
            Assert.Equal(a / (3.0 - 2.0 * a), shifted.AlphasCumprod[i], 1e-15);
        }
        // Rescaling keeps ᾱ_0 and sends ᾱ_999 to 0.
        var rescaled = new CogVideoXDdimScheduler(Config2b);
        Assert.Equal(shifted.AlphasCumprod[0], rescaled.AlphasCumprod[0], 1e-15);
        Assert.Equal(0.0, rescaled.AlphasCumprod[999]);
    }

    [Fact]
    public void LeadingSpacingAddsStepsOffset()
    {
        var scheduler = new CogVideoXDdimScheduler(Config2b with { TimestepSpacing = "leading", StepsOffset = 1 });
        scheduler.SetTimesteps(10);
        Assert.Equal(new[] { 901, 801, 701, 601, 501, 401, 301, 201, 101, 1 }, scheduler.Timesteps.ToArray());
        var e = Assert.Throws<CogVideoXException>(() => scheduler.SetTimesteps(1000));
        Assert.Contains("steps_offset", e.Message);
    }

    [Fact]
    public void TrailingStepCountsWhereNumpyOvershootsKeepTheRequestedLength()
    {
        // numpy's arange gives 62 entries for 61 trailing steps (the last −1); the schedule keeps diffusers' first 61.
        var scheduler = new CogVideoXDdimScheduler(Config2b);
        scheduler.SetTimesteps(61);
        Assert.Equal(61, scheduler.Timesteps.Count);
        Assert.Equal(999, scheduler.Timesteps[0]);
        Assert.True(scheduler.Timesteps[^1] >= 0);
        Assert.True(scheduler.Timesteps.Zip(scheduler.Timesteps.Skip(1)).All(p => p.First > p.Second));
    }

    [Theory]
    [InlineData(SchedulerKind.Ddim)]
    [InlineData(SchedulerKind.Dpm)]
    public void InPlaceStepEqualsSeparateOutput(SchedulerKind kind)
    {
        var a = Create(kind, Config2b);
        var b = Create(kind, Config2b);
        a.SetTimesteps(4);
        b.SetTimesteps(4);
        var ga = new TorchGenerator(4);
        var gb = new TorchGenerator(4);
        var inPlace = Random(40, 5);
        var separate = (float[])inPlace.Clone();
        for (int i = 0; i < 4; i++)
        {
            var modelOut = Random(40, 10 + i);
            a.Step(i, modelOut, inPlace, inPlace, ga);
            var next = new float[40];
            b.Step(i, modelOut, separate, next, gb);
            separate = next;
            TorchGeneratorTests.AssertBitExact(separate, inPlace, $"{kind} step {i}");
        }
    }

    public static TheoryData<string, string> BadConfigs() => new()
    {
        { "beta_schedule", "linear" },
        { "prediction_type", "noise" },
        { "timestep_spacing", "karras" },
        { "snr_shift_scale", "0" },
        { "num_train_timesteps", "1" },
        { "beta_start", "-0.1" },
        { "steps_offset", "-1" },
        { "trained_betas", "[0.1]" },
    };

    [Theory]
    [MemberData(nameof(BadConfigs))]
    public void BadConfigIsRefusedNamingTheKey(string key, string value)
    {
        var config = key switch
        {
            "beta_schedule" => Config2b with { BetaSchedule = value },
            "prediction_type" => Config2b with { PredictionType = value },
            "timestep_spacing" => Config2b with { TimestepSpacing = value },
            "snr_shift_scale" => Config2b with { SnrShiftScale = double.Parse(value) },
            "num_train_timesteps" => Config2b with { NumTrainTimesteps = int.Parse(value) },
            "beta_start" => Config2b with { BetaStart = double.Parse(value) },
            "steps_offset" => Config2b with { StepsOffset = int.Parse(value) },
            _ => Config2b with { TrainedBetas = [0.1] },
        };
        var e = Assert.Throws<CogVideoXException>(() => new CogVideoXDpmScheduler(config));
        Assert.Contains(key, e.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1001)]
    public void StepCountOutsideTheTrainedRangeIsRefused(int steps)
    {
        var scheduler = new CogVideoXDdimScheduler(Config2b);
        var e = Assert.Throws<CogVideoXException>(() => scheduler.SetTimesteps(steps));
        Assert.Contains("between 1 and 1000", e.Message);
    }

    [Fact]
    public void MisuseIsRefused()
    {
        var dpm = new CogVideoXDpmScheduler(Config2b);
        var x = new float[8];
        Assert.Throws<InvalidOperationException>(() => dpm.Step(0, x, x, x, new TorchGenerator(1)));
        dpm.SetTimesteps(3);
        Assert.Throws<ArgumentNullException>(() => dpm.Step(0, x, x, x, null));
        Assert.Throws<InvalidOperationException>(() => dpm.Step(1, x, x, x, new TorchGenerator(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => dpm.Step(3, x, x, x, new TorchGenerator(1)));
        Assert.Throws<ArgumentException>(() => dpm.Step(0, new float[7], x, x, new TorchGenerator(1)));
        dpm.Step(0, x, x, x, new TorchGenerator(1));
        Assert.Equal(0, dpm.PreviousStepIndex);
        Assert.Throws<ArgumentException>(() => dpm.Step(1, new float[4], new float[4], new float[4], new TorchGenerator(1)));
        dpm.SetTimesteps(3);
        Assert.Equal(-1, dpm.PreviousStepIndex);
        Assert.True(dpm.PredictedOriginalSample.IsEmpty);

        using var a = Tensor.FromArray(new float[8], [2, 4]);
        using var b = Tensor.FromArray(new float[8], [4, 2]);
        Assert.Throws<ArgumentException>(() => dpm.Step(0, a, b, new TorchGenerator(1)));
    }

    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(1e-10, 1.00000000005e-10)]
    [InlineData(-1e-3, -9.995001666250085e-4)]
    [InlineData(-0.5, -0.3934693402873666)]
    [InlineData(0.75, 1.1170000166126748)]
    [InlineData(-3.0, -0.950212931632136)]
    [InlineData(double.NegativeInfinity, -1.0)]
    public void Expm1IsAccurate(double x, double expected)
    {
        double got = CogVideoXDpmScheduler.Expm1(x);
        Assert.True(Math.Abs(got - expected) <= 4 * Math.Abs(Math.BitIncrement(Math.Abs(expected)) - Math.Abs(expected)),
            $"expm1({x}) = {got:R}, expected {expected:R}");
    }
}
