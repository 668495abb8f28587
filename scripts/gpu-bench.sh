#!/usr/bin/env bash
# Runs on the GPU machine from the repository root, with the NativeAOT CLI in .gpu/bin (scripts/publish-gpu.sh) and this
# script next to cudnn-enums.py (see docs/cuda-backend.md): the cuDNN enum check, doctor, selftest, op timings (cuDNN
# and the own kernels), the benchmarks (2b and 5b transformer step, VAE, T5, whole 2b pipeline) and the golden parity.
# Full logs go to $OUT; a summary goes to stdout. Each stage has its own time limit so one hang cannot eat the rest.
set -uo pipefail
B=.gpu/bin/cogvideox
OUT=${OUT:-/tmp/cogvideox-gpu-bench}
HERE=$(dirname "$0")
mkdir -p "$OUT"
export COGVIDEOX_KERNEL_CACHE=/tmp/cogvideox-kernels
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }
STAGES=${STAGES:-"env doctor selftest timing bench2b cudnn2b composite2b bench5b vae t5 lora golden variants pipeline"}
has() { [[ " $STAGES " == *" $1 "* ]]; }

if has env; then
  { nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
    ls /usr/include/cudnn*.h /usr/include/x86_64-linux-gnu/cudnn*.h 2>/dev/null | head -20
    python3 "$HERE/cudnn-enums.py"; } > "$OUT/env.txt" 2>&1
  grep -E "NVIDIA|MISMATCH|agree" "$OUT/env.txt"
fi
if has doctor; then
  timeout 180 $B doctor > "$OUT/doctor.txt" 2>&1; echo "doctor rc=$?" >> "$OUT/doctor.txt"
  grep -E "cuDNN|cuBLASLt|NVRTC|driver|cuda:0|rc=|problems|ok:" "$OUT/doctor.txt"; stamp doctor
fi
if has selftest; then
  timeout 180 $B selftest > "$OUT/selftest.txt" 2>&1; echo "selftest rc=$?" >> "$OUT/selftest.txt"
  grep -E "FAIL|passed|LEAK|rc=|\[cuda\]" "$OUT/selftest.txt" | head -40; stamp selftest
fi
if has timing; then
  timeout 240 $B selftest --timing-only ${TIMING_FILTER:+--filter "$TIMING_FILTER"} > "$OUT/timing.txt" 2>&1; echo "timing rc=$?" >> "$OUT/timing.txt"
  grep -vE "^\[cuda\]" "$OUT/timing.txt" | tail -n 40; stamp timing
fi
run_bench() {  # name, limit, args...
  local name=$1 limit=$2; shift 2
  echo "=== bench $*" >> "$OUT/bench.txt"
  timeout "$limit" $B bench "$@" >> "$OUT/bench.txt" 2>&1; echo "rc=$?" >> "$OUT/bench.txt"
  stamp "$name"
}
if has bench2b; then
  # Clocks, power and temperature while the 2b step runs (read only), and the throttle reasons once mid-run.
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv -lms 200 > "$OUT/clocks.txt" 2>&1 &
  smi=$!
  (sleep 8; nvidia-smi -q -d PERFORMANCE > "$OUT/throttle.txt" 2>&1) &
  run_bench bench2b 180 transformer --model-config 2b --repeats 5 ${PROFILE:+--profile}
  kill $smi 2>/dev/null
  awk -F', ' 'NR>1 {print $2, $4, $5}' "$OUT/clocks.txt" | sort | uniq -c | sort -rn | head -8
  grep -iE "Active|Idle|Slowdown|Power Cap|Thermal|Clocks Event" "$OUT/throttle.txt" | head -12
