"""Fixtures for the VAE encoder: diffusers' AutoencoderKLCogVideoX.encode (CPU, float32) on the golden 2b-style VAE
(tests/fixtures/golden/pipeline_2b_style/vae; the 5b-style folder holds byte-identical files), written to
tests/fixtures/reference/vae_encoder/ (README.md there says what each key is).

    cd scripts/reference && REFERENCE_SRC=/work/main/.reference/src PYTHONPATH= /usr/bin/python3 fixtures_vae_encoder.py
"""
import os

import refenv  # noqa: F401  (installs the shims first)
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLCogVideoX

OUT = os.path.join(refenv.FIXTURES, "vae_encoder")
VAE = os.path.join(refenv.GOLDEN, "pipeline_2b_style", "vae")
SAMPLE_SEED = 1234
TILING = dict(tile_sample_min_height=32, tile_sample_min_width=48, tile_overlap_factor_height=1 / 4,
              tile_overlap_factor_width=1 / 3)


def video(seed, batch, frames, height, width):
    """Seeded values in [-1, 1], smooth-ish (coarse noise upsampled, plus a little fine noise) so that the encoder
    sees structure and neighbouring tiles overlap on similar content."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, frames, max(height // 8, 1), max(width // 8, 1), generator=g) * 2 - 1
    smooth = F.interpolate(coarse, size=(frames, height, width), mode="trilinear", align_corners=False)
    fine = (torch.rand(batch, 3, frames, height, width, generator=g) * 2 - 1) * 0.15
    return (smooth * 0.85 + fine).clamp(-1, 1).contiguous()


def main():
    vae = AutoencoderKLCogVideoX.from_pretrained(VAE, low_cpu_mem_usage=False).eval()
    out = {}
    cases = {
        # name: (seed, batch, frames, height, width) — frame batches of 8 with the first taking the remainder.
        "f1": (11, 1, 1, 32, 48),     # one frame (an image, as image-to-video encodes it)
        "f9": (12, 1, 9, 32, 48),     # one batch of 9
        "f13": (13, 1, 13, 32, 48),   # one batch of 13 (13 < 16: 13 // 8 = 1 batch takes all)
        "f17": (14, 1, 17, 32, 48),   # 9 + 8: the caches cross one batch boundary
        "f49": (15, 1, 49, 32, 48),   # 9 + 5 × 8, as a 49-frame video
        "b2": (16, 2, 9, 32, 48),     # a batch of two videos (statistics per item)
        "odd": (17, 1, 9, 40, 56),    # sizes that are not multiples of 16
    }
    for name, (seed, b, f, h, w) in cases.items():
        x = video(seed, b, f, h, w)
        dist = vae.encode(x).latent_dist
        out[f"{name}_video"] = x
        out[f"{name}_mean"] = dist.mean
        out[f"{name}_logvar"] = dist.logvar
        print(f"{name}: video {tuple(x.shape)} -> mean {tuple(dist.mean.shape)}, |mean| <= {dist.mean.abs().max():.3f}, "
              f"logvar in [{dist.logvar.min():.3f}, {dist.logvar.max():.3f}]")
    # mode() and sample(generator) of the 17-frame case; the noise sample() drew, for checking the generator port.
    dist = vae.encode(out["f17_video"]).latent_dist
    out["f17_mode"] = dist.mode()
    out["f17_sample"] = dist.sample(generator=torch.Generator().manual_seed(SAMPLE_SEED))
    out["f17_noise"] = torch.randn(dist.mean.shape, generator=torch.Generator().manual_seed(SAMPLE_SEED))

    # Tiled encodes (tiles 32×48 pixels, overlaps 1/4 and 1/3), each with the untiled encode of the same input.
    for name, (seed, f, h, w) in {"tiled": (21, 9, 64, 96), "tiled_edges": (22, 9, 56, 88), "tiled_f17": (23, 17, 48, 80)}.items():
        x = video(seed, 1, f, h, w)
        vae.disable_tiling()
        untiled = vae.encode(x).latent_dist
        vae.enable_tiling(**TILING)
        tiled = vae.encode(x).latent_dist
        vae.disable_tiling()
        out[f"{name}_video"] = x
        out[f"{name}_mean"] = tiled.mean
        out[f"{name}_logvar"] = tiled.logvar
        out[f"{name}_untiled_mean"] = untiled.mean
        out[f"{name}_untiled_logvar"] = untiled.logvar
        print(f"{name}: video {tuple(x.shape)} -> tiled mean {tuple(tiled.mean.shape)}, "
              f"tiled vs untiled max diff {(tiled.mean - untiled.mean).abs().max():.3f}")

    refenv.save(out, os.path.join(OUT, "vae_encoder_cases.safetensors"), vae=VAE, tiling=TILING, sample_seed=SAMPLE_SEED)
    print("wrote", os.path.join(OUT, "vae_encoder_cases.safetensors"))


if __name__ == "__main__":
    main()
