using CogVideoX.Engine;
using CogVideoX.Engine.Testing;
using CogVideoX.Models.Transformer;

namespace CogVideoX.Tests.Engine;

/// <summary>
/// The adaptive norm written as an FP8 linear's input (modulated_layer_norm_fp8) and the linear on it: the same codes,
/// scales and outputs as the norm in the model's dtype followed by the linear's own quantization, bit for bit, in the
/// op and in a whole transformer; the argument errors.
/// </summary>
public class Fp8NormTests
{
    private static Tensor Uniform(int seed, float lo, float hi, DType dtype, params int[] shape)
    {
        var random = new Random(seed);
        long n = 1;
        foreach (var d in shape) n *= d;
        var data = new float[n];
        for (long i = 0; i < n; i++) data[i] = lo + (float)random.NextDouble() * (hi - lo);
        return Tensor.FromArray(data, shape, CpuBackend.Instance, dtype);
    }

    private static byte[] CodesOf(Tensor codes)
    {
        using var c = codes.IsContiguous ? codes.Alias() : throw new ArgumentException("contiguous codes expected");
        return CpuBackend.Bytes(c).ToArray();
    }

    [Theory]
    [InlineData(DType.F32, 64, true)]
    [InlineData(DType.F16, 64, true)]
    [InlineData(DType.BF16, 64, true)]
    [InlineData(DType.F16, 1920, true)]
    [InlineData(DType.BF16, 40, false)]
    public void TheFusedNormGivesTheNormThenTheQuantizationBitForBit(DType dtype, int d, bool affine)
    {
        // LayerNormZero's split: text rows and video rows each modulated by their own chunk, written into their places.
        int b = 2, s = 13, text = 4;
        using var x = Uniform(1, -3f, 4f, dtype, b, s, d);
        using var gamma = affine ? Uniform(2, 0.5f, 1.5f, dtype, d) : null;
        using var beta = affine ? Uniform(3, -0.2f, 0.2f, dtype, d) : null;
        using var modulation = Uniform(4, -1f, 1f, dtype, b, 4 * d);
        var (fusedRows, normedRows) = OpCatalogue.SplitModulatedNorms(x, gamma, beta, modulation, 1e-5f, [(text, s - text, 0), (0, text, 2)]);
        using var fused = fusedRows;
        using var normed = normedRows;
        using var flat = normed.Reshape(b * s, d);
        using var reference = flat.QuantizeFp8();
        Assert.Equal(CodesOf(reference.Codes), CodesOf(fused.Codes));
        Assert.Equal(reference.Scales.ToFloatArray(), fused.Scales.ToFloatArray());

        // The linear on the codes equals the linear quantizing the norm itself.
        using var w = Uniform(5, -0.1f, 0.1f, dtype, 48, d);
        using var bias = Uniform(6, -1f, 1f, dtype, 48);
        using var q = w.QuantizeFp8();
        using var expected = normed.LinearFp8(q, bias, Activation.GeluTanh);
        using var actual = fused.LinearFp8(q, bias, Activation.GeluTanh);
        Assert.Equal(expected.ShapeArray(), actual.ShapeArray());
        Assert.Equal(dtype, actual.DType);
        Assert.Equal(expected.ToFloatArray(), actual.ToFloatArray());
    }

    [Fact]
    public void AllZeroAndOneHotRowsKeepTheirScales()
    {
        // A zero row (scale 1, all codes 0) and a row whose one large value maps to ±448 after the norm.
        using var x = Tensor.FromArray(new float[] { 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0 }, [2, 8], CpuBackend.Instance, DType.F16);
        using var scale = Tensor.Zeros(CpuBackend.Instance, DType.F16, 2, 8);
        using var shift = Tensor.Zeros(CpuBackend.Instance, DType.F16, 2, 8);
        using var fused = x.ModulatedLayerNormFp8(null, null, scale, shift, 1e-6f);
        using var normed = x.ModulatedLayerNorm(null, null, scale, shift, 1e-6f);
        using var reference = normed.QuantizeFp8();
        Assert.Equal(1f, fused.Scales.ToFloatArray()[0]);
        Assert.Equal(CodesOf(reference.Codes), CodesOf(fused.Codes));
        Assert.Equal(reference.Scales.ToFloatArray(), fused.Scales.ToFloatArray());
        Assert.Contains((byte)0x7E, CodesOf(fused.Codes));
    }

