#!/usr/bin/env bash
# The test command: format check, build (warnings are errors), then every test on the CPU backend.
set -euo pipefail
cd "$(dirname "$0")"
dotnet format CogVideoX.slnx --verify-no-changes
dotnet test CogVideoX.slnx -c Release --logger "console;verbosity=normal" "$@"
