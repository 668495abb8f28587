#!/usr/bin/env bash
# The GPU machine's image has no ffmpeg/ffprobe, which writing and reading MP4s needs (experiment run, report,
# generate). This packs static x86-64 builds from npm (the registry reachable here: @ffmpeg-installer/linux-x64 4.1
# and @ffprobe-installer/linux-x64 4.1, johnvansickle.com builds) xz-compressed into .gpu/ff (≈ 33 MB, so leave the
# golden fixtures out of that call's tree: docs/gpu-runs/next-gpu-session.md). On the GPU machine:
#   mkdir -p /tmp/ffb; for t in ffmpeg ffprobe; do xz -dc .gpu/ff/$t.xz > /tmp/ffb/$t; done; chmod +x /tmp/ffb/*; export PATH=/tmp/ffb:$PATH
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p .gpu/ff
for pkg in @ffmpeg-installer/linux-x64@4.1.0 @ffprobe-installer/linux-x64@4.1.0; do
  (cd "$work" && npm pack --silent "$pkg" > /dev/null)
done
for tgz in "$work"/*.tgz; do tar -xzf "$tgz" -C "$work"; done
for tool in ffmpeg ffprobe; do
  chmod +x "$work/package/$tool"
  "$work/package/$tool" -version | head -1
  xz -9e -T0 -c "$work/package/$tool" > ".gpu/ff/$tool.xz"
done
ls -la .gpu/ff
