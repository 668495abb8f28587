#!/usr/bin/env python3
"""LoRA fixtures: tiny LoRA files for the golden 2b-style and 5b-style transformers, and what diffusers computes with
them, loaded through diffusers' own CogVideoXPipeline.load_lora_weights + set_adapters (PEFT injects the LoRA layers
and runs their forward for real: base(x) + sum over adapters of lora_B(lora_A(x)) * scaling).

    cd scripts/reference && REFERENCE_SRC=/work/main/.reference/src PYTHONPATH= /usr/bin/python3 fixtures_lora.py

Writes tests/fixtures/reference/lora/ (README.md there says what each file is)."""
import json
import os
import shutil
import tempfile

import refenv
import torch
from diffusers.pipelines.cogvideo.pipeline_cogvideox import CogVideoXPipeline

import peft

# diffusers enables its PEFT backend only when transformers >= 4.34 is installed as well (text encoders take LoRA
# through PEFT too). Here transformers is a name-only shim (0.0.0+compat) and only the CogVideoX transformer takes
# LoRA layers, which PEFT builds and runs for real; so the switch is turned on in every diffusers module that read it.
import sys  # noqa: E402

for _module in list(sys.modules.values()):
    if getattr(_module, "__name__", "").startswith("diffusers") and hasattr(_module, "USE_PEFT_BACKEND"):
        _module.USE_PEFT_BACKEND = True

OUT = os.path.join(refenv.FIXTURES, "lora")
ATTN = ["attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0"]


def linear_shapes(tr):
    return {n: tuple(m.weight.shape) for n, m in tr.named_modules() if isinstance(m, torch.nn.Linear)}


def make_lora(shapes, targets, rank_of, gen, std=0.05):
    """PEFT-format tensors (no prefix): lora_A [r, in], lora_B [out, r], small normal values (seeded)."""
    sd = {}
    for name in targets:
        out_f, in_f = shapes[name]
        r = rank_of(name)
        sd[f"{name}.lora_A.weight"] = torch.randn(r, in_f, generator=gen) * std
        sd[f"{name}.lora_B.weight"] = torch.randn(out_f, r, generator=gen) * std
    return sd


def save_with_diffusers(sd, path, metadata=None):
    """Writes a LoRA file the way diffusers does (CogVideoXPipeline.save_lora_weights: `transformer.` prefix and,
    with metadata, the `lora_adapter_metadata` header entry)."""
    with tempfile.TemporaryDirectory() as tmp:
        CogVideoXPipeline.save_lora_weights(tmp, transformer_lora_layers=sd, weight_name="lora.safetensors",
                                            transformer_lora_adapter_metadata=metadata)
        shutil.copyfile(os.path.join(tmp, "lora.safetensors"), path)


def to_old_spelling(sd):
    """The older attention-processor spelling diffusers converts (convert_unet_state_dict_to_peft): attention
    projections as `attn1.processor.to_q_lora.down.weight` (to_out.0 as `to_out_lora`), other layers as
    `ff.net.2.lora.down.weight`; `transformer.` prefix."""
    out = {}
    for k, v in sd.items():
        mod, kind = k.split(".lora_")
        direction = "down" if kind.startswith("A") else "up"
        if ".attn1." in mod:
            block, proj = mod.split(".attn1.")
            proj = proj.replace("to_out.0", "to_out")
            key = f"{block}.attn1.processor.{proj}_lora.{direction}.weight"
        else:
            key = f"{mod}.lora.{direction}.weight"
        out["transformer." + key] = v
    return out


def transformer_inputs(style, tag):
    settings, ref = refenv.golden_run(style, tag)
    x = ref["transformer_in_step0"]
    t = ref["timestep_step0"]
    enc = torch.cat([ref["negative_embeds"], ref["prompt_embeds"]]) if x.shape[0] == 2 else ref["prompt_embeds"]
    rotary = (ref["rotary_cos"], ref["rotary_sin"]) if "rotary_cos" in ref else None
    return settings, ref, x, t, enc, rotary


def run_transformer(tr, x, t, enc, rotary):
    return tr(hidden_states=x, encoder_hidden_states=enc, timestep=t, image_rotary_emb=rotary, return_dict=False)[0]