fi
# Our sm_90 attention goes first by default; these put cuDNN's first (unified SDPA, then its composite graph).
if has cudnn2b; then COGVIDEOX_ATTENTION=cudnn run_bench cudnn2b 180 transformer --model-config 2b --repeats 5 ${PROFILE:+--profile}; fi
if has owncuda2b; then COGVIDEOX_CUDNN=0 run_bench owncuda2b 180 transformer --model-config 2b --repeats 3 ${PROFILE:+--profile}; fi
if has composite2b; then COGVIDEOX_ATTENTION=cudnn COGVIDEOX_CUDNN_SDPA=composite run_bench composite2b 120 transformer --model-config 2b --repeats 3; fi
if has bench5b; then run_bench bench5b 240 transformer --model-config 5b --repeats 3; fi
if has vae; then run_bench vae 240 vae --model-config 2b --repeats 3 ${PROFILE:+--profile}; fi
if has t5; then run_bench t5 180 t5 --model-config 2b --repeats 5; fi
# LoRA (issue 21): load and CFG step with 0/1/2 rank-64 adapters fused, and what unfused adapters would add per step.
if has lora; then
  run_bench lora2b 300 lora --model-config 2b --repeats 3
  run_bench lora5b 400 lora --model-config 5b --repeats 3
fi
# Added 2026-12-05, not yet run on a GPU (name them in STAGES): the VAE encoder (issue 19), the 5b-I2V step (19),
# CogVideoX 1.5 at 81 x 768 x 1360 (20: step, decode untiled / fitted to 16 GiB / default tiles, pipeline per mode),
# the step caches' overhead in the real pipeline (22).
# encode: chunked convolutions (default, estimate 3.85 GiB with weights, video and workspace: under half of diffusers'
# 8.16 GiB) and whole convolutions (encode-wholeconv, the 2026-12-05 schedule: 0.486 s, 5.05 GiB) in one call, with the
# cuDNN plans chosen per convolution shape (the chunks' [1,128,3,480,720] shape and its workspace) from the notes.
if has encode; then
  run_bench encode 300 encode --model-config 5b --repeats ${R:-3} ${PROFILE:+--profile}
  grep -E "^encode|estimate|x \[1,128,(3|10|11),480,720\]" "$OUT/bench.txt" | cut -c1-300 | tail -n 12
fi
if has i2v; then run_bench i2v 300 transformer-i2v --repeats ${R:-3}; fi
if has step15; then
  run_bench step15 400 transformer --model-config 1.5 --frames 81 --height 768 --width 1360 --repeats ${R15:-3}
  run_bench step15i2v 400 transformer --model-config 1.5-i2v --frames 81 --height 768 --width 1360 --repeats ${R15:-3}
fi
# Issue 20: where the 1.5 step's time goes (per-op profile), and the sm_90 attention kernel's warpgroups and stages
# at the 1.5 shape [2, 48, 45106, 64] beside the 2b one (nvcc harness; VARIANTS15 picks the builds, see its script).
if has profile15; then run_bench profile15 300 transformer --model-config 1.5 --frames 81 --height 768 --width 1360 --repeats 2 --profile; fi
if has attn15; then
  VARIANTS="${VARIANTS15:-4 3 2 4:-DATTN_STAGES=4 4:-DATTN_STAGES=8}" timeout 500 "$HERE/kernels/attention_sm90_check.sh" "$OUT/attn15" > "$OUT/attn15.txt" 2>&1
  grep -E "^===|rc=|error|spill|45106|17776" "$OUT/attn15.txt" | head -40; stamp attn15
