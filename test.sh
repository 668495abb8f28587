#!/usr/bin/env bash
# The test command: format check, build (warnings are errors), then every test on the CPU backend. Ends with the
# plain summary line "tests: N passed, N failed" (from dotnet test's own totals) and dotnet test's exit code.
set -euo pipefail
cd "$(dirname "$0")"
dotnet format CogVideoX.slnx --verify-no-changes
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
dotnet test CogVideoX.slnx -c Release --logger "console;verbosity=normal" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
passed=$(awk '$1 == "Passed:" && $2 ~ /^[0-9]+$/ { s += $2 } END { print s + 0 }' "$log")
failed=$(awk '$1 == "Failed:" && $2 ~ /^[0-9]+$/ { s += $2 } END { print s + 0 }' "$log")
echo "tests: $passed passed, $failed failed"
exit "$rc"
