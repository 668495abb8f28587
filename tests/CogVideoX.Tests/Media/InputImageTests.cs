using CogVideoX.Diffusion;
using CogVideoX.Engine;
using CogVideoX.Lab;
using CogVideoX.Media;
using CogVideoX.Tests.Pipeline;
using Xunit.Abstractions;

namespace CogVideoX.Tests.Media;

/// <summary>
/// The input side of image- and video-to-video: pictures read as PIL reads them (alpha dropped, not blended), PIL's
/// Lanczos resize reproduced byte for byte (against Pillow's own output, resize_cases.safetensors), diffusers'
/// [−1, 1] mapping, and the errors for files that cannot be used.
/// </summary>
public class InputImageTests(ITestOutputHelper output)
{
    private static string Inputs => Path.Combine(InputPipelineTests.Folder, "inputs");

    private static byte[] Bytes(Tensor t) => Array.ConvertAll(t.ToFloatArray(), v => (byte)v);

    [Fact]
    public void LanczosMatchesPillowExactly()
    {
        var cases = Fixtures.LoadAll(Path.Combine(InputPipelineTests.Folder, "resize_cases.safetensors"));
        try
        {
            var source = InputFiles.LoadImage(Path.Combine(Inputs, "resize_source_37x53.png"));
            Assert.Equal(Bytes(cases["source"]), source.Frames[0]); // the PNG decodes to the bytes PIL saw
            int compared = 0;
            foreach (var (name, expected) in cases.Where(c => c.Key.StartsWith("lanczos_", StringComparison.Ordinal)))
            {
                int h = expected.Dim(0), w = expected.Dim(1);
                var actual = PilResize.Lanczos(source.Frames[0], source.Height, source.Width, h, w);
                var want = Bytes(expected);
                int worst = 0;
                for (int i = 0; i < want.Length; i++) worst = Math.Max(worst, Math.Abs(want[i] - actual[i]));
                output.WriteLine($"{name}: largest difference {worst} (of 255)");
                Assert.Equal(0, worst);
                compared++;
            }
            Assert.Equal(6, compared);
        }
        finally
        {
            foreach (var t in cases.Values) t.Dispose();
        }
    }

    [Fact]
    public void AlphaIsDroppedAsPilConvertDropsIt()
    {
        var cases = Fixtures.LoadAll(Path.Combine(InputPipelineTests.Folder, "resize_cases.safetensors"));
        try
        {
            var image = InputFiles.LoadImage(Path.Combine(Inputs, "image_rgba_24x40.png"));
            Assert.Equal((24, 40), (image.Height, image.Width));
            Assert.Equal(Bytes(cases["rgba_as_rgb"]), image.Frames[0]);
            Assert.Equal(64, image.Sha256.Length);
        }
        finally
        {
            foreach (var t in cases.Values) t.Dispose();
        }
    }

    [Fact]
    public void AJpegIsTurnedUprightAsItsExifSays()
    {
        var cases = Fixtures.LoadAll(Path.Combine(InputPipelineTests.Folder, "resize_cases.safetensors"));
        try
        {
            // Stored 24 rows × 40 columns with orientation 6: shown (and loaded by diffusers) 40 × 24.
            var image = InputFiles.LoadImage(Path.Combine(Inputs, "image_exif6_24x40.jpg"));
            var expected = cases["jpeg_exif6_as_loaded"];
            Assert.Equal((expected.Dim(0), expected.Dim(1)), (image.Height, image.Width));
            Assert.Equal((40, 24), (image.Height, image.Width));
            var want = Bytes(expected);
            int worst = 0;
            for (int i = 0; i < want.Length; i++) worst = Math.Max(worst, Math.Abs(want[i] - image.Frames[0][i]));
            output.WriteLine($"JPEG (SkiaSharp) against PIL: largest difference {worst} of 255");
            Assert.True(worst <= 2, $"JPEG pixels differ from PIL's by up to {worst}"); // two libjpeg builds: rounding at most
        }
        finally
        {
            foreach (var t in cases.Values) t.Dispose();
        }
    }

