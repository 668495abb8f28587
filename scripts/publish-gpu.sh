#!/usr/bin/env bash
# Publishes the CLI with NativeAOT into .gpu/bin for the GPU machine (which has no .NET), without debug files.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet publish src/CogVideoX.Cli -c Release -r linux-x64 -p:PublishAot=true -o .gpu/bin "$@"
rm -f .gpu/bin/*.dbg .gpu/bin/*.pdb
ls -la .gpu/bin
