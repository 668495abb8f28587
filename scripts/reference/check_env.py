#!/usr/bin/env python3
"""Checks that this reference environment computes what the golden fixtures' did (diffusers on PyTorch 2.11 with
transformers): re-runs every golden pipeline run from its prompt embeddings and prints the largest difference of the
frames, which must stay within the golden tolerance (2e-3 absolute). Exit 1 if one does not.

    PYTHONPATH= /usr/bin/python3 scripts/reference/check_env.py
"""
import json
import os
import sys

import refenv
import torch
from diffusers.pipelines.cogvideo.pipeline_cogvideox import CogVideoXPipeline

worst = 0.0
for style in ("pipeline_2b_style", "pipeline_5b_style"):
    folder = os.path.join(refenv.GOLDEN, style)
    vae, tr, sched = refenv.load_components(folder)
    pipe = CogVideoXPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=tr, scheduler=sched)
    for r in json.load(open(os.path.join(folder, "runs", "runs.json"))):
        _, ref = refenv.golden_run(style, r["tag"])
        frames = pipe(prompt_embeds=ref["prompt_embeds"], negative_prompt_embeds=ref["negative_embeds"],
                      guidance_scale=r["guidance"], num_inference_steps=r["steps"], num_frames=r["frames"],
                      height=r["height"], width=r["width"], use_dynamic_cfg=r.get("dynamic_cfg", False),
                      generator=torch.Generator().manual_seed(r["seed"]), output_type="pt").frames[0]
        err = (frames - ref["frames"]).abs().max().item()
        worst = max(worst, err)
        print(f"{style}/{r['tag']}: frames max abs error {err:.3e} against the golden run")
print(json.dumps(refenv.provenance()))
print(f"largest {worst:.3e} (tolerance 2e-3)")
sys.exit(0 if worst <= 2e-3 else 1)