def diffusers_error(fn):
    try:
        fn()
    except Exception as e:  # what diffusers says, recorded for the README
        return f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    return None


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = {"provenance": refenv.provenance() | {"peft": peft.__version__}, "styles": {}}
    for style, tag, pipe_adapters in (
        ("pipeline_2b_style", "panda_s42", {"a": 0.7, "b": 0.5}),
        ("pipeline_5b_style", "panda_dpm_dyncfg", {"c": 0.8}),
    ):
        short = style.split("_")[1]
        folder = os.path.join(refenv.GOLDEN, style)
        vae, tr, sched = refenv.load_components(folder)
        shapes = linear_shapes(tr)
        blocks = sorted({n.split(".")[1] for n in shapes if n.startswith("transformer_blocks.")}, key=int)
        gen = torch.Generator().manual_seed(2024 if short == "2b" else 2025)
        files = {}
        if short == "2b":
            # a: attention only, rank 4, no metadata (alpha = rank: scale 1).
            a = make_lora(shapes, [f"transformer_blocks.{b}.{p}" for b in blocks for p in ATTN], lambda n: 4, gen, std=0.15)
            save_with_diffusers(a, os.path.join(OUT, "2b_a.safetensors"))
            files["a"] = "2b_a.safetensors"
            # b: rank 2 with diffusers' adapter metadata: lora_alpha 4 (scale 2), one module's alpha by alpha_pattern,
            # feed-forward, adaptive norms and the output layers; overlaps a on to_q.
            b_targets = [f"transformer_blocks.{b}.{p}" for b in blocks for p in ("ff.net.0.proj", "ff.net.2", "norm1.linear", "attn1.to_q")]
            b_targets += ["proj_out", "norm_out.linear", "patch_embed.text_proj"]
            b = make_lora(shapes, b_targets, lambda n: 2, gen)
            meta_b = {"r": 2, "lora_alpha": 4, "alpha_pattern": {"transformer_blocks.1.ff.net.2": 1}, "rank_pattern": {},
                      "target_modules": sorted(b_targets), "use_dora": False, "lora_bias": False}
            save_with_diffusers(b, os.path.join(OUT, "2b_b_alpha.safetensors"), meta_b)
            files["b"] = "2b_b_alpha.safetensors"
            # old: the older key spelling, mixed ranks (2 and 4) without metadata: diffusers' rank_pattern path.
            old_targets = [f"transformer_blocks.{b}.{p}" for b in blocks for p in ("attn1.to_v", "attn1.to_out.0", "ff.net.2")]
            old = make_lora(shapes, old_targets, lambda n: 2 if n.endswith("to_out.0") else 4, gen, std=0.12)
            refenv.save_file(to_old_spelling(old), os.path.join(OUT, "2b_old_spelling.safetensors"))
            files["old"] = "2b_old_spelling.safetensors"
            runs = [("base", {}), ("a_1", {"a": 1.0}), ("a_0.7", {"a": 0.7}), ("b_1", {"b": 1.0}), ("old_1", {"old": 1.0}),
                    ("a_0.8+b_-0.5", {"a": 0.8, "b": -0.5}), ("a_1+b_1+old_0.6", {"a": 1.0, "b": 1.0, "old": 0.6})]
        else:
            # c: rank 4 with metadata use_rslora (scale lora_alpha / sqrt(r)) on attention, time embedding, proj_out.
            c_targets = [f"transformer_blocks.{b}.{p}" for b in blocks for p in ATTN]
            c_targets += ["time_embedding.linear_1", "proj_out"]
            c = make_lora(shapes, c_targets, lambda n: 4, gen, std=0.04)
            meta_c = {"r": 4, "lora_alpha": 6, "use_rslora": True, "target_modules": sorted(c_targets)}
            save_with_diffusers(c, os.path.join(OUT, "5b_c_rslora.safetensors"), meta_c)
            files["c"] = "5b_c_rslora.safetensors"
            # d: rank 2, no metadata, feed-forward and norms.
            d_targets = [f"transformer_blocks.{b}.{p}" for b in blocks for p in ("ff.net.0.proj", "ff.net.2", "norm2.linear")]
            d = make_lora(shapes, d_targets, lambda n: 2, gen)
            save_with_diffusers(d, os.path.join(OUT, "5b_d.safetensors"))
            files["d"] = "5b_d.safetensors"
            runs = [("base", {}), ("c_1", {"c": 1.0}), ("c_0.7", {"c": 0.7}), ("c_0.5+d_1.5", {"c": 0.5, "d": 1.5})]

        settings, ref, x, t, enc, rotary = transformer_inputs(style, tag)
        pipe = CogVideoXPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=tr, scheduler=sched)
        pipe.set_progress_bar_config(disable=True)
        tensors = {"hidden_states": x, "timestep": t, "encoder_hidden_states": enc}
        if rotary is not None:
            tensors["rotary_cos"], tensors["rotary_sin"] = rotary
        tensors["out_base"] = run_transformer(tr, x, t, enc, rotary)
        for name, file in files.items():
            pipe.load_lora_weights(os.path.join(OUT, file), adapter_name=name)
        for run, weights in runs[1:]:
            pipe.set_adapters(list(weights), list(weights.values()))
            tensors[f"out_{run}"] = run_transformer(tr, x, t, enc, rotary)
        # The scaling PEFT set up for each adapter on one layer (for the README: diffusers' alpha/rank handling).
        scalings = {}
        for mod_name, mod in tr.named_modules():
            if isinstance(mod, peft.tuners.lora.LoraLayer):
                pipe.set_adapters(list(files), [1.0] * len(files))
                scalings[mod_name] = {k: v for k, v in mod.scaling.items()}
        # A pipeline run with the adapters at their strengths (prompt embeddings of the golden run).
        pipe.set_adapters(list(pipe_adapters), list(pipe_adapters.values()))
        frames = pipe(prompt_embeds=ref["prompt_embeds"], negative_prompt_embeds=ref["negative_embeds"],
                      guidance_scale=settings["guidance"], num_inference_steps=settings["steps"], num_frames=settings["frames"],
                      height=settings["height"], width=settings["width"], use_dynamic_cfg=settings.get("dynamic_cfg", False),
                      generator=torch.Generator().manual_seed(settings["seed"]), output_type="pt").frames[0]
        tensors["pipeline_frames"] = frames
        refenv.save(tensors, os.path.join(OUT, f"transformer_{short}.safetensors"),
                    runs={r: w for r, w in runs}, files=files, pipeline={"golden_run": tag, "adapters": pipe_adapters})
        diffs = {r: (tensors[f"out_{r}"] - tensors["out_base"]).abs().max().item() for r, _ in runs[1:]}
        base_frames = refenv.golden_run(style, tag)[1]["frames"]
        manifest["styles"][short] = {
            "golden_run": tag, "files": files, "runs": {r: w for r, w in runs},
            "pipeline_adapters": pipe_adapters,
            "max_abs_out_base": tensors["out_base"].abs().max().item(),
            "max_change_from_base": diffs,
            "pipeline_frames_change_from_golden": (frames - base_frames).abs().max().item(),
            "scaling_per_layer": scalings,
        }

        if short == "2b":
            # What diffusers does with files it refuses (the C# side names the key and what to do instead).
            bad = {}
            alpha_file = os.path.join(OUT, "_alpha.safetensors")
            refenv.save_file({**{"transformer." + k: v for k, v in a.items()},
                              "transformer.transformer_blocks.0.attn1.to_q.alpha": torch.tensor(4.0)}, alpha_file)
            bad["alpha_tensor"] = diffusers_error(lambda: pipe.load_lora_weights(alpha_file, adapter_name="bad1"))
            shape_file = os.path.join(OUT, "_shape.safetensors")
            wrong = dict(a)
            wrong["transformer_blocks.0.attn1.to_q.lora_A.weight"] = torch.zeros(4, 96)
            save_with_diffusers(wrong, shape_file)
            bad["shape_mismatch"] = diffusers_error(lambda: pipe.load_lora_weights(shape_file, adapter_name="bad2"))
            unknown_file = os.path.join(OUT, "_unknown.safetensors")
            unknown = dict(a)
            unknown["transformer_blocks.0.attn1.to_z.lora_A.weight"] = torch.zeros(4, 128)
            unknown["transformer_blocks.0.attn1.to_z.lora_B.weight"] = torch.zeros(128, 4)
            save_with_diffusers(unknown, unknown_file)
            bad["unknown_module"] = diffusers_error(lambda: pipe.load_lora_weights(unknown_file, adapter_name="bad3"))
            for f in (alpha_file, shape_file, unknown_file):
                os.remove(f)
            manifest["diffusers_refusals"] = bad

    with open(os.path.join(OUT, "lora.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(json.dumps({s: {k: v for k, v in m.items() if k != "scaling_per_layer"} for s, m in manifest["styles"].items()}, indent=1))
    print(json.dumps(manifest.get("diffusers_refusals"), indent=1))


if __name__ == "__main__":
    main()
