#!/usr/bin/env bash
# Compiles kernel modules as NVRTC sees them (common.cuh + "#line 1" + the module) with clang in CUDA mode, on a
# machine without the CUDA toolkit or a GPU. Checks the C++ (types, names, templates, the static_asserts that tie
# argument structs to KernelArgs.cs) and emits PTX; inline-asm strings pass through unchecked (there is no ptxas).
# Usage: scripts/kernels/clang-check.sh MODULE ARCH [OUT.ptx]    e.g. attention_sage8 sm_89, attention_sm90 sm_90a
#        (MODULE may also be a path to a .cu file outside the source tree, e.g. a module being written)
# Needs clang 19 (Debian: apt-get install clang-19; CLANG overrides the binary). Warnings are errors.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kernels="$here/../../src/CogVideoX.Engine.Cuda/Kernels"
module=${1:?usage: clang-check.sh MODULE ARCH [OUT.ptx]}
arch=${2:?usage: clang-check.sh MODULE ARCH [OUT.ptx]}
out=${3:-/dev/null}
clang=${CLANG:-$(command -v clang++-19 || command -v clang++ || true)}
[ -n "$clang" ] || { echo "clang-check: no clang++-19 on PATH: install it (apt-get install clang-19) or set CLANG" >&2; exit 2; }
file="$kernels/$module.cu"
case "$module" in */*) file="$module"; module=$(basename "$module" .cu) ;; esac
[ -f "$file" ] || { echo "clang-check: no kernel module $file" >&2; exit 2; }
src=$(mktemp --suffix=.cu)
trap 'rm -f "$src"' EXIT
{ cat "$kernels/common.cuh"; printf '\n#line 1 "%s.cu"\n' "$module"; cat "$file"; } > "$src"
# PTX ISA 8.3 is what the FP8 mma.sync and cvt forms need (sm_89+); clang cannot infer it without a CUDA install.
"$clang" -x cuda --cuda-device-only --cuda-gpu-arch="$arch" -nocudainc -nocudalib -std=c++17 -O2 \
  -DCOGVIDEOX_KERNELS=1 -include "$here/clang-prelude.h" -Xclang -target-feature -Xclang +ptx83 \
  -Werror -Wall -Wno-unused-function -Wno-unknown-cuda-version -S -o "$out" "$src"
