using CogVideoX.Lab;
using CogVideoX.Tests.Models;

namespace CogVideoX.Tests.Cli;

/// <summary><c>generate --lora FILE[:STRENGTH]</c> (repeatable) on the tiny 2b-style model.</summary>
public class LoraCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(args, stdout, stderr, gpu: GenerateCommandTests.NoGpu);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private static string[] Tiny(string output, params string[] more) =>
        ["generate", "--model", Fixtures.Path2b, "--prompt", "A panda.", "--frames", "9", "--height", "32", "--width", "48", "--steps", "1", "--output", output, .. more];

    private static string Sha(string path) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path)));

    [Fact]
    public void RepeatedLoraFlagsReachTheRunAndTheSidecarRecordsEachFile()
    {
        using var dir = new TempDir();
        string a = Path.Combine(LoraTests.LoraFixtures, "2b_a.safetensors"), b = Path.Combine(LoraTests.LoraFixtures, "2b_b_alpha.safetensors");
        var (code, stdout, stderr) = Run(Tiny(dir.File("v.mp4"), "--lora", $"{a}:0.7", "--lora", b));
        Assert.True(code == 0, stderr);
        var sidecar = VideoSidecar.TryLoad(dir.File("v.json"))!;
        Assert.Equal($"{a}:0.7; {b}:1", sidecar.Settings.Lora);
        Assert.Equal([(a, Sha(a), 0.7, 8), (b, Sha(b), 1.0, 11)],
            sidecar.Lora!.Select(l => (l.File, l.Sha256, l.Strength, l.Layers)));
        Assert.Contains("LoRA " + a + " at strength 0.7", stdout);

        // The video is complete while its LoRA files are those it was made with; a replaced file makes another video.
        var job = new VideoJob("x", "v", dir.File("v.mp4"), sidecar.Settings);
        Assert.True(VideoSidecar.IsComplete(job));
        var copy = dir.File("b.safetensors");
        File.Copy(b, copy);
        var changed = sidecar with { Lora = [.. sidecar.Lora!.Take(1), sidecar.Lora![1] with { File = copy }] };
        changed.Save(dir.File("v.json"));
        Assert.True(VideoSidecar.IsComplete(job));
        File.WriteAllBytes(copy, [.. File.ReadAllBytes(copy), 0]);
        File.SetLastWriteTimeUtc(copy, DateTime.UtcNow.AddMinutes(1));
        Assert.False(VideoSidecar.IsComplete(job));
        sidecar.Save(dir.File("v.json"));

        // Another strength is another video: the existing one is not replaced, and the message says what differs.
        (code, _, stderr) = Run(Tiny(dir.File("v.mp4"), "--lora", $"{a}:0.5", "--lora", b));
        Assert.Equal(2, code);
        Assert.Contains("lora", stderr);
    }

    [Theory]
    [InlineData("style.safetensors:strong", "is not a number")]
    [InlineData("missing.safetensors", "not found")]
    public void BadLoraFlagsAreRefusedBeforeAnythingRuns(string flag, string message)
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Run(Tiny(dir.File("v.mp4"), "--lora", flag));
        Assert.Equal(2, code);
        Assert.Contains(message, stderr);
        Assert.DoesNotContain("   at ", stderr);
        Assert.False(File.Exists(dir.File("v.mp4")));
    }
}
