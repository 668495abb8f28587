#!/usr/bin/env bash
# On the GPU machine: assembles the 8-bit attention modules as NVRTC sees them (common.cuh + the module) with nvcc
# and prints ptxas's report: registers and spills per kernel, and any "wgmma ... serialized" warning (C7510 and kin),
# which the backend's NVRTC build does not show. Usage: scripts/kernels/sage8-ptxas.sh [OUT dir]
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-/tmp/sage8-ptxas}
mkdir -p "$OUT"
K=src/CogVideoX.Engine.Cuda/Kernels
NVCC=${NVCC:-$(command -v nvcc || ls -d /usr/local/cuda*/bin/nvcc 2>/dev/null | tail -1)}
for m in attention_sage8_sm90 attention_sage8; do
  { cat $K/common.cuh; echo "#line 1 \"$m.cu\""; cat $K/$m.cu; } > "$OUT/$m.cu"
  arch=compute_90a,code=sm_90a; [ "$m" = attention_sage8 ] && arch=compute_90,code=sm_90
  "$NVCC" -cubin -std=c++17 -DCOGVIDEOX_KERNELS=1 -gencode=arch=$arch -Xptxas -v -o "$OUT/$m.cubin" "$OUT/$m.cu" > "$OUT/$m.txt" 2>&1
  echo "=== $m rc=$?"
  grep -E "error|warning|Compiling entry|registers|spill|stack frame" "$OUT/$m.txt" | grep -v "^$" | head -40
  command -v cuobjdump > /dev/null && cuobjdump -sass "$OUT/$m.cubin" 2>/dev/null | grep -oE "[HQI]GMMA[.A-Z0-9x]*|IMMA[.A-Z0-9x]*|QMMA[.A-Z0-9x]*|HMMA[.A-Z0-9x]*" | sort | uniq -c | head -12
done
