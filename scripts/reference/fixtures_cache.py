#!/usr/bin/env python3
"""Step-caching fixtures (issue 22): FirstBlockCache through diffusers' own hook, TeaCache as a transcription of its
CogVideoX forward, both on the tiny golden models, with more steps than the golden runs so that some steps are
reused and some are not. Writes tests/fixtures/reference/cache/ (README.md there says what each key is).

    cd scripts/reference && REFERENCE_SRC=/work/main/.reference/src PYTHONPATH= /usr/bin/python3 fixtures_cache.py [--probe]

--probe prints every step's decision metric with nothing reused (to choose thresholds) and writes nothing.
"""
import json
import math
import os
import sys

import numpy as np
import refenv
import torch
from diffusers.hooks import FirstBlockCacheConfig, apply_first_block_cache
from diffusers.pipelines.cogvideo.pipeline_cogvideox import CogVideoXPipeline

OUT = os.path.join(refenv.FIXTURES, "cache")

# TeaCache's published rescale coefficients (np.poly1d order, highest power first), from TeaCache commit 7c10efc:
# TeaCache4CogVideoX1.5/teacache_sample_video.py `coefficients_dict` (the 2b and 5b rows are also written inline in
# eval/teacache/experiments/cogvideox.py, chosen there by use_rotary_positional_embeddings).
COEFFICIENTS = {
    "CogVideoX-2b": [-3.10658903e+01, 2.54732368e+01, -5.92380459e+00, 1.75769064e+00, -3.61568434e-03],
    "CogVideoX-5b": [-1.53880483e+03, 8.43202495e+02, -1.34363087e+02, 7.97131516e+00, -5.23162339e-02],
    # Not published: the identity rescale (the raw relative L1 accumulates). With random tiny weights the published
    # polynomials turn every distance into a negative number, so every middle step is reused; this one makes a mix
    # and so exercises the accumulate-and-reset logic.
    "identity": [1.0, 0.0],
}


def exact_step(i, steps, exact_steps):
    """The first and last max(1, exact_steps) steps are always computed in full."""
    n = max(1, exact_steps)
    return i < n or i >= steps - n


