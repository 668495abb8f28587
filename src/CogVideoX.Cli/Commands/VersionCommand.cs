using System.CommandLine;
using System.Reflection;
using System.Runtime.InteropServices;

namespace CogVideoX.Cli.Commands;

internal static class VersionCommand
{
    public static string ToolVersion =>
        typeof(VersionCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0.0.0";

    public static Command Create()
    {
        var cmd = new Command("version", "Print the tool, .NET runtime and OS versions.");
        cmd.SetAction(parse =>
        {
            var o = parse.InvocationConfiguration.Output;
            o.WriteLine($"cogvideox {ToolVersion}");
            o.WriteLine($".NET {RuntimeInformation.FrameworkDescription} ({(RuntimeFeature() ? "NativeAOT" : "JIT")})");
            o.WriteLine($"{RuntimeInformation.OSDescription} {RuntimeInformation.OSArchitecture}");
            return 0;
        });
        return cmd;
    }

    private static bool RuntimeFeature() => !System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeSupported;
}