    [Theory]
    [InlineData(DType.F32, "pipeline_2b_style")]
    [InlineData(DType.F16, "pipeline_5b_style")]
    public void AnFp8TransformerGivesTheUnfusedOutputBitForBit(DType dtype, string style)
    {
        using var model = CogVideoXTransformer.Load(Fixtures.GoldenFile(style, "transformer"), CpuBackend.Instance, dtype);
        string run = style == "pipeline_2b_style" ? "panda_s42" : "whale_dpm_frames13";
        var tensors = Fixtures.LoadAll(Fixtures.GoldenFile(style, "runs", run + ".safetensors"));
        try
        {
            using var input = tensors["transformer_in_step0"].To(dtype);
            using var text0 = input.Dim(0) == 2
                ? Ops.Concat(0, tensors["negative_embeds"], tensors["prompt_embeds"])
                : tensors["prompt_embeds"].Alias();
            using var text = text0.To(dtype);
            float[] timesteps = Array.ConvertAll(tensors["timestep_step0"].ToLongArray(), t => (float)t);
            using var rotary = model.Config.UseRotaryPositionalEmbeddings ? model.BuildRotaryTables(input.Dim(1), input.Dim(3), input.Dim(4)) : null;
            model.Linears = LinearMode.Fp8;
            model.PrepareFp8();
            using var fused = model.Forward(input, text, timesteps, rotary);
            Tensor unfused;
            using (TransformerBlock.UnfusedFp8Inputs()) unfused = model.Forward(input, text, timesteps, rotary);
            using (unfused)
            {
                Assert.Equal(unfused.ToFloatArray(), fused.ToFloatArray());
                // And FP8 really ran: not the exact output.
                model.Linears = LinearMode.Exact;
                using var exact = model.Forward(input, text, timesteps, rotary);
                Assert.NotEqual(exact.ToFloatArray(), fused.ToFloatArray());
            }
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    [Fact]
    public void ArgumentErrorsSayWhatIsExpected()
    {
        using var x = Uniform(1, -1f, 1f, DType.F16, 2, 3, 16);
        using var scale = Tensor.Zeros(CpuBackend.Instance, DType.F16, 2, 1, 16);
        using var shift = Tensor.Zeros(CpuBackend.Instance, DType.F16, 2, 1, 16);
        using var scales = Tensor.Empty(CpuBackend.Instance, DType.F32, 2, 3);

        using (var wrongType = Tensor.Empty(CpuBackend.Instance, DType.F16, 2, 3, 16))
            Assert.Contains("codes Tensor[2, 3, 16] F16 on cpu must be F8_E4M3 [2, 3, 16]",
                Assert.Throws<ArgumentException>(() => x.ModulatedLayerNormFp8Into(null, null, scale, shift, 1e-6f, wrongType, scales)).Message, StringComparison.OrdinalIgnoreCase);
        using (var wrongShape = Tensor.Empty(CpuBackend.Instance, DType.F8E4M3, 2, 3, 8))
            Assert.Contains("must be F8_E4M3 [2, 3, 16] (x's shape)",
                Assert.Throws<ArgumentException>(() => x.ModulatedLayerNormFp8Into(null, null, scale, shift, 1e-6f, wrongShape, scales)).Message);
        using (var codes = Tensor.Empty(CpuBackend.Instance, DType.F8E4M3, 2, 3, 16))
        {
            using var badScales = Tensor.Empty(CpuBackend.Instance, DType.F32, 2, 4);
            Assert.Contains("must be F32 [2, 3] (one per row of x [2, 3, 16])",
                Assert.Throws<ArgumentException>(() => x.ModulatedLayerNormFp8Into(null, null, scale, shift, 1e-6f, codes, badScales)).Message);
            using var f16Scales = Tensor.Empty(CpuBackend.Instance, DType.F16, 2, 3);
            Assert.Contains("must be F32 [2, 3]",
                Assert.Throws<ArgumentException>(() => x.ModulatedLayerNormFp8Into(null, null, scale, shift, 1e-6f, codes, f16Scales)).Message);
            using var badShift = Tensor.Zeros(CpuBackend.Instance, DType.F16, 2, 1, 5);
            Assert.Contains("modulated_layer_norm_fp8",
                Assert.Throws<ArgumentException>(() => x.ModulatedLayerNormFp8Into(null, null, scale, badShift, 1e-6f, codes, scales)).Message);
        }
        using (var wide = Tensor.Empty(CpuBackend.Instance, DType.F8E4M3, 2, 3, 16, 2))
        using (var strided = wide.Select(3, 0))
            Assert.Contains("unit stride along their last dim",
                Assert.Throws<ArgumentException>(() => x.ModulatedLayerNormFp8Into(null, null, scale, shift, 1e-6f, strided, scales)).Message);

        // A backend without FP8 linears refuses the op and says what to use.
        var core = new CoreOnlyBackend();
        using var xc = x.To(core);
        using var sc = scale.To(core);
        using var sh = shift.To(core);
        using var cc = Tensor.Empty(core, DType.F8E4M3, 2, 3, 16);
        using var ss = Tensor.Empty(core, DType.F32, 2, 3);
        Assert.Contains("use --linear exact",
            Assert.Throws<CogVideoXException>(() => xc.ModulatedLayerNormFp8Into(null, null, sc, sh, 1e-6f, cc, ss)).Message);
    }

    [Fact]
    public void TheQuantizedActivationAndItsLinearCheckTheirOperands()
    {
        using var codes = Tensor.Empty(CpuBackend.Instance, DType.F8E4M3, 4, 16);
        using var scales = Tensor.Empty(CpuBackend.Instance, DType.F32, 4);
        using var f16 = Tensor.Empty(CpuBackend.Instance, DType.F16, 4, 16);
        using var three = Tensor.Empty(CpuBackend.Instance, DType.F32, 3);
        Assert.Contains("codes must be a contiguous F8_E4M3",
            Assert.Throws<ArgumentException>(() => new Fp8Activation(f16.Alias(), scales.Alias(), DType.F16)).Message);
        Assert.Contains("scales must be a contiguous F32 [4]",
            Assert.Throws<ArgumentException>(() => new Fp8Activation(codes.Alias(), three.Alias(), DType.F16)).Message);
        Assert.Contains("not I64",
            Assert.Throws<ArgumentException>(() => new Fp8Activation(codes.Alias(), scales.Alias(), DType.I64)).Message);

        using var x = Uniform(7, -1f, 1f, DType.F16, 4, 16);
        using var scale = Tensor.Zeros(CpuBackend.Instance, DType.F16, 4, 16);
        using var act = x.ModulatedLayerNormFp8(null, null, scale, scale, 1e-6f);
        using var w = Uniform(8, -1f, 1f, DType.F16, 8, 32);
        using var q = w.QuantizeFp8();
        Assert.Contains("quantized input [4, 16] has 16 features but weight [8, 32] expects 32",
            Assert.Throws<ArgumentException>(() => act.LinearFp8(q)).Message);
        using var w16 = Uniform(9, -1f, 1f, DType.F16, 8, 16);
        using var q16 = w16.QuantizeFp8();
        using var f32Bias = Tensor.Zeros(CpuBackend.Instance, DType.F32, 8);
        Assert.Contains("bias is F32 but the quantized input stands for F16 values",
            Assert.Throws<ArgumentException>(() => act.LinearFp8(q16, f32Bias)).Message);
        using var shortBias = Tensor.Zeros(CpuBackend.Instance, DType.F16, 5);
        Assert.Contains("bias [5] does not match 8 outputs",
            Assert.Throws<ArgumentException>(() => act.LinearFp8(q16, shortBias)).Message);
        using var y = act.LinearFp8(q16);
        Assert.Equal([4, 8], y.ShapeArray());
    }

    [Fact]
    public void TheCpuHasTheCapability()
    {
        Assert.True(CpuBackend.Instance.Supports(Capability.ModulatedLayerNormFp8));
        Assert.False(new CoreOnlyBackend().Supports(Capability.ModulatedLayerNormFp8));
    }
}