def teacache_forward(self, hidden_states, encoder_hidden_states, timestep, timestep_cond=None, ofs=None,
                     image_rotary_emb=None, attention_kwargs=None, return_dict=True):
    """TeaCache's CogVideoX forward (TeaCache4CogVideoX1.5/teacache_sample_video.py, commit 7c10efc), transcribed onto
    diffusers 58eb52c's CogVideoXTransformer3DModel.forward. Differences: the LoRA-scale lines are left out (no LoRA
    here); `exact_steps` generalises TeaCache's `cnt == 0 or cnt == num_steps - 1` to the first and last N steps
    (N = 1 is TeaCache's rule); the decision and metric of each call are logged."""
    batch_size, num_frames, channels, height, width = hidden_states.shape
    t_emb = self.time_proj(timestep).to(dtype=hidden_states.dtype)
    emb = self.time_embedding(t_emb, timestep_cond)
    hidden_states = self.patch_embed(encoder_hidden_states, hidden_states)
    hidden_states = self.embedding_dropout(hidden_states)
    text_seq_length = encoder_hidden_states.shape[1]
    encoder_hidden_states = hidden_states[:, :text_seq_length]
    hidden_states = hidden_states[:, text_seq_length:]

    metric = float("nan")
    if exact_step(self.cnt, self.num_steps, self.exact_steps):
        should_calc = True
        self.accumulated_rel_l1_distance = 0
    else:
        rescale_func = np.poly1d(self.coefficients)
        rel = ((emb - self.previous_modulated_input).abs().mean() / self.previous_modulated_input.abs().mean()).cpu().item()
        metric = rel
        self.accumulated_rel_l1_distance += rescale_func(rel)
        if self.accumulated_rel_l1_distance < self.rel_l1_thresh:
            should_calc = False
        else:
            should_calc = True
            self.accumulated_rel_l1_distance = 0
    self.log.append({"computed": should_calc, "rel_l1": metric, "accumulated": float(self.accumulated_rel_l1_distance)})
    self.previous_modulated_input = emb
    self.cnt += 1
    if self.cnt == self.num_steps:
        self.cnt = 0

    if not should_calc:
        hidden_states += self.previous_residual
        encoder_hidden_states += self.previous_residual_encoder
    else:
        ori_hidden_states = hidden_states.clone()
        ori_encoder_hidden_states = encoder_hidden_states.clone()
        for block in self.transformer_blocks:
            hidden_states, encoder_hidden_states = block(hidden_states=hidden_states,
                                                         encoder_hidden_states=encoder_hidden_states, temb=emb,
                                                         image_rotary_emb=image_rotary_emb)
        self.previous_residual = hidden_states - ori_hidden_states
        self.previous_residual_encoder = encoder_hidden_states - ori_encoder_hidden_states

    if not self.config.use_rotary_positional_embeddings:
        hidden_states = self.norm_final(hidden_states)
    else:
        hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        hidden_states = self.norm_final(hidden_states)
        hidden_states = hidden_states[:, text_seq_length:]
    hidden_states = self.norm_out(hidden_states, temb=emb)
    hidden_states = self.proj_out(hidden_states)
    p = self.config.patch_size
    output = hidden_states.reshape(batch_size, num_frames, height // p, width // p, -1, p, p)
    output = output.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
    return (output,)


def enable_teacache(transformer, threshold, coefficients, steps, exact_steps):
    transformer.cnt = 0
    transformer.num_steps = steps
    transformer.exact_steps = exact_steps
    transformer.rel_l1_thresh = threshold
    transformer.coefficients = coefficients
    transformer.accumulated_rel_l1_distance = 0
    transformer.previous_modulated_input = None
    transformer.previous_residual = None
    transformer.previous_residual_encoder = None
    transformer.log = []
    transformer.forward = teacache_forward.__get__(transformer)
    return transformer.log


def enable_fbcache(transformer, threshold, steps, exact_steps):
    """diffusers' own hook; the head hook's decision is logged, and on the always-exact steps its threshold is set to
    -inf for that call (so it computes, and keeps its state exactly as a computed step does)."""
    apply_first_block_cache(transformer, FirstBlockCacheConfig(threshold=threshold))
    hook = transformer.transformer_blocks[0]._diffusers_hook.get_hook("fbc_leader_block_hook")
    log = []
    decide = hook._should_compute_remaining_blocks

    def logged(residual):
        state = hook.state_manager.get_state()
        prev = state.head_block_residual
        metric = float("nan") if prev is None else ((residual - prev).abs().mean() / prev.abs().mean()).item()
        computed = decide(residual)
        log.append({"computed": computed, "rel_l1": metric})
        return computed

    hook._should_compute_remaining_blocks = logged
    calls = [0]

    def before(module, args):
        i = calls[0]
        hook.threshold = -math.inf if exact_step(i, steps, exact_steps) else threshold
        calls[0] += 1

    transformer.register_forward_pre_hook(before)
    return log


def run(style, tag, steps, mode, threshold, exact_steps=0, coefficients=None):
    folder = os.path.join(refenv.GOLDEN, style)
    vae, tr, sched = refenv.load_components(folder)
    settings, golden = refenv.golden_run(style, tag)
    if mode == "teacache":
        log = enable_teacache(tr, threshold, COEFFICIENTS[coefficients], steps, exact_steps)
    elif mode == "fbcache":
        log = enable_fbcache(tr, threshold, steps, exact_steps)
    else:
        log = []
    outputs = []
    tr.register_forward_hook(lambda m, a, out: outputs.append(out[0].clone()))
    pipe = CogVideoXPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=tr, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    frames = pipe(prompt_embeds=golden["prompt_embeds"], negative_prompt_embeds=golden["negative_embeds"],
                  guidance_scale=settings["guidance"], num_inference_steps=steps, num_frames=settings["frames"],
                  height=settings["height"], width=settings["width"],
                  use_dynamic_cfg=settings.get("dynamic_cfg", False),
                  generator=torch.Generator().manual_seed(settings["seed"]), output_type="pt").frames[0]
    return settings, frames, outputs, log


# (name, golden style, golden run whose prompt/seed/size it takes, steps, mode, threshold, exact_steps, coefficients)
CASES = [
    ("fbcache_2b", "pipeline_2b_style", "panda_s42", 12, "fbcache", 0.6, 0, None),
    ("fbcache_2b_exact3", "pipeline_2b_style", "panda_s42", 12, "fbcache", 0.6, 3, None),
    ("teacache_2b", "pipeline_2b_style", "panda_s42", 12, "teacache", 0.1, 0, "CogVideoX-2b"),
    ("teacache_2b_exact3", "pipeline_2b_style", "panda_s42", 12, "teacache", 0.1, 3, "CogVideoX-2b"),
    ("teacache_2b_identity", "pipeline_2b_style", "panda_s42", 12, "teacache", 1.5, 0, "identity"),
    ("fbcache_5b", "pipeline_5b_style", "panda_dpm_dyncfg", 12, "fbcache", 0.75, 0, None),
    ("teacache_5b", "pipeline_5b_style", "panda_dpm_dyncfg", 12, "teacache", 0.2, 0, "CogVideoX-5b"),
    ("teacache_5b_identity", "pipeline_5b_style", "panda_dpm_dyncfg", 12, "teacache", 1.7, 0, "identity"),
]


def probe():
    for name, style, tag, steps, mode, _, _, coef in CASES:
        if "exact" in name:
            continue
        threshold = -math.inf if mode == "fbcache" else -1e9
        _, _, _, log = run(style, tag, steps, mode, threshold, 0, coef)
        if mode == "teacache":
            poly = np.poly1d(COEFFICIENTS[coef])
            print(name, [(round(e["rel_l1"], 5), round(float(poly(e["rel_l1"])), 5)) if not math.isnan(e["rel_l1"]) else None
                         for e in log])
        else:
            print(name, [round(e["rel_l1"], 5) for e in log])


def main():
    if "--probe" in sys.argv:
        probe()
        return
    os.makedirs(OUT, exist_ok=True)
    index = []
    exact = {}
    for style, tag in sorted({(c[1], c[2]) for c in CASES}):
        settings, frames, outputs, _ = run(style, tag, 12, "none", 0.0)
        exact[(style, tag)] = frames
        tensors = {"frames": frames, **{f"transformer_out_step{i}": o for i, o in enumerate(outputs)}}
        refenv.save(tensors, os.path.join(OUT, f"exact_{style}_{tag}.safetensors"), settings={**settings, "steps": 12})
    for name, style, tag, steps, mode, threshold, exact_steps, coef in CASES:
        settings, frames, outputs, log = run(style, tag, steps, mode, threshold, exact_steps, coef)
        exact_frames = exact[(style, tag)]
        reused = [i for i, e in enumerate(log) if not e["computed"]]
        tensors = {"frames": frames, "reused_steps": torch.tensor(reused, dtype=torch.int64)}
        for i, out in enumerate(outputs):
            tensors[f"transformer_out_step{i}"] = out
        mse = ((frames - exact_frames) ** 2).mean().item()
        psnr = 10 * math.log10(1.0 / mse) if mse > 0 else math.inf
        entry = {"name": name, "style": style, "golden_run": tag, "prompt": settings["prompt"],
                 "negative_prompt": settings.get("negative_prompt"), "seed": settings["seed"], "steps": steps,
                 "guidance": settings["guidance"], "frames": settings["frames"], "height": settings["height"],
                 "width": settings["width"], "dynamic_cfg": settings.get("dynamic_cfg", False), "cache": mode,
                 "cache_threshold": threshold, "exact_steps": exact_steps, "coefficients": coef,
                 "coefficient_values": COEFFICIENTS[coef] if coef else None,
                 "reused_steps": reused, "decisions": log, "psnr_vs_exact": psnr}
        index.append(entry)
        refenv.save(tensors, os.path.join(OUT, name + ".safetensors"), settings=entry)
        print(f"{name}: reused {reused} of {steps}; frames vs the exact run: max {(frames - exact_frames).abs().max().item():.3e}, "
              f"PSNR {psnr:.2f} dB")
    def finite(v):  # JSON has no NaN: a metric not computed (a forced step) is null
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: finite(x) for k, x in v.items()}
        if isinstance(v, list):
            return [finite(x) for x in v]
        return v

    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(finite({"provenance": refenv.provenance(), "cases": index}), f, indent=1, allow_nan=False)


if __name__ == "__main__":
    main()
