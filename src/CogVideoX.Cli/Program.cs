using CogVideoX.Cli;

return Cli.Run(args);