    [Fact]
    public void EveryExifOrientationMatchesPil()
    {
        // A 2 × 3 picture; PIL's transposes of it (Image.Transpose for orientations 2–8, as exif_transpose maps them).
        byte[] rgba = [.. Enumerable.Range(0, 6).SelectMany(v => new[] { (byte)v, (byte)v, (byte)v, (byte)255 })];
        int[][] expected =
        [
            [0, 1, 2, 3, 4, 5], [2, 1, 0, 5, 4, 3], [5, 4, 3, 2, 1, 0], [3, 4, 5, 0, 1, 2],
            [0, 3, 1, 4, 2, 5], [3, 0, 4, 1, 5, 2], [5, 2, 4, 1, 3, 0], [2, 5, 1, 4, 0, 3],
        ];
        for (int o = 1; o <= 8; o++)
        {
            var (rgb, h, w) = ImageReader.Orient(rgba, 2, 3, o);
            Assert.Equal(o >= 5 ? (3, 2) : (2, 3), (h, w));
            Assert.Equal(expected[o - 1], Enumerable.Range(0, 6).Select(i => (int)rgb[3 * i]));
        }
    }

    [Fact]
    public void PreprocessMapsBytesToMinusOneToOne()
    {
        var media = new InputMedia("x", "", [new byte[] { 0, 255, 51, 128, 1, 254 }], 1, 2);
        var pixels = VideoProcessor.Preprocess(media, 1, 2, 1);
        // [3, 1, 1, 2]: channel planes.
        Assert.Equal(new[] { -1f, 2f * (128 / 255f) - 1f, 1f, 2f * (1 / 255f) - 1f, 2f * (51 / 255f) - 1f, 2f * (254 / 255f) - 1f }, pixels);
    }

    [Fact]
    public void UnusableImagesAreRefusedWithWhatToDo()
    {
        using var dir = new TempDir();
        var missing = Assert.Throws<CogVideoXException>(() => InputFiles.LoadImage(dir.File("nope.png")));
        Assert.Contains("no such image file", missing.Message);
        Assert.Equal(2, missing.ExitCode);

        var folder = Assert.Throws<CogVideoXException>(() => InputFiles.LoadImage(dir.Path));
        Assert.Contains("is a folder", folder.Message);

        var garbage = dir.File("garbage.png");
        File.WriteAllText(garbage, "this is not a picture");
        var unreadable = Assert.Throws<CogVideoXException>(() => InputFiles.LoadImage(garbage));
        Assert.Contains("not an image this program can read", unreadable.Message);
        Assert.Contains("PNG, JPEG or WebP", unreadable.Message);

        var empty = dir.File("empty.jpg");
        File.WriteAllBytes(empty, []);
        Assert.Contains("the file is empty", Assert.Throws<CogVideoXException>(() => InputFiles.LoadImage(empty)).Message);

        var truncated = dir.File("cut.png");
        var png = File.ReadAllBytes(Path.Combine(Inputs, "image_50x70.png"));
        File.WriteAllBytes(truncated, png[..(png.Length / 2)]);
        var cut = Assert.Throws<CogVideoXException>(() => InputFiles.LoadImage(truncated));
        Assert.Contains("truncated", cut.Message);
    }

    [Fact]
    public void UnusableVideosAreRefusedWithWhatToDo()
    {
        using var dir = new TempDir();
        var missing = Assert.Throws<CogVideoXException>(() => InputFiles.LoadVideo(dir.File("nope.mp4"), 9));
        Assert.Contains("no such video file", missing.Message);
        var garbage = dir.File("garbage.mp4");
        File.WriteAllText(garbage, "this is not a video");
        var unreadable = Assert.Throws<CogVideoXException>(() => InputFiles.LoadVideo(garbage, 9));
        Assert.Contains("not a readable video", unreadable.Message);
        Assert.Equal(2, unreadable.ExitCode);
    }

    [Fact]
    public void AVideoIsReadLosslesslyAndOnlyAsFarAsNeeded()
    {
        var video = InputFiles.LoadVideo(Path.Combine(Inputs, "video_17x40x56.mp4"), 9);
        Assert.Equal(9, video.FrameCount);
        Assert.Equal(17, video.FramesInFile);
        Assert.Equal((40, 56), (video.Height, video.Width));
    }
}
