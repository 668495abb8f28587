#!/usr/bin/env bash
# On the GPU machine: builds attention_sm90_check.cu in a few configurations (in parallel) and runs each.
# Usage: scripts/kernels/attention_sm90_check.sh [OUT dir]
# VARIANTS: space-separated builds, each "NW" or "NW:-DMACRO=value,-DOTHER=value" (warpgroups per block, extra flags).
set -uo pipefail
cd "$(dirname "$0")"
OUT=${1:-/tmp/attn-sm90}
mkdir -p "$OUT"
VARIANTS=${VARIANTS:-"4"}
name() { echo "$1" | tr -c 'A-Za-z0-9\n' '_'; }
for v in $VARIANTS; do
  nw=${v%%:*}; flags=""; [[ "$v" == *:* ]] && flags=$(echo "${v#*:}" | tr ',' ' ')
  n=$(name "$v")
  ( nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -DATTN_NW=$nw $flags \
      -o "$OUT/check_$n" attention_sm90_check.cu -lcuda > "$OUT/build_$n.txt" 2>&1; echo "build $v rc=$?" >> "$OUT/build_$n.txt" ) &
done
wait
for v in $VARIANTS; do
  n=$(name "$v")
  echo "=== $v"
  grep -E "rc=|error|serialized|registers|spill" "$OUT/build_$n.txt" | grep -v "^$" | head -12
  [ -x "$OUT/check_$n" ] && timeout 120 "$OUT/check_$n"
done
