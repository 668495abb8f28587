#!/usr/bin/env bash
# Fetches NVRTC (the CUDA C compiler the backend runs at start-up; it includes ptxas for machine code) from Debian's
# CUDA 12.4 packages into a folder, without a GPU, root or any change to the system: apt reads a private package list
# of Debian trixie's non-free section and `dpkg -x` unpacks the two packages. With it, `cogvideox doctor --arch sm_90
# --resources` compiles every kernel module to machine code here as NVRTC does on the GPU machine, so ptxas checks the
# inline PTX (wgmma, TMA, mma.sync) and reports registers and spills; the test suite does that (NvrtcCompileTests).
# Usage: scripts/kernels/fetch-nvrtc.sh [DIR] [--tools]   (DIR defaults to .tools/nvrtc in the repository;
#        --tools adds ptxas and cuobjdump, from the 87 MB toolkit package, for reading SASS: cuobjdump -sass X.cubin)
# Then: LD_LIBRARY_PATH=DIR cogvideox doctor --arch sm_90 --resources
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="$(cd "$here/../.." && pwd)/.tools/nvrtc"
tools=0
for a in "$@"; do
  case "$a" in
    --tools) tools=1 ;;
    -*) echo "fetch-nvrtc: unknown option $a (allowed: --tools)" >&2; exit 2 ;;
    *) dir="$a" ;;
  esac
done
# Pinned so every machine checks the kernels with the same compiler; trixie is Debian 13, whose CUDA is 12.4
# (sm_90a and FP8 supported). Bump both together.
version=12.4.127~12.4.1-2
toolkit_version=12.4.131~12.4.1-2
builtins=libnvrtc-builtins.so.12.4
if [ -f "$dir/libnvrtc.so.12" ] && [ -f "$dir/$builtins" ] && { [ $tools = 0 ] || [ -x "$dir/bin/ptxas" ]; }; then
  echo "fetch-nvrtc: $dir already has NVRTC 12.4"; exit 0
fi
command -v apt-get >/dev/null && command -v dpkg >/dev/null || {
  echo "fetch-nvrtc: needs apt-get and dpkg (Debian or Ubuntu); elsewhere install the CUDA toolkit's NVRTC and point LD_LIBRARY_PATH at it" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/parts" "$work/debs"
cat > "$work/parts/trixie.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/parts" -o "Dir::State::Lists=$work/lists"
     -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)")
apt-get "${apt[@]}" -qq update
packages=("libnvrtc12=$version" "libnvrtc-builtins12.4=$version")
[ $tools = 1 ] && packages+=("nvidia-cuda-toolkit=$toolkit_version")
(cd "$work/debs" && apt-get "${apt[@]}" -qq download "${packages[@]}")
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/root"; done
lib="$work/root/usr/lib/x86_64-linux-gnu"
mkdir -p "$dir"
cp -P "$lib"/libnvrtc.so.12* "$lib"/libnvrtc-builtins.so.12.4* "$dir"/
if [ $tools = 1 ]; then
  mkdir -p "$dir/bin"
  cp "$work/root/usr/bin/ptxas" "$work/root/usr/bin/cuobjdump" "$dir/bin/"
fi
echo "fetch-nvrtc: NVRTC $version in $dir$([ $tools = 1 ] && echo ", ptxas and cuobjdump in $dir/bin")"
