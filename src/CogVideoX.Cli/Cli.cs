using System.CommandLine;
using CogVideoX.Cli.Commands;
using CogVideoX.Engine;
using CogVideoX.Engine.Cuda;
using CogVideoX.Lab;
using CogVideoX.Media;

namespace CogVideoX.Cli;

/// <summary>Builds the command tree and turns failures into messages: no stack traces for the user.</summary>
public static class Cli
{
    static Cli() => CudaBackend.Register();

    /// <param name="environment">Reads environment variables (HF_TOKEN, HF_HOME, ...); the process's when null — tests pass their own.</param>
    /// <param name="gpu">Whether a GPU works, for <c>--device auto</c>; the real check when null — tests pass their own.</param>
    public static RootCommand BuildRoot(Func<string, string?>? environment = null, Func<GpuCheck>? gpu = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        gpu ??= DeviceSelection.Probe;
        var root = new RootCommand("CogVideoX text-to-video in .NET: generate videos, run experiment studies, benchmark.");
        // Each command lives in Commands/<Name>Command.cs and is added here, in the order a newcomer needs them.
        root.Subcommands.Add(GenerateCommand.Create(environment, gpu));
        root.Subcommands.Add(ExperimentCommand.Create(environment, gpu));
        root.Subcommands.Add(ReportCommand.Create(gpu));
        root.Subcommands.Add(DownloadCommand.Create(environment));
        root.Subcommands.Add(DoctorCommand.Create());
        root.Subcommands.Add(InspectCommand.Create());
        root.Subcommands.Add(BenchCommand.Create(gpu));
        root.Subcommands.Add(FidelityCommand.Create());
        root.Subcommands.Add(SelfTestCommand.Create());
        root.Subcommands.Add(VersionCommand.Create());
        return root;
    }

    public static int Run(string[] args, TextWriter? stdout = null, TextWriter? stderr = null, Func<string, string?>? environment = null,
        Func<GpuCheck>? gpu = null)
    {
        stdout ??= Console.Out;
        stderr ??= Console.Error;
        var root = BuildRoot(environment, gpu);
        var config = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
        try
        {
            var parse = root.Parse(args);
            // Mistyped flags get one line each with the nearest option, not the whole help.
            if (parse.Errors.Count > 0 && ParseErrors.Describe(parse) is { } message)
            {
                stderr.WriteLine(message);
                return 2;
            }
            return parse.Invoke(config);
        }
        catch (CogVideoXException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return e.ExitCode;
        }
        catch (Exception e) when (FileErrors.IsDiskFull(e) || FileErrors.IsReadOnly(e) || e is UnauthorizedAccessException)
        {
            // The machine's state, not a bug: say what happened to which path and what to do.
            stderr.WriteLine($"error: {FileErrors.Describe(e)}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            stderr.WriteLine("cancelled");
            return 130;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"internal error ({e.GetType().Name}): {e.Message}");
            if (Environment.GetEnvironmentVariable("COGVIDEOX_DEBUG") == "1") stderr.WriteLine(e);
            else stderr.WriteLine("Set COGVIDEOX_DEBUG=1 for details and please report this.");
            return 70;
        }
        finally
        {
            // GPU memory and contexts go back to the driver before the process ends.
            Backends.DisposeAll();
        }
    }
}
