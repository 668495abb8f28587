namespace CogVideoX.Tests;

/// <summary>The command line run in-process, as the CLI tests drive it.</summary>
public static class CliRun
{
    /// <summary>Runs the CLI with these arguments; its exit code and what it wrote to stdout and stderr.</summary>
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CogVideoX.Cli.Cli.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>A labelled row as <c>inspect</c> prints it.</summary>
    public static string Row(string label, string value) => $"  {label,-22} {value}";

    /// <summary><c>bench</c> flags for the tiny fixture models on the CPU: one repeat, no warm-up, 32×48 frames.</summary>
    public static string[] TinyBench(int frames = 9) =>
        ["--device", "cpu", "--frames", frames.ToString(System.Globalization.CultureInfo.InvariantCulture), "--height", "32", "--width", "48", "--repeats", "1", "--warmup", "0"];
}
