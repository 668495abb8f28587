using CogVideoX.Engine;
using CogVideoX.Weights;

namespace CogVideoX.Tests.Weights;

/// <summary>
/// Every way a safetensors file can be broken gets a WeightsException naming the file and what is wrong — from
/// each way of opening it — and never a crash, a hang or an allocation sized by the bad numbers.
/// </summary>
public class CorruptFileTests
{
    private static readonly byte[] s_eight = new byte[8];

    private static string Entry(string name, string dtype, string shape, long begin, long end) =>
        $"\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape},\"data_offsets\":[{begin},{end}]}}";

    private static byte[] Valid() => SafetensorsBytes.Of(
        ("a", DType.F32, [4], SafetensorsBytes.Floats(1, 2, 3, 4)),
        ("b", DType.F16, [2, 2], new byte[8]));

    public static TheoryData<string, byte[], string> Cases()
    {
        var valid = Valid();
        return new TheoryData<string, byte[], string>
        {
            { "empty file", [], "the file is empty (0 bytes)" },
            { "shorter than the length prefix", [1, 0, 0], "truncated safetensors file (3 bytes" },
            { "truncated in the data", valid[..^5], "tensor 'b': data_offsets [16, 24] lie outside the 19 bytes of data; the file is truncated or corrupt" },
            { "truncated in the header", valid[..40], "runs past the end of the file (40 bytes)" },
            { "header length past the end", SafetensorsBytes.Raw("{}", [], headerLength: 1000), "the header length 1000 runs past the end of the file (10 bytes)" },
            { "header length near 2^64", SafetensorsBytes.Raw("{}", [], headerLength: ulong.MaxValue - 3), "runs past the end of the file" },
            { "header length zero", SafetensorsBytes.Raw("", [], headerLength: 0), "the header length is 0" },
            { "invalid JSON", SafetensorsBytes.Raw("{\"a\": {\"dtype\": ", []), "the header is not valid JSON" },
            { "binary garbage", [16, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFE, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], "the header is not valid UTF-8 (byte 0xFF at offset 0 of the header)" },
            { "non-object header", SafetensorsBytes.Raw("[1, 2, 3]", []), "the header must be a JSON object, found a list" },
            { "null header", SafetensorsBytes.Raw("null", []), "the header must be a JSON object, found null" },
            { "entry not an object", SafetensorsBytes.Raw("{\"a\": 5}", []), "tensor 'a': the entry must be an object" },
            { "offsets outside the data", SafetensorsBytes.Raw("{" + Entry("a", "F32", "[4]", 0, 16) + "}", s_eight), "tensor 'a': data_offsets [0, 16] lie outside the 8 bytes of data" },
            { "offsets beyond long", SafetensorsBytes.Raw("{" + Entry("a", "F32", "[2]", 0, 8) .Replace("[0,8]", "[0,99999999999999999999]") + "}", s_eight), "tensor 'a': data_offsets [0,99999999999999999999] are not integers" },
            { "negative offset", SafetensorsBytes.Raw("{" + Entry("a", "F32", "[2]", -8, 0) + "}", s_eight), "data_offsets [-8,0] are not integers with 0 ≤ begin ≤ end" },
            { "end before begin", SafetensorsBytes.Raw("{" + Entry("a", "F32", "[0]", 8, 0) + "}", s_eight), "data_offsets [8,0] are not integers with 0 ≤ begin ≤ end" },
            { "offsets not a pair", SafetensorsBytes.Raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", s_eight), "tensor 'a': 'data_offsets' must be [begin, end]" },
            { "overlapping offsets", SafetensorsBytes.Raw("{" + Entry("a", "F32", "[2]", 0, 8) + "," + Entry("b", "F32", "[2]", 4, 12) + "}", new byte[12]), "tensors 'a' [0, 8) and 'b' [4, 12) overlap" },
            { "same offsets twice", SafetensorsBytes.Raw("{" + Entry("a", "F32", "[2]", 0, 8) + "," + Entry("b", "F32", "[2]", 0, 8) + "}", s_eight), "overlap" },
            { "hole between tensors", SafetensorsBytes.Raw("{" + Entry("a", "F32", "[1]", 0, 4) + "," + Entry("b", "F32", "[1]", 8, 12) + "}", new byte[12]), "data bytes [4, 8) belong to no tensor" },
            { "bytes after the last tensor", SafetensorsBytes.Raw("{" + Entry("a", "F32", "[1]", 0, 4) + "}", s_eight), "4 bytes after the last tensor's data belong to no tensor" },
            { "unknown dtype", SafetensorsBytes.Raw("{" + Entry("a", "X99", "[2]", 0, 8) + "}", s_eight), "tensor 'a': unknown dtype 'X99' (supported: F32, F16, BF16, I64)" },
            { "unsupported dtype", SafetensorsBytes.Raw("{" + Entry("a", "F64", "[1]", 0, 8) + "}", s_eight), "tensor 'a': dtype F64 is valid safetensors but not supported here" },
            { "dtype not a string", SafetensorsBytes.Raw("{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", s_eight), "tensor 'a': 'dtype' is missing or not a string" },
            { "byte count not shape × dtype size", SafetensorsBytes.Raw("{" + Entry("a", "F32", "[3]", 0, 8) + "}", s_eight), "tensor 'a': 8 bytes stored, but shape [3] of F32 needs 12" },
            { "byte count for the wrong dtype", SafetensorsBytes.Raw("{" + Entry("a", "BF16", "[2]", 0, 8) + "}", s_eight), "8 bytes stored, but shape [2] of BF16 needs 4" },
            { "negative dimension", SafetensorsBytes.Raw("{" + Entry("a", "F32", "[-2]", 0, 8) + "}", s_eight), "tensor 'a': dimension 0 of the shape is -2; dimensions are integers from 0 to 2147483647" },
            { "huge dimension", SafetensorsBytes.Raw("{" + Entry("a", "F32", "[2, 4294967296]", 0, 8) + "}", s_eight), "dimension 1 of the shape is 4294967296" },
            { "fractional dimension", SafetensorsBytes.Raw("{" + Entry("a", "F32", "[2.5]", 0, 8) + "}", s_eight), "dimension 0 of the shape is 2.5" },
            { "element count overflows", SafetensorsBytes.Raw("{" + Entry("a", "F32", "[2147483647, 2147483647, 2147483647]", 0, 8) + "}", s_eight), "shape [2147483647, 2147483647, 2147483647] has more elements than any file can hold" },
            { "byte count overflows", SafetensorsBytes.Raw("{" + Entry("a", "I64", "[2147483647, 2147483647, 2]", 0, 8) + "}", s_eight), "has more elements than any file can hold" },
            { "shape missing", SafetensorsBytes.Raw("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", s_eight), "tensor 'a': 'shape' is missing" },
            { "duplicate tensor name", SafetensorsBytes.Raw("{" + Entry("a", "F32", "[1]", 0, 4) + "," + Entry("a", "F32", "[1]", 4, 8) + "}", s_eight), "tensor 'a' appears twice in the header" },
            { "metadata not strings", SafetensorsBytes.Raw("{\"__metadata__\":{\"format\":1}}", []), "'__metadata__' value 'format' must be a string" },
        };
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void CorruptFileGetsClearError(string what, byte[] bytes, string expected)
    {
        using var dir = new TempFolder();
        var path = dir.Write("diffusion_pytorch_model.safetensors", bytes);
        foreach (var open in new Func<object>[] { () => SafetensorsFile.Open(path), () => SafetensorsHeader.Read(path), () => Checkpoint.Open(dir.Path) })
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            var e = Assert.Throws<WeightsException>(() => (open() as IDisposable)?.Dispose());
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(e.Message.StartsWith(path + ":", StringComparison.Ordinal), $"{what}: the message should start with the file: {e.Message}");
            Assert.True(e.Message.Contains(expected, StringComparison.Ordinal), $"{what}: expected '{expected}' in: {e.Message}");
            Assert.DoesNotContain('\n', e.Message);
            Assert.True(allocated < 4 << 20, $"{what}: opening allocated {allocated} bytes");
        }
    }

    /// <summary>
    /// A header length under the file size but over the format's 100 MB limit is refused before anything is read
    /// or allocated from it (the file is sparse, so this costs no disk).
    /// </summary>
    [Fact]
    public void HeaderOverTheFormatLimitIsRefusedWithoutAllocating()
    {
        using var dir = new TempFolder();
        var path = dir.File("big.safetensors");
        using (var f = new FileStream(path, FileMode.CreateNew))
        {
            f.Write(BitConverter.GetBytes(150UL << 20));
            f.SetLength(200L << 20);
        }
        foreach (var open in new Func<IDisposable?>[] { () => SafetensorsFile.Open(path), () => { SafetensorsHeader.Read(path); return null; } })
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            var e = Assert.Throws<WeightsException>(() => open()?.Dispose());
            Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20);
            Assert.Equal($"{path}: the header length {150L << 20} is over the format's limit of {100L << 20} bytes; not a safetensors file", e.Message);
        }
    }

    [Fact]
    public void ValidFileOpensAllWays()
    {
        using var dir = new TempFolder();
        var path = dir.Write("model.safetensors", Valid());
        var header = SafetensorsHeader.Read(path);
        Assert.Equal(8, header.ParameterCount);
        Assert.Equal("pt", header.Metadata["format"]);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(header.Json.ToArray(), file.Header.Json.ToArray());
        using var a = file.Load("a");
        Assert.Equal([1f, 2, 3, 4], a.ToFloatArray());
        using var empty = SafetensorsFile.Open(dir.Write("empty.safetensors", SafetensorsBytes.Raw("{}", [])));
        Assert.Empty(empty.Entries);
    }

    [Fact]
    public void ZeroSizedTensorsNeedNoData()
    {
        using var dir = new TempFolder();
        var path = dir.Write("z.safetensors", SafetensorsBytes.Raw("{" + Entry("a", "F32", "[0, 5]", 0, 0) + "," + Entry("b", "F16", "[]", 0, 2) + "}", [0x00, 0x3C]));
        using var file = SafetensorsFile.Open(path);
        using var a = file.Load("a");
        Assert.Equal([0, 5], a.ShapeArray());
        using var b = file.Load("b", dtype: DType.F32);
        Assert.Equal(1f, b.Item());
    }

    [Fact]
    public void LinkToMissingFileSaysSo()
    {
        using var dir = new TempFolder();
        var link = Path.Combine(dir.Path, "model.safetensors");
        File.CreateSymbolicLink(link, "../blobs/0123abcd");
        var e = Assert.Throws<WeightsException>(() => SafetensorsFile.Open(link));
        Assert.Equal($"{link}: a link to '../blobs/0123abcd', which does not exist (an incomplete download?)", e.Message);
    }
}
