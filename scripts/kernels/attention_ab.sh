#!/usr/bin/env bash
# On the GPU machine: our sm_90a attention kernel against cuDNN's inside the real workload. Runs the kernel harness,
# the own kernel's selftest cases, op timings and the 2b step with each attention path (ours goes first by default;
# COGVIDEOX_ATTENTION=cudnn puts cuDNN first), and, when ours gives the faster step, the whole 2b run with it.
# Usage: scripts/kernels/attention_ab.sh OUT_DIR   (needs .gpu/bin from scripts/publish-gpu.sh)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?output folder}
B=.gpu/bin/cogvideox
mkdir -p "$OUT"
export COGVIDEOX_KERNEL_CACHE=/tmp/cogvideox-kernels
VARIANTS="4" bash scripts/kernels/attention_sm90_check.sh "$OUT/harness" > "$OUT/harness.txt" 2>&1
grep -E "serialized|registers|17776|FAIL" "$OUT/harness.txt"
COGVIDEOX_CUDNN=0 timeout 60 $B selftest --filter attention > "$OUT/selftest-own.txt" 2>&1
grep -E "FAIL|passed" "$OUT/selftest-own.txt"
for mode in own cudnn; do
  COGVIDEOX_ATTENTION=$mode timeout 60 $B selftest --timing-only --filter attention 2>&1 | grep -E "attention +F16 +\[2,30|block attention F16 +packed" | sed "s/^/[$mode] /"
done
step() { grep -E "^transformer " "$1" | awk '{print $2}'; }
COGVIDEOX_ATTENTION=own timeout 120 $B bench transformer --model-config 2b --repeats 5 --profile > "$OUT/step-own.txt" 2>&1
COGVIDEOX_ATTENTION=cudnn timeout 120 $B bench transformer --model-config 2b --repeats 5 --profile > "$OUT/step-cudnn.txt" 2>&1
for f in step-own step-cudnn; do echo "$f: $(grep -E '^transformer ' "$OUT/$f.txt" | cut -c1-90) | $(grep -E '× +[0-9.]+ ms +attention' "$OUT/$f.txt" | head -1)"; done
own=$(step "$OUT/step-own.txt"); cudnn=$(step "$OUT/step-cudnn.txt")
if awk -v a="$own" -v b="$cudnn" 'BEGIN { exit !(a < b) }'; then
  COGVIDEOX_ATTENTION=own timeout 200 $B bench pipeline --model-config 2b --steps 50 --memory full > "$OUT/pipeline-own.txt" 2>&1
  grep -E "video 1/1|^  full|rc=|error" "$OUT/pipeline-own.txt" | head -5
fi
