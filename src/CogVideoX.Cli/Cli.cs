using System.CommandLine;
using CogVideoX.Cli.Commands;
using CogVideoX.Engine;
using CogVideoX.Engine.Cuda;
using CogVideoX.Media;

namespace CogVideoX.Cli;

/// <summary>Builds the command tree and turns failures into messages: no stack traces for the user.</summary>
public static class Cli
{
    static Cli() => CudaBackend.Register();

    /// <param name="environment">Reads environment variables (HF_TOKEN, HF_HOME, ...); the process's when null — tests pass their own.</param>
    public static RootCommand BuildRoot(Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var root = new RootCommand("CogVideoX text-to-video in .NET: generate videos, run experiment studies, benchmark.");
        // Each command lives in Commands/<Name>Command.cs and is added here.
        root.Subcommands.Add(VersionCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(InspectCommand.Create());
        root.Subcommands.Add(DoctorCommand.Create());
        root.Subcommands.Add(SelfTestCommand.Create());
        root.Subcommands.Add(ExperimentCommand.Create());
        root.Subcommands.Add(ReportCommand.Create());
        root.Subcommands.Add(DownloadCommand.Create(environment));
        root.Subcommands.Add(GenerateCommand.Create(environment));
        return root;
    }

    public static int Run(string[] args, TextWriter? stdout = null, TextWriter? stderr = null, Func<string, string?>? environment = null)
    {
        stdout ??= Console.Out;
        stderr ??= Console.Error;
        var root = BuildRoot(environment);
        var config = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
        try
        {
            return root.Parse(args).Invoke(config);
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
