using System.Security.Cryptography;
using CogVideoX.Engine;
using CogVideoX.Media;

namespace CogVideoX.Tests.Media;

/// <summary>The MP4 writer on a disk that fills or refuses: a bad file never takes a good one's place, and the error says why.</summary>
public class OutputIntegrityTests
{
    private static VideoFrames Noise(int count, int height, int width, int seed)
    {
        var rng = new Random(seed);
        var data = new float[count * 3 * height * width];
        for (int i = 0; i < data.Length; i++) data[i] = (float)rng.NextDouble();
        return new VideoFrames(data, count, height, width);
    }

    private static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    [Fact]
    public void ATruncatedEncodeIsRefusedAndTheEarlierVideoIsKept()
    {
        using var dir = new TempDir();
        var path = dir.File("v.mp4");
        VideoEncoder.WriteMp4(Noise(9, 32, 48, 1), path);
        var good = Sha(path);

        CogVideoXException e;
        using (FaultyDisk.TruncatingEncodes())
            e = Assert.Throws<CogVideoXException>(() => VideoEncoder.WriteMp4(Noise(9, 32, 48, 2), path));
        Assert.Contains($"the encoded video {path} came out incomplete and was not kept", e.Message);
        Assert.Contains("any earlier video there is unchanged", e.Message);
        Assert.DoesNotContain(".partial-", e.Message);
        Assert.Equal(good, Sha(path));
        Assert.Equal(["v.mp4"], Directory.GetFiles(dir.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void TheWriteCheckFindsAFileInThePathAndAFolderInThePlaceOfTheFile()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("notes.txt"), "x");
        var e = Assert.Throws<CogVideoXException>(() => AtomicFile.CheckWritable(dir.File("notes.txt", "new", "v.mp4"), "--output"));
        Assert.Contains($"could not write --output {dir.File("notes.txt", "new", "v.mp4")}: {dir.File("notes.txt")} is a file, not a folder", e.Message);
        Directory.CreateDirectory(dir.File("d.mp4"));
        Assert.Contains("is a folder; give the file to write", Assert.Throws<CogVideoXException>(() => AtomicFile.CheckWritable(dir.File("d.mp4"), "--output")).Message);

        // A writable folder passes; the check leaves neither its probe file nor the folders it made to try.
        AtomicFile.CheckWritable(dir.File("made", "deeper", "v.mp4"), "--output");
        Assert.Equal([dir.File("d.mp4"), dir.File("notes.txt")], Directory.GetFileSystemEntries(dir.Path).Order());
        Directory.CreateDirectory(dir.File("kept"));
        AtomicFile.CheckWritable(dir.File("kept", "v.mp4"), "--output");
        Assert.Empty(Directory.GetFileSystemEntries(dir.File("kept")));
    }

    [Fact]
    public void AReadOnlyOrFullDiskIsNamedWithThePathAndWhatToDo()
    {
        using var dir = new TempDir();
        var target = dir.File("new", "v.mp4");
        using (FaultyDisk.Inject((stage, path) => { if (stage == WriteFaults.Folder) throw FaultyDisk.ReadOnly(path); }))
        {
            var e = Assert.Throws<CogVideoXException>(() => AtomicFile.CheckWritable(target, "--output"));
            Assert.Equal($"could not write --output {target}: {dir.Path} is on a read-only file system; choose a folder on a writable disk", e.Message);
        }
        var full = FileErrors.Explain(FaultyDisk.Full(target), "the sidecar", target);
        Assert.StartsWith($"disk full: could not write the sidecar {target} (no space left on the device of {dir.Path})", full.Message);
        Assert.Contains("free some space or write to another disk", full.Message);
        Assert.StartsWith("permission denied:", FileErrors.Describe(new UnauthorizedAccessException($"Access to the path '{target}' is denied.")));
        Assert.StartsWith("disk full: No space left on device", FileErrors.Describe(FaultyDisk.Full(target)));
    }
}