fi
# Exponentials on the FMA pipes (ATTN_EXP_EMU chunks of 8, common.cuh's softmax_tile): the harness's builds at the 2b
# and 1.5 shapes, then the shipped binary recompiled with COGVIDEOX_KERNEL_DEFINES (selftest attention cases, the golden
# runs, the 2b and 1.5 steps and the 8-bit attention step) beside the default build in the same call.
if has expemu; then
  VARIANTS="${EMU_VARIANTS:-4 4:-DATTN_EXP_EMU=2 4:-DATTN_EXP_EMU=3}" timeout 240 "$HERE/kernels/attention_sm90_check.sh" /tmp/attn-emu > "$OUT/expemu-harness.txt" 2>&1
  grep -E "^===|rc=|error|spill|45106|17776" "$OUT/expemu-harness.txt" | head -40; stamp expemu-harness
  EMU=${EMU:-2}
  export COGVIDEOX_KERNEL_DEFINES="ATTN_EXP_EMU=$EMU"
  { timeout 120 $B selftest --filter attention; echo "selftest rc=$?"; } > "$OUT/expemu-selftest.txt" 2>&1
  grep -E "FAIL|passed|rc=" "$OUT/expemu-selftest.txt" | head -10
  timeout 240 $B selftest --golden > "$OUT/expemu-golden.txt" 2>&1; echo "golden rc=$?" >> "$OUT/expemu-golden.txt"
  grep -E "FAIL|within|passed|rc=|error" "$OUT/expemu-golden.txt" | head -12; stamp expemu-correctness
  echo "=== the next benches with COGVIDEOX_KERNEL_DEFINES=$COGVIDEOX_KERNEL_DEFINES" >> "$OUT/bench.txt"
  run_bench emu-2b 180 transformer --model-config 2b --repeats 5 --profile
  run_bench emu-15 300 transformer --model-config 1.5 --frames 81 --height 768 --width 1360 --repeats 2 --profile
  run_bench emu-sage8-2b 240 transformer --model-config 2b --repeats 5 --attention sage8 --profile
  # The 8-bit kernel halves the products' time, so it may want more of its exponentials moved.
  export COGVIDEOX_KERNEL_DEFINES="ATTN_EXP_EMU=${EMU_SAGE:-4}"
  echo "=== the next bench with COGVIDEOX_KERNEL_DEFINES=$COGVIDEOX_KERNEL_DEFINES" >> "$OUT/bench.txt"
  run_bench emu-sage8-2b-more 240 transformer --model-config 2b --repeats 5 --attention sage8 --profile
  unset COGVIDEOX_KERNEL_DEFINES
  echo "=== default build again" >> "$OUT/bench.txt"
  run_bench exact-2b 180 transformer --model-config 2b --repeats 5 --profile
  run_bench exact-sage8-2b 240 transformer --model-config 2b --repeats 5 --attention sage8 --profile
fi
# The FP8 linear's correctness and its 2b/5b steps only (the fp8 stage without the whole video).
if has fp8lite; then
  timeout 120 $B selftest --filter fp8 > "$OUT/fp8_selftest.txt" 2>&1; echo "fp8 selftest rc=$?" >> "$OUT/fp8_selftest.txt"
  grep -E "fp8|passed|FAIL|rc=|\[cuda\]" "$OUT/fp8_selftest.txt" | head -40
  run_bench fp8step2b 180 transformer --model-config 2b --repeats 5 --profile --linear fp8
  run_bench fp8step5b 240 transformer --model-config 5b --repeats 3 --profile --linear fp8
fi
if has vae15; then run_bench vae15 540 vae-tiled --model-config 1.5 --frames 81 --height 768 --width 1360 --repeats ${R15:-2}; fi
if has pipeline15; then run_bench pipeline15 590 pipeline --model 1.5 --frames 81 --height 768 --width 1360 --steps ${STEPS15:-50} --warmup-steps ${WARMUP15:-2} --memory ${MEMORY15:-full,balanced,low}; fi
# FP8 linears (issue 22, unrun so far): the op catalogue's FP8 cases against the CPU emulation, then the 2b and 5b steps
# with --linear fp8 beside the exact ones in the same call, profiled (target: linear_fp8 time <= 0.65x the exact
# profile's linear time), and the whole 2b video with fp8 linears.
if has fp8; then
  timeout 120 $B selftest --filter fp8 > "$OUT/fp8_selftest.txt" 2>&1; echo "fp8 selftest rc=$?" >> "$OUT/fp8_selftest.txt"
  grep -E "fp8|passed|FAIL|rc=|\[cuda\]" "$OUT/fp8_selftest.txt" | head -40
  # The two-pass form (float32 GEMM output + epilogue kernel), which the one-call scaled GEMM replaces where cuBLASLt has it.
  COGVIDEOX_FP8_SCALES=separate timeout 120 $B selftest --filter fp8 > "$OUT/fp8_selftest_separate.txt" 2>&1; echo "fp8 separate selftest rc=$?" >> "$OUT/fp8_selftest_separate.txt"
  grep -E "passed|FAIL|rc=" "$OUT/fp8_selftest_separate.txt" | head -10
  run_bench fp8exact2b 180 transformer --model-config 2b --repeats 5 --profile
  run_bench fp8step2b 180 transformer --model-config 2b --repeats 5 --profile --linear fp8
  COGVIDEOX_FP8_SCALES=separate run_bench fp8step2bseparate 180 transformer --model-config 2b --repeats 3 --profile --linear fp8
  run_bench fp8step5b 240 transformer --model-config 5b --repeats 3 --profile --linear fp8
  run_bench fp8pipeline 540 pipeline --model-config 2b --steps 50 --memory full --linear fp8
