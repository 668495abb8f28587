using CogVideoX.Cli;

namespace CogVideoX.Tests.Cli;

/// <summary>The download display: live bars on a terminal, plain lines in a log.</summary>
public class DownloadProgressViewTests
{
    [Fact]
    public void ATerminalGetsLiveBarsThatClearAwayAndPermanentLinesAboveThem()
    {
        var output = new StringWriter();
        var view = new DownloadProgressView(output, live: true);

        view.Planned([("vae/diffusion_pytorch_model.safetensors", 4L << 20), ("vae/config.json", 871L)], alreadyCached: 2);
        view.FileStarted("vae/diffusion_pytorch_model.safetensors", 4L << 20, resumedFrom: 0);
        Thread.Sleep(150); // past the redraw throttle
        view.FileAdvanced("vae/diffusion_pytorch_model.safetensors", 1L << 20);
        view.Note("vae/diffusion_pytorch_model.safetensors", "the connection closed; resuming");
        view.FileDone("vae/diffusion_pytorch_model.safetensors", 4L << 20, "sha256 verified");
        view.Finish();

        var text = output.ToString();
        Assert.StartsWith("fetching 2 files (4.0 MiB); 2 more already in the cache" + Environment.NewLine, text);
        Assert.Contains("[#####...............]  25% 1.0 MiB/4.0 MiB ", text); // a quarter of the bar, size and speed
        Assert.Contains("  total 1.0 MiB of 4.0 MiB (25%), ", text);
        Assert.Contains("\u001b[2F\u001b[J", text); // the two live lines (file, total) are erased before each permanent line
        Assert.Contains("  note: vae/diffusion_pytorch_model.safetensors: the connection closed; resuming", text);
        Assert.Matches(@"  done vae/diffusion_pytorch_model\.safetensors \(4\.0 MiB in [0-9.]+ s, [0-9.]+ [KMG]iB/s; sha256 verified\)", text);
    }

    [Fact]
    public void ALogGetsPlainLinesOnly()
    {
        var output = new StringWriter();
        var view = new DownloadProgressView(output, live: false);

        view.Resolved("THUDM/CogVideoX-2b", "main", "1137dacfc2c9c012bed6a0793f4ecf2ca8e7ba01");
        view.Planned([("transformer/diffusion_pytorch_model.safetensors", 3_400_000_000L)], alreadyCached: 0);
        view.FileStarted("transformer/diffusion_pytorch_model.safetensors", 3_400_000_000L, resumedFrom: 1_000_000_000L);
        view.FileAdvanced("transformer/diffusion_pytorch_model.safetensors", 2_000_000_000L);
        view.FileDone("transformer/diffusion_pytorch_model.safetensors", 3_400_000_000L, "sha256 verified");
        view.Finish();

        var lines = output.ToString().ReplaceLineEndings("\n").TrimEnd('\n').Split('\n');
        Assert.DoesNotContain('\u001b', output.ToString());
        Assert.Equal("THUDM/CogVideoX-2b: revision main is commit 1137dacfc2c9c012bed6a0793f4ecf2ca8e7ba01", lines[0]);
        Assert.Equal("fetching transformer/diffusion_pytorch_model.safetensors (3.2 GiB)", lines[1]);
        Assert.Equal("  resuming transformer/diffusion_pytorch_model.safetensors at 953.7 MiB of 3.2 GiB", lines[2]);
        Assert.StartsWith("  done transformer/diffusion_pytorch_model.safetensors (3.2 GiB in ", lines[3]);
        Assert.Equal(4, lines.Length);
    }

    [Theory]
    [InlineData(0.25, "0.3 s")]
    [InlineData(42, "42 s")]
    [InlineData(250, "4m 10s")]
    [InlineData(7300, "2h 01m")]
    public void DurationsReadNaturally(double seconds, string text) => Assert.Equal(text, DownloadProgressView.Duration(seconds));
}
