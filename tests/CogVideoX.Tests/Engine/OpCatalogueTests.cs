using CogVideoX.Engine;
using CogVideoX.Engine.Testing;

namespace CogVideoX.Tests.Engine;

/// <summary>The op catalogue that checks device backends: every case must run on the CPU reference.</summary>
public class OpCatalogueTests
{
    public static TheoryData<int> CaseIndices()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < OpCatalogue.All().Count; i++) data.Add(i);
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseIndices))]
    public void CaseRunsOnTheCpuAndGivesFiniteValues(int index)
    {
        var c = OpCatalogue.All()[index];
        using var scope = new TensorScope();
        using var forced = c.Decomposed ? Decompositions.Force() : null;
        var y = c.Body(new OpInputs(CpuBackend.Instance, c.DType, index));
        var values = y.ToFloatArray();
        Assert.NotEmpty(values);
        Assert.All(values, v => Assert.True(float.IsFinite(v), $"{c}: non-finite output"));
        Assert.Equal(y.ElementCount, values.Length);
    }

    [Fact]
    public void CatalogueCoversEveryBackendOpAndDType()
    {
        var cases = OpCatalogue.All();
        string[] ops = ["copy", "convert", "fill", "gather", "affine", "clamp", "softmax", "layer_norm", "rms_norm",
            "group_norm", "rotary", "linear", "matmul", "conv3d", "attention", "add", "sub", "mul", "div", "max", "min", "sum", "mean"];
        foreach (var op in ops)
            foreach (var dt in new[] { DType.F32, DType.F16, DType.BF16 })
                Assert.Contains(cases, c => c.Op == op && c.DType == dt);
        foreach (var u in Enum.GetValues<UnaryOp>())
            Assert.Contains(cases, c => c.Op == u.ToString().ToLowerInvariant());
    }

    [Fact]
    public void InputsAreTheSameOnEveryRun()
    {
        using var a = new OpInputs(CpuBackend.Instance, DType.F32, 7).Rand(3, 5);
        using var b = new OpInputs(CpuBackend.Instance, DType.F32, 7).Rand(3, 5);
        using var c = new OpInputs(CpuBackend.Instance, DType.F32, 8).Rand(3, 5);
        Assert.Equal(a.ToFloatArray(), b.ToFloatArray());
        Assert.NotEqual(a.ToFloatArray(), c.ToFloatArray());
    }

    [Fact]
    public void ErrorsAreNormalisedByTheReference()
    {
        var (maxAbs, normalised, bad) = OpCatalogue.Errors([1f, 2f, 2f], [1f, 2f, 3f]);
        Assert.Equal(1.0, maxAbs, 6);
        Assert.Equal(1.0 / Math.Sqrt(14), normalised, 6);
        Assert.Equal(0, bad);
    }

    [Fact]
    public void NonFiniteValuesOnOneSideOnlyAreCounted()
    {
        var (_, _, bad) = OpCatalogue.Errors([float.NaN, 1f, float.PositiveInfinity, float.NaN], [1f, 1f, float.PositiveInfinity, float.NaN]);
        Assert.Equal(1, bad);
    }

    [Fact]
    public void ComparisonFailsWhenTheBackendDiffers()
    {
        // A case whose output depends on the backend: the CPU as reference against a deliberately wrong result.
        var wrong = new OpCase("affine", DType.F32, "[4]", c =>
            ReferenceEquals(c.Backend, CpuBackend.Instance) ? c.Rand(4).Affine(2f) : c.Rand(4));
        var result = OpCatalogue.Compare(wrong, new ShiftedCpu(), CpuBackend.Instance, seed: 1);
        Assert.False(result.Passed);
        Assert.True(result.NormalisedError > 0.1);
    }

    /// <summary>A backend that is the CPU in every respect but identity, so a case can tell the two apart.</summary>
    private sealed class ShiftedCpu : IBackend
    {
        private static readonly CpuBackend Cpu = CpuBackend.Instance;
        public string Name => "cpu-copy";
        public Device Device => Device.Cpu;
        public void Dispose() { }
        public Storage Allocate(DType dtype, long elementCount) => Cpu.Allocate(dtype, elementCount);
        public void CopyFromHost(ReadOnlySpan<byte> source, Storage destination, long offset) => Cpu.CopyFromHost(source, destination, offset);
        public void CopyToHost(Storage source, long offset, Span<byte> destination) => Cpu.CopyToHost(source, offset, destination);
        public void Synchronize() { }
        public void Copy(Tensor source, Tensor destination) => Cpu.Copy(source, destination);
        public void Fill(Tensor destination, double value) => Cpu.Fill(destination, value);
        public void Unary(UnaryOp op, Tensor x, Tensor y) => Cpu.Unary(op, x, y);
        public void Affine(Tensor x, float scale, float shift, Tensor y) => Cpu.Affine(x, scale, shift, y);
        public void Clamp(Tensor x, float min, float max, Tensor y) => Cpu.Clamp(x, min, max, y);
        public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor y) => Cpu.Binary(op, a, b, y);
        public void MatMul(Tensor a, Tensor b, Tensor y) => Cpu.MatMul(a, b, y);
        public void Conv3d(Tensor x, Tensor weight, Tensor? bias, Conv3dParams p, Tensor y) => Cpu.Conv3d(x, weight, bias, p, y);
        public void Gather(Tensor table, Tensor indices, Tensor y) => Cpu.Gather(table, indices, y);
        public void Reduce(ReduceOp op, Tensor x, Tensor y) => Cpu.Reduce(op, x, y);
    }
}