fi
if has cache; then
  run_bench fbcache 540 pipeline --model-config 2b --steps 50 --memory full --cache fbcache
  run_bench teacache 540 pipeline --model-config 2b --steps 50 --memory full --cache teacache
fi
# 8-bit attention (issue 22; unrun when added): ptxas's report of both modules (registers, spills, serialised wgmma),
# the selftest's sage8_attention cases (each kernel against the CPU emulation: the "mma.sync:" cases first, then the
# sm_90 "wgmma:" ones), the per-call timings at [2,30,17776,64] (F16 kernel, then sage8 with each kernel, pre-pass included),
# and the A/B inside the 2b step: exact F16, sage8 on the wgmma kernel (auto on sm_90), sage8 forced to the mma.sync
# kernel (COGVIDEOX_SAGE8_KERNEL=mma), each with --profile; then 5b and the whole 2b video with the default kernel.
if has sage8; then
  # The device's own NVRTC (13 there; CI checks with 12.4): every module for sm_90, ptxas's registers/spills/warnings.
  # A fresh cache outside $OUT: the cubins under $OUT would crowd out the logs (the device tool returns a limited count of files).
  rm -rf /tmp/cogvideox-ptxas-cache
  COGVIDEOX_KERNEL_CACHE=/tmp/cogvideox-ptxas-cache timeout 300 $B doctor --arch sm_90 --resources > "$OUT/sage8-ptxas.txt" 2>&1
  grep -E "kernels for|opt-in|sage8_|flash_attention_sm90|spills:|warnings" "$OUT/sage8-ptxas.txt" | head -40
  { timeout 300 $B selftest --filter sage8_attention; echo "selftest rc=$?"
    timeout 300 $B selftest --timing-only --filter attention; echo "timing rc=$?"; } > "$OUT/sage8.txt" 2>&1
  grep -E "FAIL|passed|rc=|sage8_att|^attention|\[cuda\].*(sage8|unavailable)" "$OUT/sage8.txt" | head -60; stamp sage8-selftest
  run_bench sage8-exact2b 240 transformer --model-config 2b --repeats 5 --profile
  run_bench sage8-2b 240 transformer --model-config 2b --repeats 5 --attention sage8 --profile
  echo "=== the next bench with COGVIDEOX_SAGE8_KERNEL=mma (the mma.sync kernel)" >> "$OUT/bench.txt"
  COGVIDEOX_SAGE8_KERNEL=mma run_bench sage8-mma2b 240 transformer --model-config 2b --repeats 5 --attention sage8 --profile
  run_bench sage8-5b 300 transformer --model-config 5b --repeats 3 --attention sage8
  run_bench sage8-pipeline 540 pipeline --model-config 2b --steps 50 --memory full --attention sage8
fi
# Issue 22 (2026-12-06): the 8-bit kernel's softmax at ~281 instructions a tile (373 before), its exponential split
# (SAGE_DEFINES, through COGVIDEOX_KERNEL_DEFINES), both fast modes together, and the fastest combination's whole video.
if has sage8fast; then
  { timeout 300 $B selftest --filter sage8_attention; echo "selftest rc=$?"; } > "$OUT/sage8fast.txt" 2>&1
  grep -E "FAIL|passed|rc=" "$OUT/sage8fast.txt" | head -20; stamp sage8fast-selftest
  run_bench s8-exact2b 180 transformer --model-config 2b --repeats 5 --profile
  run_bench s8-2b 180 transformer --model-config 2b --repeats 5 --attention sage8 --profile
  for d in ${SAGE_DEFINES:-SAGE90_EXP_LIN=0,SAGE90_EXP_EMU=1}; do
    echo "=== the next bench with COGVIDEOX_KERNEL_DEFINES=$d" >> "$OUT/bench.txt"
    COGVIDEOX_KERNEL_DEFINES=$d run_bench "s8-$d" 180 transformer --model-config 2b --repeats 5 --attention sage8 --profile
  done
  run_bench s8fp8-2b 180 transformer --model-config 2b --repeats 5 --attention sage8 --linear fp8 --profile
