#!/usr/bin/env bash
# Builds the command-line tool (Release; a no-op when nothing changed) and runs it with the given arguments, in the
# current directory (so prompts/ and outputs/ are found there), e.g.
#   ./run.sh generate --prompt-file panda_guitar --model 2b
set -euo pipefail
root="$(cd "$(dirname "$0")" && pwd)"
if ! command -v dotnet >/dev/null; then
  echo "run.sh: the .NET 10 SDK is needed (https://dotnet.microsoft.com/download; Debian/Ubuntu: sudo apt-get install dotnet-sdk-10.0)" >&2
  exit 1
fi
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
dll="$root/src/CogVideoX.Cli/bin/Release/net10.0/cogvideox.dll"
# Say so when the build has work to do (the first one takes a minute or two and prints nothing by itself).
if [ ! -f "$dll" ]; then
  echo "run.sh: building cogvideox (Release) for the first time; this takes 1-3 minutes..." >&2
elif [ -n "$(find "$root/src" "$root/Directory.Build.props" "$root/Directory.Packages.props" -newer "$dll" \( -name '*.cs' -o -name '*.csproj' -o -name '*.props' \) -print -quit 2>/dev/null)" ]; then
  echo "run.sh: sources changed since the last build; rebuilding cogvideox..." >&2
fi
if ! build=$(dotnet build "$root/src/CogVideoX.Cli/CogVideoX.Cli.csproj" -c Release -v quiet -clp:ErrorsOnly 2>&1); then
  echo "$build" >&2
  exit 1
fi
exec dotnet "$dll" "$@"
