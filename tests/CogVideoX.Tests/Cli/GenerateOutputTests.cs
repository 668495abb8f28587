using System.Diagnostics;
using System.Security.Cryptography;
using CogVideoX.Lab;
using CogVideoX.Media;
using static CogVideoX.Tests.CliRun;

namespace CogVideoX.Tests.Cli;

/// <summary>
/// <c>generate</c> where the output cannot be written: a full disk, a read-only folder, a file in the way, a sidecar
/// that would replace someone else's file, an unwritable --save-tensors, leftovers of a killed run. Each is a clear
/// error — before any compute where it can be known — and never a broken or half-written file under a final name.
/// </summary>
public class GenerateOutputTests
{
    private static string[] Tiny(string output, params string[] more) =>
        ["generate", "--model", Fixtures.Path2b, "--prompt", "a cat", "--frames", "9", "--height", "32", "--width", "48", "--steps", "2", "--output", output, .. more];

    private static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    private static string[] Files(string dir) =>
        Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(dir, f)).Order().ToArray();

    [Fact]
    public void AVideoTruncatedByAFullDiskIsAnErrorAndTheEarlierVideoStays()
    {
        using var dir = new TempDir();
        var output = dir.File("v.mp4");
        var first = Run(Tiny(output));
        Assert.True(first.Code == 0, first.Err);
        var (video, sidecar) = (Sha(output), Sha(dir.File("v.json")));

        (int Code, string Out, string Err) r;
        using (FaultyDisk.TruncatingEncodes())
            r = Run(Tiny(output, "--seed", "7", "--overwrite"));
        Assert.Equal(1, r.Code);
        Assert.Contains($"error: the encoded video {output} came out incomplete and was not kept", r.Err);
        Assert.DoesNotContain("internal error", r.Err);
        Assert.Equal((video, sidecar), (Sha(output), Sha(dir.File("v.json"))));
        Assert.Equal(["v.json", "v.mp4"], Files(dir.Path));
    }

    [Fact]
    public void AFullDiskAtTheSidecarLeavesNoVideoWithoutItsSidecar()
    {
        using var dir = new TempDir();
        var output = dir.File("new", "v.mp4");
        (int Code, string Out, string Err) r;
        using (FaultyDisk.FullOn(".json"))
            r = Run(Tiny(output));
        Assert.Equal(1, r.Code);
        Assert.Contains($"error: disk full: could not write the sidecar {dir.File("new", "v.json")} (no space left on the device of {dir.File("new")}); free some space or write to another disk", r.Err);
        Assert.Empty(Files(dir.Path));
    }

    [Fact]
    public void AnOutputFolderOnAReadOnlyDiskIsRefusedBeforeAnyCompute()
    {
        using var dir = new TempDir();
        var output = dir.File("new", "v.mp4");
        (int Code, string Out, string Err) r;
        using (FaultyDisk.Inject((stage, path) => { if (stage == WriteFaults.Folder) throw FaultyDisk.ReadOnly(path); }))
            r = Run(Tiny(output));
        Assert.Equal(1, r.Code);
        Assert.Contains($"error: could not write --output {output}: {dir.Path} is on a read-only file system; choose a folder on a writable disk", r.Err);
        Assert.DoesNotContain("loading", r.Err);
        Assert.DoesNotContain("denoise", r.Err);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void AFileWhereTheOutputFolderShouldBeIsRefusedBeforeAnyCompute()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("videos"), "a file");
        var r = Run(Tiny(dir.File("videos", "v.mp4")));
        Assert.Equal(1, r.Code);
        Assert.Contains($"error: could not write --output {dir.File("videos", "v.mp4")}: {dir.File("videos")} is a file, not a folder; choose another path", r.Err);
        Assert.DoesNotContain("denoise", r.Err);
        Assert.Equal(["videos"], Files(dir.Path));
    }

    [Fact]
    public void AnUnwritableSaveTensorsIsRefusedBeforeTheVideoIsMade()
    {
        using var dir = new TempDir();
        var tensors = dir.File("ro", "t.safetensors");
        (int Code, string Out, string Err) r;
        using (FaultyDisk.Inject((stage, path) => { if (stage == WriteFaults.Folder && path == dir.File("ro")) throw FaultyDisk.ReadOnly(path); }))
            r = Run(Tiny(dir.File("v.mp4"), "--save-tensors", tensors));
        Assert.Equal(1, r.Code);
        Assert.Contains($"error: could not write --save-tensors {tensors}: {dir.Path} is on a read-only file system; choose a folder on a writable disk", r.Err);
        Assert.DoesNotContain("denoise", r.Err);
        Assert.Empty(Files(dir.Path));
    }

    [Fact]
    public void ADiskThatFillsAtTheTensorsSaysSoAndKeepsTheFinishedVideo()
    {
        using var dir = new TempDir();
        var tensors = dir.File("t.safetensors");
        (int Code, string Out, string Err) r;
        using (FaultyDisk.FullOn(".safetensors"))
            r = Run(Tiny(dir.File("v.mp4"), "--save-tensors", tensors));
        Assert.Equal(1, r.Code);
        Assert.Contains($"error: disk full: could not write --save-tensors {tensors}", r.Err);
        Assert.Contains("(the video v.mp4 and its sidecar were written and are complete)", r.Err);
        Assert.Equal(["v.json", "v.mp4"], Files(dir.Path));
        Assert.True(VideoSidecar.IsComplete(new VideoJob("generate", "v", dir.File("v.mp4"), VideoSidecar.TryLoad(dir.File("v.json"))!.Settings)));
    }

    [Fact]
    public void AnOutputWhoseSidecarWouldReplaceModelIndexIsRefused()
    {
        using var dir = new TempDir();
        var index = File.ReadAllText(Path.Combine(Fixtures.Path2b, "model_index.json"));
        File.WriteAllText(dir.File("model_index.json"), index);
        var output = dir.File("model_index.mp4");
        var r = Run(Tiny(output));
        Assert.Equal(2, r.Code);
        Assert.Contains($"error: --output {output}: its sidecar would be written to {dir.File("model_index.json")}, which exists and is not a cogvideox sidecar — writing it would destroy that file; choose another name or folder for the video", r.Err);
        Assert.Equal(index, File.ReadAllText(dir.File("model_index.json")));
        Assert.Equal(["model_index.json"], Files(dir.Path));
    }

    [Fact]
    public void LeftoversOfAKilledRunAreRemovedByTheNextRun()
    {
        using var dir = new TempDir();
        int dead;
        using (var p = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!)
        {
            p.WaitForExit();
            dead = p.Id;
        }
        // What a run killed during the encode leaves: hidden temporary video, sidecar and tensors.
        foreach (var name in new[] { "v.partial-{0}-{1}.mp4", "v.partial-{0}-{1}.json", "t.partial-{0}-{1}.safetensors" })
            File.WriteAllText(dir.File("." + string.Format(System.Globalization.CultureInfo.InvariantCulture, name, dead, Guid.NewGuid().ToString("N"))), "half");
        var r = Run(Tiny(dir.File("v.mp4"), "--save-tensors", dir.File("t.safetensors")));
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(["t.safetensors", "v.json", "v.mp4"], Files(dir.Path));
    }
}