fi
if has fastest; then
  # FAST_EXACT=N keeps the first and last N steps exact (random weights let TeaCache reuse every other step).
  run_bench fastest 400 pipeline --model-config 2b --steps 50 --memory full --attention sage8 --linear fp8 --cache teacache --cache-threshold ${FAST_THRESHOLD:-0.2} --exact-steps ${FAST_EXACT:-0}
  grep -E "video 1/1|warm-up" "$OUT/bench.txt" | tail -n 2 | cut -c1-400
fi
# Issue 22, fifth session's final call (2026-12-05-s5-run7): each fast mode's 2b step profiled beside the exact one,
# both modes at 5b beside the exact 5b step, and the fastest video (TeaCache 0.2 with 10 + 10 exact steps).
if has fast22; then
  run_bench f22-exact2b 150 transformer --model-config 2b --repeats 3 --profile
  run_bench f22-s8-2b 150 transformer --model-config 2b --repeats 3 --attention sage8 --profile
  run_bench f22-fp8-2b 150 transformer --model-config 2b --repeats 3 --linear fp8 --profile
  run_bench f22-both-2b 150 transformer --model-config 2b --repeats 3 --attention sage8 --linear fp8 --profile
  run_bench f22-fastest 200 pipeline --model-config 2b --steps 50 --memory full --attention sage8 --linear fp8 --cache teacache --cache-threshold 0.2 --exact-steps 10
  run_bench f22-both-5b 150 transformer --model-config 5b --repeats 2 --attention sage8 --linear fp8
  run_bench f22-exact5b 150 transformer --model-config 5b --repeats 2
fi
# Issue 22, sixth session (2026-12-05, written without a GPU): the 8-bit kernel's tensor-core row sums (SAGE_TC_ROWSUM,
# now the default, numerics changed with the CPU emulation) and the warpgroups' score-wgmma ping-pong
# (SAGE90_PINGPONG=1). Correctness of both builds against the emulation first, then each variant's 2b step profiled
# (the per-call kernel time) beside the exact step's F16 kernel, in two interleaved rounds (identical builds vary 2-4 %
# between calls, so only this call's figures compare). SAGE_TC_ROWSUM=0 is the previous kernel (timing only: its row
# sums differ from the emulation's by up to 1e-2 on small key counts).
# Seventh session: SAGE90_KEYS=128 (128-key online-softmax tiles, three consumer warpgroups; its own numerics, which the
# op catalogue's CPU emulation follows) joins the variants. Eighth session (2026-12-06, H200): 128 keys with the
# ping-pong won both rounds and became the default, so the variants are now the earlier kernels, back to the fifth
# session's (SAGE_TC_ROWSUM=0,SAGE90_KEYS=64,SAGE90_PINGPONG=0). SAGE_AB overrides the list; scripts/gpu-ab.sh runs it.
# Ninth session (2026-12-06, H100): linear exponentials (SAGE90_EXP_LIN=1) without their clamps where none is needed
# (SAGE90_LIN_FAST=1) in the overlapped schedule (two consumer warpgroups) won every round and became the default;
# SAGE90_SERIAL=1 is the serial one, SAGE90_EXP_LIN=0 the eighth session's exp2 kernel. Tenth session (H100): the
# per-row clamp bound (SAGE90_LIN_BOUND) and the K scales read early (SAGE90_EARLY_KS) won every round; with both off it
# is the ninth session's default.
if has sage8ab; then
  AB=${SAGE_AB:-"default SAGE90_EARLY_KS=0 SAGE90_LIN_BOUND=0,SAGE90_EARLY_KS=0 SAGE90_SERIAL=1 SAGE90_LIN_FAST=0 SAGE90_EXP_LIN=0 SAGE90_KEYS=64 SAGE90_EXP_LIN=0,SAGE90_KEYS=64 SAGE_TC_ROWSUM=0,SAGE90_KEYS=64,SAGE90_PINGPONG=0,SAGE90_EXP_LIN=0"} \
    SELFTEST_LIMIT=300 OUT=$OUT bash scripts/gpu-ab.sh; stamp sage8ab
