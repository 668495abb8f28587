#!/usr/bin/env python3
"""Which path the sm_90 8-bit kernel's linear exponentials take (attention_sage8_sm90.cu, softmax8) on the op
catalogue's large-score inputs: per warp (16 rows) and 128-key tile, the per-row bound (SAGE90_LIN_BOUND), else the
row minima against the clamps (no clamp needed), else the clamped loop. An approximation of the kernel, to choose the
catalogue's softmax scales: INT8 scales per 64 rows of Q and per 64 keys of K (the pre-pass's blocks), a score clamped
where it lies more than log2(448) + 127 octaves below the row's running maximum.
    python3 scripts/kernels/sage8-lin-paths.py   # 0.125: bound everywhere; 3: minima, no clamp; 8: clamped
"""
import random

LOG2E = 1.4426950408889634


def paths(scale, nq=200, nk=1100, seed=1):
    rnd = random.Random(seed)
    q = [[rnd.uniform(-1, 1) for _ in range(64)] for _ in range(nq)]
    k = [[rnd.uniform(1, 3) for _ in range(64)] for _ in range(nk)]
    mean = [sum(k[j][c] for j in range(nk)) / nk for c in range(64)]
    k = [[k[j][c] - mean[c] for c in range(64)] for j in range(nk)]  # K smoothing
    qsb = [max(abs(x) for r in q[i:i + 64] for x in r) / 127 for i in range(0, nq, 64)]
    ksb = [max(abs(x) for r in k[i:i + 64] for x in r) / 127 for i in range(0, nk, 64)]
    q8 = [[round(x / qsb[i // 64]) for x in q[i]] for i in range(nq)]
    k8 = [[round(x / ksb[j // 64]) for x in k[j]] for j in range(nk)]
    qs = [qsb[i // 64] * scale * LOG2E for i in range(nq)]
    bq = [qs[i] * (127 * sum(abs(x) for x in q8[i]) + 1) for i in range(nq)]
    count = {"bound": 0, "minima": 0, "clamped": 0, "tail": 0}
    m = [float("-inf")] * nq
    for t in range(0, nk, 128):
        keys = range(t, min(t + 128, nk))
        y = [[sum(a * b for a, b in zip(q8[i], k8[j])) * qs[i] * ksb[j // 64] for j in keys] for i in range(nq)]
        m = [max(m[i], max(y[i])) for i in range(nq)]
        if t + 128 > nk:
            count["tail"] += (nq + 15) // 16  # the last tile always takes the clamped loop
            continue
        ksm = max(ksb[j // 64] for j in keys)
        for w in range(0, nq, 16):
            rows = range(w, min(w + 16, nq))
            if max(bq[i] for i in rows) * ksm + max(m[i] for i in rows) <= 134.807 and min(m[i] for i in rows) >= -128:
                count["bound"] += 1
            elif all(v >= m[i] - 135.8 for i in rows for v in y[i]):
                count["minima"] += 1
            else:
                count["clamped"] += 1
    return count


if __name__ == "__main__":
    for scale in (0.125, 3.0, 8.0):
        print(f"softmax scale {scale}: {paths(scale)}", flush=True)
