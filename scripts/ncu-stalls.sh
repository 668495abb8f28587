#!/usr/bin/env bash
# Runs on the GPU machine (carry .gpu/bin and this script): Nsight Compute's source-level stall sampling of the 8-bit
# attention kernel in several builds, each the third launch of a 2b step; prints the IPC and eligible-warp figures, the
# samples per opcode and the 45 most-stalled SASS lines with their main stall reasons, and leaves the per-line CSVs
# (gzipped) under $OUT. NCU_BUILDS lists name=defines pairs (COGVIDEOX_KERNEL_DEFINES, commas between defines); the
# default compares today's default build with the 64-key one. The fifth session's run
# (docs/gpu-runs/2026-12-05-s5-run4-h100-ncu.txt) compared "deep" (SAGE90_NW=3,SAGE90_CONSUMER_REGS=160,
# SAGE90_SERIAL=0,SAGE_TC_ROWSUM=0,SAGE90_KEYS=64,SAGE90_PINGPONG=0,SAGE90_EXP_LIN=0 today) with the serial schedule.
B=.gpu/bin/cogvideox; NCU=/usr/local/cuda/bin/ncu
NCU_BUILDS=${NCU_BUILDS:-"default= k64=SAGE90_KEYS=64"}
for build in $NCU_BUILDS; do
  v=${build%%=*}
  export COGVIDEOX_KERNEL_DEFINES=${build#*=}
  echo "=== $v: COGVIDEOX_KERNEL_DEFINES=$COGVIDEOX_KERNEL_DEFINES"
  timeout 240 $NCU -k regex:sage8_attention_sm90 --launch-skip 2 --launch-count 1 --section SourceCounters --section WarpStateStats --section SchedulerStats \
    --import-source no -o /root/$v -f $B bench transformer --model-config 2b --repeats 1 --warmup 0 --attention sage8 > /root/$v.log 2>&1; echo "$v ncu rc=$?"
  tail -3 /root/$v.log
  $NCU -i /root/$v.ncu-rep --page source --csv --print-source sass > /root/$v.csv 2>/root/$v.err; echo "csv rc=$? $(wc -l < /root/$v.csv) lines"; head -c 300 /root/$v.err
  $NCU -i /root/$v.ncu-rep --page details --section WarpStateStats --section SchedulerStats 2>&1 | grep -E "Stall|Warp Cycles|Eligible|Issued|Active|No Eligible" | head -30
  gzip -c /root/$v.csv > $OUT/$v.csv.gz
  unset COGVIDEOX_KERNEL_DEFINES
done
NCU_NAMES=$(for build in $NCU_BUILDS; do printf '%s ' "${build%%=*}"; done) python3 - <<'PY'
import csv, gzip, collections, os
for v in os.environ["NCU_NAMES"].split():
    p=f"/root/{v}.csv"
    if not os.path.exists(p): continue
    rows=list(csv.reader(open(p)))
    # find header row
    hi=next(i for i,r in enumerate(rows) if any("Source" in c for c in r))
    h=rows[hi]; print(v, "columns:", h[:40])
    data=rows[hi+1:]
    def col(name):
        for i,c in enumerate(h):
            if c.strip()==name: return i
        return None
    src=col("Source"); tot=None
    for i,c in enumerate(h):
        if c.startswith("Warp Stall Sampling (All"): tot=i
    if tot is None or src is None: print("no columns"); continue
    def f(x):
        try: return float(x.replace(",",""))
        except: return 0.0
    byop=collections.Counter(); total=0
    for r in data:
        if len(r)<=tot: continue
        op=r[src].split()[0] if r[src].split() else "?"
        if op.startswith("@"): op=r[src].split()[1]
        byop[op]+=f(r[tot]); total+=f(r[tot])
    print(v, "total samples", total)
    for op,n in byop.most_common(25): print(f"  {op:40s} {n:8.0f} {100*n/max(total,1):5.1f}%")
    top=sorted(data, key=lambda r: -f(r[tot]) if len(r)>tot else 0)[:45]
    for r in top: print("   ", f"{f(r[tot]):7.0f}", r[src][:90], "|", ",".join(f"{h[i][:18]}={r[i]}" for i in range(len(h)) if i not in (src,tot) and "stall" in h[i].lower() and f(r[i])>0.15*f(r[tot]))[:200])
PY
