#!/usr/bin/env python3
# The 8-bit attention pre-pass's thread maps (Kernels/attention_sage8.cu: sage8_scan_q, sage8_quant_kv) replayed on
# indices, no GPU needed: every byte of q8/k8/vt8 and every scale is written exactly once, by the lane whose inputs it
# is made from, in the legacy kernels' layouts (K's scale groups (t mod 8) div 2 per 64-key tile, Q's rows {r, r + 8}
# per 16-row tile, V^T's 32-key slot permutation slot_key), the scan's per-class token order is sage8_scan's, and both
# block orders of each launch (default and SAGE_PRE_TOKEN_MAJOR=1) cover every work item once.
#   python3 scripts/kernels/sage8-prepass-maps.py
def slot_key(slot):
    half, w = slot >> 4, slot & 15; t, i = w >> 2, w & 3
    return half * 16 + 2 * t + (i & 1) + 8 * (i >> 1)

def check(nq, nk, nq_pad, T=8):
    nk_pad = (nk + 63) // 64 * 64
    # ---- K and V
    k8 = {}; vt = {}; ksc = {}; kgroups = {}
    tiles = nk_pad // 64
    nblocks = (tiles + T - 1) // T
    for bx in range(nblocks):
        first = bx * T; last = min(tiles, first + T)
        for tid in range(128):
            warp, lane = tid >> 5, tid & 31
            j, kblk = lane & 7, lane >> 3
            vp, vblk, jv = lane & 3, (lane >> 2) & 3, 2 * warp + (lane >> 4)
            kkey, vkey = 16 * kblk + 2 * warp, 16 * vblk + 2 * vp
            k8row = 64 * first + kkey          # row pointer (in rows)
            vtoff = 64 * first + 4 * (lane & 15)
            kscale_t = 64 * first + 2 * warp + (lane & 1) + 8 * (lane >> 1)
            for ti in range(first, last):
                tile = ti * 64
                kt = [tile + kkey + (i & 1) + 8 * (i >> 1) for i in range(4)]
                vtok = [tile + vkey + (i & 1) + 8 * (i >> 1) for i in range(4)]
                for i in range(4):
                    row = k8row + (i & 1) + 8 * (i >> 1)
                    assert row == kt[i]
                    for e in range(8):
                        key = (row, 8 * j + e)
                        assert key not in k8; k8[key] = (kt[i], 8 * j + e)
                    kgroups.setdefault((ti, warp), set()).add(kt[i])
                k8row += 64
                if lane < 16:
                    assert kscale_t not in ksc; ksc[kscale_t] = (ti, warp)
                kscale_t += 64
                for e in range(8):
                    c = 8 * jv + e
                    for i in range(4):
                        byte = (c, vtoff + i)
                        assert byte not in vt; vt[byte] = vtok[i]
                vtoff += 64
    # coverage and mapping
    assert len(k8) == nk_pad * 64 and all(v == k for k, v in k8.items())
    for (ti, p), toks in kgroups.items():
        assert toks == {ti * 64 + t for t in range(64) if (t % 8) // 2 == p}, (ti, p)
    assert sorted(ksc) == list(range(nk_pad))
    for t, (ti, p) in ksc.items(): assert t // 64 == ti and ((t % 64) % 8) // 2 == p
    assert len(vt) == 64 * nk_pad
    for (c, pos), key in vt.items():
        tile, slot = pos // 64 * 64, pos % 64
        assert key == tile + (slot & 32) + slot_key(slot & 31), (c, pos, key)
    # ---- Q
    q8 = {}; qs = {}
    for blk in range(nq_pad // 64):
        for tid in range(128):
            warp, lane = tid >> 5, tid & 31; j, g = lane & 3, lane >> 2
            tile = blk * 64 + warp * 16; r0 = tile + g
            for (r, cbase) in [(r0, 8 * j), (r0, 32 + 8 * j), (r0 + 8, 8 * j), (r0 + 8, 32 + 8 * j)]:
                for e in range(8):
                    assert (r, cbase + e) not in q8; q8[(r, cbase + e)] = (tile, g)
            if lane < 16:
                row = tile + lane; src = (lane & 7) * 4
                assert src >> 2 == (row - tile) % 8
                qs[row] = 1
    assert len(q8) == nq_pad * 64 and sorted(qs) == list(range(nq_pad))
    for (r, c), (tile, g) in q8.items(): assert (r - tile) % 8 == g and 0 <= r - tile < 16
    # ---- scan: thread (l, j) sums tokens t0 + l + 16 i in order; class count
    for chunk in range((nk + 511) // 512):
        t0 = chunk * 512; n = min(nk - t0, 512)
        for l in range(16):
            count = (n - l + 15) >> 4 if n > l else 0
            assert [t0 + l + 16 * i for i in range(count)] == list(range(t0 + l, t0 + n, 16))
    return True


def check_grids(nk, nq_pad, BH, T):
    splits = (nk + 511) // 512; qb = nq_pad // 64; gx = splits + qb
    nk_pad = (nk + 63) // 64 * 64; kgx = (nk_pad // 64 + T - 1) // T
    for token_major in (False, True):
        q, sc, kv = [], [], []
        for y in range(BH):
            for x in range(gx):
                i = y * gx + x; qt = qb * BH
                if i < qt: q.append((i % BH, i // BH) if token_major else (i // qb, i % qb))
                else:
                    r = i - qt; sc.append((r % BH, r // BH) if token_major else (r // splits, r % splits))
            for x in range(kgx):
                if token_major: i = y * kgx + x; kv.append((i % BH, kgx - 1 - i // BH))
                else: kv.append((BH - 1 - y, x))
        assert sorted(q) == [(b, k) for b in range(BH) for k in range(qb)]
        assert sorted(sc) == [(b, k) for b in range(BH) for k in range(splits)]
        assert sorted(kv) == [(b, g) for b in range(BH) for g in range(kgx)]

for nq, nk in [(1, 1), (17, 33), (130, 67), (300, 517), (64, 64), (200, 1100), (40, 600), (77, 77), (17776, 17776)]:
    for unit in (64, 192):
        nq_pad = (nq + unit - 1) // unit * unit
        for T in (1, 3, 8):
            if nk > 2000 and T != 8: continue
            check(nq, nk, nq_pad, T)
            check_grids(nk, nq_pad, 3, T)
print("sage8 pre-pass thread maps: every output once, in the legacy layouts; both block orders cover every item")
