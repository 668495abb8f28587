using System.Diagnostics;
using System.Text.Json;

namespace CogVideoX.Lab.Runs;

/// <summary>How to start one worker process (the CLI re-invoking itself with its worker subcommand).</summary>
public sealed record WorkerLaunch(int Worker, string Device, string FileName, IReadOnlyList<string> Arguments);

/// <summary>
/// Runs one worker process per device and relays what they report. Workers take jobs through claim files, so they
/// need no coordination here; they print <see cref="RunEvent"/>s as JSON lines on stdout. Each worker's stdin is a
/// pipe from this process: when this process dies (even by SIGKILL) the pipe closes and the workers stop.
/// </summary>
public static class WorkerPool
{
    /// <returns>Each worker's exit code.</returns>
    public static int[] Run(IReadOnlyList<WorkerLaunch> launches, Action<RunEvent> onEvent, Action<int, string> onLog, CancellationToken cancellation)
    {
        var processes = new List<Process>();
        try
        {
            foreach (var launch in launches)
            {
                var psi = new ProcessStartInfo(launch.FileName)
                {
                    RedirectStandardInput = true,
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                    UseShellExecute = false,
                };
                foreach (var a in launch.Arguments) psi.ArgumentList.Add(a);
                var p = new Process { StartInfo = psi };
                int worker = launch.Worker;
                p.OutputDataReceived += (_, e) =>
                {
                    if (e.Data is not { Length: > 0 } line) return;
                    RunEvent? ev = null;
                    if (line.StartsWith('{'))
                    {
                        try
                        {
                            ev = JsonSerializer.Deserialize(line, LabLineJsonContext.Default.RunEvent);
                        }
                        catch (JsonException)
                        {
                        }
                    }
                    if (ev is not null) onEvent(ev with { Worker = worker });
                    else onLog(worker, line);
                };
                p.ErrorDataReceived += (_, e) =>
                {
                    if (e.Data is { Length: > 0 } line) onLog(worker, line);
                };
                if (!p.Start())
                    throw new Engine.CogVideoXException($"could not start worker {worker} ({launch.FileName})");
                p.BeginOutputReadLine();
                p.BeginErrorReadLine();
                processes.Add(p);
            }
            using var onCancel = cancellation.Register(() =>
            {
                // Closing stdin asks each worker to stop (it releases its claim and exits).
                foreach (var p in processes)
                {
                    try
                    {
                        p.StandardInput.Close();
                    }
                    catch (Exception e) when (e is IOException or InvalidOperationException)
                    {
                    }
                }
            });
            foreach (var p in processes) p.WaitForExit();
            cancellation.ThrowIfCancellationRequested();
            return processes.Select(p => p.ExitCode).ToArray();
        }
        finally
        {
            foreach (var p in processes)
            {
                try
                {
                    if (!p.HasExited && !p.WaitForExit(TimeSpan.FromSeconds(15))) p.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                }
                p.Dispose();
            }
        }
    }

    /// <summary>
    /// For a worker: cancels <paramref name="stop"/> when stdin reaches its end (the parent closed it or died), and
    /// exits the process if the worker has not stopped by itself shortly after.
    /// </summary>
    public static void WatchParent(CancellationTokenSource stop, TimeSpan grace)
    {
        var thread = new Thread(() =>
        {
            try
            {
                var stdin = Console.OpenStandardInput();
                var buffer = new byte[256];
                while (stdin.Read(buffer, 0, buffer.Length) > 0)
                {
                }
            }
            catch (IOException)
            {
            }
            stop.Cancel();
            Thread.Sleep(grace);
            Environment.Exit(130);
        })
        { IsBackground = true, Name = "parent watch" };
        thread.Start();
    }
}
