#!/usr/bin/env bash
# On the GPU machine: builds attention_sm90_check.cu in a few configurations (in parallel) and runs each.
# Usage: scripts/kernels/attention_sm90_check.sh [OUT dir]   (VARIANTS: warpgroups per block, e.g. "2 3")
set -uo pipefail
cd "$(dirname "$0")"
OUT=${1:-/tmp/attn-sm90}
mkdir -p "$OUT"
VARIANTS=${VARIANTS:-"2 3"}
for v in $VARIANTS; do
  nw=$v
  ( nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -DATTN_NW=$nw \
      -o "$OUT/check_$nw" attention_sm90_check.cu > "$OUT/build_$nw.txt" 2>&1; echo "build $v rc=$?" >> "$OUT/build_$nw.txt" ) &
done
wait
for v in $VARIANTS; do
  nw=$v
  grep -E "rc=|error|serialized|registers|spill" "$OUT/build_$nw.txt" | grep -v "^$" | head -12
  [ -x "$OUT/check_$nw" ] && timeout 120 "$OUT/check_$nw"
done