fi
# The fast modes' per-step error against the exact step at full size (random weights), alone and combined, 2b and 5b.
if has fastmodes; then
  for m in 2b 5b; do
    run_bench "fm-$m-fp8" 300 transformer --model-config $m --repeats 3 --linear fp8
    run_bench "fm-$m-s8fp8" 300 transformer --model-config $m --repeats 3 --linear fp8 --attention sage8
  done
  run_bench fm-5b-s8 300 transformer --model-config 5b --repeats 3 --attention sage8
  grep -E "relative error of the step" "$OUT/bench.txt"
fi
if has bench2b || has cudnn2b || has owncuda2b || has composite2b || has bench5b || has vae || has t5 || has lora || has encode || has i2v || has step15 || has profile15 || has vae15 || has sage8 || has fp8 || has expemu || has fp8lite || has sage8fast || has fastest || has fastmodes || has fast22 || has sage8ab; then
  grep -E "^=== |^transformer |^vae |^t5 |^load |^step |^unfused |^paths|rc=|error|8-bit attention|note: cuDNN (has|conv|could|not)|note: cuDNN attention for|^profile of|^  [a-z0-9_]+( [A-Za-z]+)? +[0-9.]+ ms" "$OUT/bench.txt" | cut -c1-300
fi
if has golden; then
  timeout 240 $B selftest --golden > "$OUT/golden.txt" 2>&1; echo "golden rc=$?" >> "$OUT/golden.txt"
  grep -E "FAIL|within|passed|rc=|error" "$OUT/golden.txt" | head -20; stamp golden
fi
if has variants; then
  { echo "=== own kernels (COGVIDEOX_CUDNN=0)"
    COGVIDEOX_CUDNN=0 timeout 120 $B selftest --timing-only --filter attention
    COGVIDEOX_CUDNN=0 timeout 120 $B selftest --timing-only --filter conv3d
    echo "=== own kernels' correctness (COGVIDEOX_CUDNN=0: the sm_90a attention kernel on Hopper)"
    COGVIDEOX_CUDNN=0 timeout 60 $B selftest --filter attention | grep -E "FAIL|passed|attention .*(F16|BF16) .*64\]"
    echo "=== cuDNN's attention first (COGVIDEOX_ATTENTION=cudnn): timings and selftest"
    COGVIDEOX_ATTENTION=cudnn timeout 120 $B selftest --timing-only --filter attention
    COGVIDEOX_ATTENTION=cudnn timeout 60 $B selftest --filter attention | grep -E "FAIL|passed"
    echo "=== composite cuDNN attention graph (COGVIDEOX_CUDNN_SDPA=composite)"
    COGVIDEOX_ATTENTION=cudnn COGVIDEOX_CUDNN_SDPA=composite timeout 120 $B selftest --timing-only --filter attention
    echo "=== composite graph selftest"
    COGVIDEOX_ATTENTION=cudnn COGVIDEOX_CUDNN_SDPA=composite timeout 60 $B selftest --filter attention | grep -E "FAIL|passed"
  } > "$OUT/variants.txt" 2>&1
  grep -E "^===|attention|conv3d|FAIL|passed" "$OUT/variants.txt" | grep -v "^\[cuda\]" | cut -c1-200; stamp variants
fi
if has pipeline; then
  run_bench pipeline 540 pipeline --model-config 2b --steps 50 --memory ${MEMORY:-full,balanced,low}
  grep -A40 "=== bench pipeline" "$OUT/bench.txt" | grep -E "^  (full|balanced|low|auto)|^target|^mode|video 1/1|rc=" 
fi
# The reference in the same call: diffusers' source packed as .gpu/diffusers.tar.xz (scripts/reference/README.md),
# stages named in REF_STAGES (scripts/reference/diffusers_bench.py).
if has reference; then
  mkdir -p /tmp/ref && tar -xJf .gpu/diffusers.tar.xz -C /tmp/ref
  PYTHONPATH=/tmp/ref PYTHONUNBUFFERED=1 timeout "${REF_LIMIT:-400}" python3 scripts/reference/diffusers_bench.py $REF_STAGES > "$OUT/reference.txt" 2>&1
  echo "reference rc=$?" >> "$OUT/reference.txt"
  grep -E "^diffusers|^reference|rc=|Error" "$OUT/reference.txt" | cut -c1-300; stamp reference
fi
stamp done
