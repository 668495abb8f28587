#!/usr/bin/env bash
# Runs on the GPU machine (carry .gpu/bin): a quick A/B of 8-bit attention kernel builds named by their
# COGVIDEOX_KERNEL_DEFINES (AB, space-separated; "default" is the plain build). Each build's
# selftest --filter sage8_attention first (SELFTEST_LIMIT, 90 s: a new schedule may hang), then the exact 2b step and
# ROUNDS interleaved rounds of the 2b step with 8-bit attention, printing the per-call kernel time, the step and its
# error against the exact step. Logs under $OUT. BOTH=1 then times the 2b step with both fast modes (8-bit attention
# and FP8 linears) under the build whose kernel was fastest over the rounds, beside the exact step.
B=.gpu/bin/cogvideox
AB=${AB:-default}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for v in $AB; do
  echo "=== selftest --filter sage8_attention, COGVIDEOX_KERNEL_DEFINES=${v#default}"
  COGVIDEOX_KERNEL_DEFINES=${v#default} timeout "${SELFTEST_LIMIT:-90}" $B selftest --filter sage8_attention > "$OUT/selftest-$v.txt" 2>&1
  echo "rc=$?"; grep -E "FAIL|cases in|passed" "$OUT/selftest-$v.txt" | head -12
done
bench() { timeout 120 $B bench transformer --model-config 2b --repeats 3 --profile "$@" >> "$OUT/bench.txt" 2>&1; echo "rc=$?" >> "$OUT/bench.txt"; }
echo "=== exact" >> "$OUT/bench.txt"; bench
for round in $(seq 1 "${ROUNDS:-2}"); do
  for v in $AB; do
    echo "=== $v (round $round)" >> "$OUT/bench.txt"
    COGVIDEOX_KERNEL_DEFINES=${v#default} bench --attention sage8
  done
done
grep -E "^=== |^rc=[1-9]|attention(_sage8)? +F16 \[2, 30, 17776, 64\]|relative error of the step|^transformer" "$OUT/bench.txt" | cut -c1-200
if [ "${BOTH:-0}" = 1 ]; then
  # The fastest build: the lowest mean per-call kernel time over the rounds.
  best=$(awk '/^=== / { v = $2 } / attention_sage8 F16 \[2, 30, 17776, 64\]/ { for (i = 1; i <= NF; i++) if ($i == "ms" && $(i-1) ~ /^[0-9.]+$/ && $(i-2) == "×") t[v] += $(i-1); n[v]++ }
    END { for (v in t) { m = t[v] / n[v]; if (best == "" || m < bm) { best = v; bm = m } } print best }' "$OUT/bench.txt")
  echo "=== fastest build: $best; the 2b step with both fast modes" | tee -a "$OUT/bench.txt"
  COGVIDEOX_KERNEL_DEFINES=${best#default} bench --attention sage8 --linear fp8
  grep -E "^transformer|relative error" "$OUT/bench.txt" | tail -n 2 | cut -c1-200
fi
