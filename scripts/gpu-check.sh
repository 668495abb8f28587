#!/usr/bin/env bash
# Runs on the GPU machine from the repository root (the CLI published into .gpu/bin by publish-gpu.sh):
# the doctor, every selftest case against the CPU, the op timings, and (on failures) one selftest process per op
# so a kernel fault cannot hide other ops' results. Full logs go to $OUT when it is set.
set -uo pipefail
B=.gpu/bin/cogvideox
OUT=${OUT:-/tmp/cogvideox-gpu-check}
mkdir -p "$OUT"
start=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader 2>&1 | tee "$OUT/nvidia-smi.txt"
$B doctor > "$OUT/doctor.txt" 2>&1; echo "doctor rc=$?" >> "$OUT/doctor.txt"
cat "$OUT/doctor.txt"
$B selftest > "$OUT/selftest.txt" 2>&1; rc=$?
echo "selftest rc=$rc" >> "$OUT/selftest.txt"
grep -E "FAIL|passed|LEAK|rc=|error" "$OUT/selftest.txt" | head -60
echo "[$(( $(date +%s) - start )) s]"
timeout 150 $B selftest --timing-only > "$OUT/timing.txt" 2>&1; echo "timing rc=$?" >> "$OUT/timing.txt"
cat "$OUT/timing.txt"
echo "[$(( $(date +%s) - start )) s]"
if [ $rc -ne 0 ]; then
  for op in copy convert fill concat pad upsample repeat gather neg exp log sqrt rsqrt sin cos tanh sigmoid silu gelu relu abs square affine clamp add sub mul div max min sum mean softmax layer_norm rms_norm group_norm rotary linear matmul conv attention; do
    timeout 20 $B selftest --filter "$op" 2>&1 | grep -E "FAIL|passed|error|LEAK" | sed "s/^/[$op] /"
  done > "$OUT/selftest-by-op.txt" 2>&1
  grep -v " 0 failed" "$OUT/selftest-by-op.txt" | head -40
fi
echo "wall: $(( $(date +%s) - start )) s"
