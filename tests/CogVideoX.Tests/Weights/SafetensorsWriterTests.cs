using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Weights;

public class SafetensorsWriterTests
{
    [Fact]
    public void WrittenTensorsReadBackExactlyInEveryDType()
    {
        using var dir = new TempDir();
        var path = dir.File("t.safetensors");
        var values = Enumerable.Range(0, 24).Select(i => (float)Math.Sin(i) * 3).ToArray();
        using var f32 = Tensor.FromArray(values, [2, 3, 4]);
        using var f16 = f32.To(DType.F16);
        using var bf16 = f32.To(DType.BF16);
        using var ids = Tensor.FromArray(new long[] { 1, -2, 3 }, [3]);
        using var view = f32.Permute(2, 0, 1); // a strided view is written in logical order
        using var empty = Tensor.Empty(CpuBackend.Instance, DType.F32, 0, 5);
        SafetensorsWriter.Write(path, [("f32", f32), ("f16", f16), ("bf16", bf16), ("ids", ids), ("view", view), ("empty", empty)],
            new Dictionary<string, string> { ["format"] = "pt", ["note"] = "é \"quoted\"" });

        using var file = SafetensorsFile.Open(path); // validates the header: offsets, sizes, no holes
        Assert.Equal(0, (8 + file.Header.Json.Length) % 8);
        Assert.Equal(("pt", "é \"quoted\""), (file.Metadata["format"], file.Metadata["note"]));
        Assert.Equal(values, file.Load("f32").ToFloatArray());
        Assert.Equal(f16.ToFloatArray(), file.Load("f16").ToFloatArray());
        Assert.Equal(DType.F16, file.Entry("f16").DType);
        Assert.Equal(bf16.ToFloatArray(), file.Load("bf16").ToFloatArray());
        Assert.Equal(DType.BF16, file.Entry("bf16").DType);
        Assert.Equal([1L, -2, 3], file.Load("ids").ToLongArray());
        Assert.Equal([4, 2, 3], file.Entry("view").Shape);
        Assert.Equal(view.ToFloatArray(), file.Load("view").ToFloatArray());
        Assert.Equal([0, 5], file.Entry("empty").Shape);
    }

    [Theory]
    [InlineData("a", "a", "appears twice")]
    [InlineData("", "b", "cannot name a tensor")]
    [InlineData("__metadata__", "b", "cannot name a tensor")]
    public void BadNamesAreRefused(string first, string second, string message)
    {
        using var dir = new TempDir();
        using var t = Tensor.FromArray(new float[] { 1 }, [1]);
        var e = Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(dir.File("x.safetensors"), [(first, t), (second, t)]));
        Assert.Contains(message, e.Message);
    }
}
