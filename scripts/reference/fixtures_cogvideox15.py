#!/usr/bin/env python3
"""CogVideoX 1.5 fixtures (issue 20), made by diffusers itself on a CPU in float32.

    cd scripts/reference && REFERENCE_SRC=/work/main/.reference/src PYTHONPATH= /usr/bin/python3 fixtures_cogvideox15.py

Writes tests/fixtures/reference/cogvideox15/:
  pipeline_15_style/      tiny model folder in the layout of THUDM/CogVideoX1.5-5B (text-to-video) + runs/
  pipeline_15_i2v_style/  tiny model folder in the layout of THUDM/CogVideoX1.5-5B-I2V + runs/ (a transformer call
                          with the ofs embedding, and one whole image-to-video pipeline run)
The text encoder and tokenizer are symlinks to the golden 5b-style ones (THUDM's 1.5 repos ship the same T5), the VAE
weights a symlink to the golden 5b-style VAE (same architecture; the 1.5 config differs in scaling_factor and
invert_scale_latents). Runs start from the prompt embeddings of golden runs, so the C# side runs from the same
prompt text through its own T5. See the README written next to the files.
"""
import json
import math
import os
import shutil

import refenv
import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler, CogVideoXTransformer3DModel
from diffusers.pipelines.cogvideo.pipeline_cogvideox import CogVideoXPipeline
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import CogVideoXImageToVideoPipeline

OUT = os.path.join(refenv.FIXTURES, "cogvideox15")
GOLDEN_5B = os.path.join(refenv.GOLDEN, "pipeline_5b_style")

# The published 1.5 transformer (scripts/convert_cogvideox_to_diffusers.py --version 1.5, 5B settings) scaled down:
# 2 heads × 64, 2 layers, 4 latent channels, T5 d_model 64. sample_height/width 300 (latent pixels) become 16: the
# rotary "slice" grid then holds 8×8 patches; sample_frames 81 becomes 17.
TRANSFORMER = dict(
    num_attention_heads=2, attention_head_dim=64, in_channels=4, out_channels=4, flip_sin_to_cos=True, freq_shift=0,
    time_embed_dim=32, ofs_embed_dim=None, text_embed_dim=64, num_layers=2, dropout=0.0, attention_bias=True,
    sample_width=16, sample_height=16, sample_frames=17, patch_size=2, patch_size_t=2, temporal_compression_ratio=4,
    max_text_seq_length=226, activation_fn="gelu-approximate", timestep_activation_fn="silu",
    norm_elementwise_affine=True, norm_eps=1e-5, spatial_interpolation_scale=1.875, temporal_interpolation_scale=1.0,
    use_rotary_positional_embeddings=True, use_learned_positional_embeddings=False, patch_bias=False)
# I2V: the image latents are concatenated on the channel axis (in_channels doubled), and the ofs embedding (512 =
# time_embed_dim in the published model; here 32).
TRANSFORMER_I2V = dict(TRANSFORMER, in_channels=8, ofs_embed_dim=32)

SCHEDULER = {
    "_class_name": "CogVideoXDPMScheduler", "_diffusers_version": "0.40.0.dev0", "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False, "clip_sample_range": 1.0,
    "num_train_timesteps": 1000, "prediction_type": "v_prediction", "rescale_betas_zero_snr": True,
    "sample_max_value": 1.0, "set_alpha_to_one": True, "snr_shift_scale": 1.0, "steps_offset": 0,
    "timestep_spacing": "trailing", "trained_betas": None}


def init_weights(model, seed):
    """As the golden tiny models: linear/conv weights N(0, 0.6/√fan_in) (the patch projection 1.2/√fan_in), biases
    N(0, 0.06), norm weights 1 + N(0, 0.3), norm biases N(0, 0.06) — activations stay O(1)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if "norm" in name and name.endswith("weight") and p.ndim == 1:
            p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
        elif p.ndim == 1:
            p.copy_(0.06 * torch.randn(p.shape, generator=g))
        else:
            fan_in = p[0].numel()
            scale = 1.2 if name.startswith("patch_embed.proj") else 0.6
            p.copy_(scale / math.sqrt(fan_in) * torch.randn(p.shape, generator=g))


def write_folder(folder, pipeline_class, transformer_kwargs, seed):
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    index = {
        "_class_name": pipeline_class, "_diffusers_version": "0.40.0.dev0",
        "scheduler": ["diffusers", "CogVideoXDPMScheduler"], "text_encoder": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "T5Tokenizer"], "transformer": ["diffusers", "CogVideoXTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLCogVideoX"]}
    json.dump(index, open(os.path.join(folder, "model_index.json"), "w"), indent=1)
    os.makedirs(os.path.join(folder, "scheduler"))
    json.dump(SCHEDULER, open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w"), indent=2)
    # T5 as published with the 1.0 models: symlinks (relative to the folder they are in).
    for component in ("text_encoder", "tokenizer"):
        os.symlink(os.path.join("..", "..", "..", "golden", "pipeline_5b_style", component),
                   os.path.join(folder, component))
    # VAE: the golden 5b-style weights, with 1.5's config keys (invert_scale_latents, scaling_factor 0.7).
    os.makedirs(os.path.join(folder, "vae"))
    vae_config = json.load(open(os.path.join(GOLDEN_5B, "vae", "config.json")))
    vae_config.update(scaling_factor=0.7, invert_scale_latents=True)
    json.dump(vae_config, open(os.path.join(folder, "vae", "config.json"), "w"), indent=2)
    os.symlink(os.path.join("..", "..", "..", "..", "golden", "pipeline_5b_style", "vae", "diffusion_pytorch_model.safetensors"),
               os.path.join(folder, "vae", "diffusion_pytorch_model.safetensors"))
    transformer = CogVideoXTransformer3DModel(**transformer_kwargs).eval()
    init_weights(transformer, seed)
    # save_pretrained's shard splitting needs PyTorch >= 2: the config and one safetensors file, as it writes them.
    transformer.save_config(os.path.join(folder, "transformer"))
    refenv.save(transformer.state_dict(), os.path.join(folder, "transformer", "diffusion_pytorch_model.safetensors"))
    return refenv.load_components(folder)


class Recorder:
    """Wraps the transformer and the VAE's decode to store every call's inputs and outputs."""

    def __init__(self, pipe):
        self.tensors = {}
        self.step = 0
        tr, vae = pipe.transformer, pipe.vae
        forward, decode = tr.forward, vae.decode

        def tr_forward(hidden_states, encoder_hidden_states, timestep, **kw):
            out = forward(hidden_states, encoder_hidden_states, timestep, **kw)
            i = self.step
            self.tensors[f"transformer_in_step{i}"] = hidden_states.clone()
            self.tensors[f"timestep_step{i}"] = timestep.clone()
            self.tensors[f"transformer_out_step{i}"] = out[0].clone()
            if kw.get("ofs") is not None:
                self.tensors["ofs"] = kw["ofs"].clone()
            rotary = kw.get("image_rotary_emb")
            if rotary is not None and "rotary_cos" not in self.tensors:
                self.tensors["rotary_cos"], self.tensors["rotary_sin"] = rotary[0].clone(), rotary[1].clone()
            self.step += 1
            return out

        def vae_decode(z, *a, **kw):
            self.tensors["vae_input"] = z.clone()
            out = decode(z, *a, **kw)
            self.tensors["vae_decoded"] = out.sample.clone()
            return out

        tr.forward, vae.decode = tr_forward, vae_decode

    def on_step_end(self, pipe, i, t, kw):
        self.tensors[f"latents_after_step{i}"] = kw["latents"].clone()
        return {}


def run(pipe, settings, ref, extra=None):
    rec = Recorder(pipe)
    generator = torch.Generator().manual_seed(settings["seed"])
    # The generator's first draw (after the image's encoder sample for I2V) is the initial latents: recorded by
    # replaying the same draws on a fresh generator below.
    kwargs = dict(prompt_embeds=ref["prompt_embeds"], negative_prompt_embeds=ref["negative_embeds"],
                  guidance_scale=settings["guidance"], num_inference_steps=settings["steps"],
                  num_frames=settings["frames"], height=settings["height"], width=settings["width"],
                  use_dynamic_cfg=settings.get("dynamic_cfg", False), generator=generator, output_type="pt",
                  callback_on_step_end=rec.on_step_end, **(extra or {}))
    frames = pipe(**kwargs).frames[0]
    rec.tensors["frames"] = frames
    rec.tensors["timesteps"] = pipe.scheduler.timesteps.clone()
    rec.tensors["prompt_embeds"] = ref["prompt_embeds"]
    rec.tensors["negative_embeds"] = ref["negative_embeds"]
    return rec.tensors


def t2v():
    folder = os.path.join(OUT, "pipeline_15_style")
    vae, tr, sched = write_folder(folder, "CogVideoXPipeline", TRANSFORMER, seed=1500)
    pipe = CogVideoXPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=tr, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    runs = []
    # panda: 17 frames → 5 latent frames, odd → one frame of padding (6), trimmed from the front before decoding.
    # whale: 13 frames → 4 latent frames, even → no padding; the VAE returns 16 frames (as for 1.0); portrait 48×32.
    # gs1: guidance 1 (no CFG), 9 frames → 3 latent frames (padded to 4), landscape 32×64.
    plans = [
        ("panda_dpm_dyncfg", dict(tag="panda15_f17_dyncfg", seed=42, steps=4, guidance=6.0, frames=17, height=32,
                                  width=48, dynamic_cfg=True)),
        ("whale_dpm_frames13", dict(tag="whale15_f13", seed=7, steps=3, guidance=6.0, frames=13, height=48,
                                    width=32)),
        ("panda_dpm_dyncfg", dict(tag="panda15_f9_gs1", seed=3, steps=2, guidance=1.0, frames=9, height=32,
                                  width=64)),
    ]
    for golden_tag, settings in plans:
        golden, ref = refenv.golden_run("pipeline_5b_style", golden_tag)
        settings = dict(prompt=golden["prompt"], **settings)
        if "negative_prompt" in golden:
            settings["negative_prompt"] = golden["negative_prompt"]
        tensors = run(pipe, settings, ref)
        latent_frames = (settings["frames"] - 1) // 4 + 1
        padded = latent_frames + latent_frames % 2
        shape = (1, padded, 4, settings["height"] // 8, settings["width"] // 8)
        tensors["initial_latents"] = torch.randn(shape, generator=torch.Generator().manual_seed(settings["seed"]))
        assert torch.equal(tensors["initial_latents"], tensors["transformer_in_step0"][-1:]), "initial latents"
        if settings["guidance"] <= 1:
            tensors.pop("negative_embeds")
        settings["latent_frames"] = latent_frames
        settings["padded_latent_frames"] = padded
        settings["tensors"] = {k: list(v.shape) for k, v in tensors.items()}
        refenv.save(tensors, os.path.join(folder, "runs", settings["tag"] + ".safetensors"), settings=settings)
        runs.append(settings)
        print(settings["tag"], "frames", tuple(tensors["frames"].shape), "latents", shape)
    json.dump(runs, open(os.path.join(folder, "runs", "runs.json"), "w"), indent=1)


def i2v():
    folder = os.path.join(OUT, "pipeline_15_i2v_style")
    vae, tr, sched = write_folder(folder, "CogVideoXImageToVideoPipeline", TRANSFORMER_I2V, seed=1501)
    golden, ref = refenv.golden_run("pipeline_5b_style", "panda_dpm_dyncfg")
    runs = []

    # 1. One transformer call with the ofs embedding: [uncond; cond] latents (4 channels noise + 4 image latents),
    # 5 latent frames padded to 6, a 32×48 video (4×6 latents), timestep 999 and 501, ofs 2.0 as the pipeline passes.
    g = torch.Generator().manual_seed(15)
    hidden = torch.randn((2, 6, 8, 4, 6), generator=g)
    text = torch.cat([ref["negative_embeds"], ref["prompt_embeds"]])
    timestep = torch.tensor([999, 501])
    ofs = torch.full((1,), 2.0)
    pipe = CogVideoXImageToVideoPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=tr, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    cos, sin = pipe._prepare_rotary_positional_embeddings(32, 48, 6, torch.device("cpu"))
    out = tr(hidden_states=hidden, encoder_hidden_states=text, timestep=timestep, ofs=ofs,
             image_rotary_emb=(cos, sin), return_dict=False)[0]
    out_no_ofs_path = tr.ofs_embedding
    tensors = dict(hidden_states=hidden, encoder_hidden_states=text, timestep=timestep, ofs=ofs, rotary_cos=cos,
                   rotary_sin=sin, output=out)
    refenv.save(tensors, os.path.join(folder, "runs", "transformer_call.safetensors"),
                settings={"tag": "transformer_call", "height": 32, "width": 48})
    assert out_no_ofs_path is not None
    print("transformer_call", tuple(out.shape))

    # 2. A whole image-to-video run (17 frames, 32×48, DPM + dynamic CFG) from a synthetic 32×48 image: the VAE
    # encoder's sample draws from the generator first, then the latents.
    from PIL import Image

    h, w = 32, 48
    pixels = bytearray()
    for y in range(h):
        for x in range(w):
            pixels += bytes(((x * 255) // (w - 1), (y * 255) // (h - 1), ((x + y) * 7) % 256))
    image = Image.frombytes("RGB", (w, h), bytes(pixels))
    image.save(os.path.join(folder, "runs", "image.png"))
    settings = dict(tag="panda15_i2v_f17", prompt=golden["prompt"], seed=42, steps=3, guidance=6.0, frames=17,
                    height=h, width=w, dynamic_cfg=True, image="image.png")
    tensors = run(pipe, settings, ref, extra=dict(image=image))
    tensors["image"] = pipe.video_processor.preprocess(image, height=h, width=w)
    settings["tensors"] = {k: list(v.shape) for k, v in tensors.items()}
    refenv.save(tensors, os.path.join(folder, "runs", settings["tag"] + ".safetensors"), settings=settings)
    runs.append(settings)
    print(settings["tag"], "frames", tuple(tensors["frames"].shape))
    json.dump(runs, open(os.path.join(folder, "runs", "runs.json"), "w"), indent=1)


def real_configs():
    """tests/fixtures/golden/real_configs/CogVideoX1.5-5B[-I2V]: the published models' configs as diffusers writes them
    from THUDM's conversion settings (SOURCES.md in each folder says where every value comes from)."""
    import sys

    for name, i2v_model in (("CogVideoX1.5-5B", False), ("CogVideoX1.5-5B-I2V", True)):
        folder = os.path.join(refenv.GOLDEN, "real_configs", name)
        # SOURCES.md (written by hand: where each value comes from) stays; the configs are rewritten.
        for component in ("transformer", "vae", "scheduler", "text_encoder"):
            if os.path.isdir(os.path.join(folder, component)):
                shutil.rmtree(os.path.join(folder, component))
        os.makedirs(folder, exist_ok=True)
        # convert_cogvideox_to_diffusers.py: get_transformer_init_kwargs("1.5") and convert_transformer(); the 5B
        # settings of its --num_layers/--num_attention_heads/--use_rotary_positional_embeddings help texts.
        kwargs = dict(patch_size=2, patch_size_t=2, patch_bias=False, sample_height=300, sample_width=300,
                      sample_frames=81, num_layers=42, num_attention_heads=48, use_rotary_positional_embeddings=True,
                      in_channels=32 if i2v_model else 16, ofs_embed_dim=512 if i2v_model else None,
                      use_learned_positional_embeddings=False)
        CogVideoXTransformer3DModel.from_config(kwargs).save_config(os.path.join(folder, "transformer"))
        # convert_vae(version="1.5"): scaling_factor (--scaling_factor, 0.7 for the 5B models) and invert_scale_latents.
        AutoencoderKLCogVideoX.from_config(dict(scaling_factor=0.7, invert_scale_latents=True)).save_config(
            os.path.join(folder, "vae"))
        # The scheduler the conversion writes (CogVideoXDDIMScheduler, snr_shift_scale 1.0 for 5B, trailing).
        from diffusers import CogVideoXDDIMScheduler

        CogVideoXDDIMScheduler.from_config(dict(
            snr_shift_scale=1.0, beta_end=0.012, beta_schedule="scaled_linear", beta_start=0.00085, clip_sample=False,
            num_train_timesteps=1000, prediction_type="v_prediction", rescale_betas_zero_snr=True, set_alpha_to_one=True,
            timestep_spacing="trailing")).save_config(os.path.join(folder, "scheduler"))
        # T5-XXL (google/t5-v1_1-xxl), the same as the 1.0 models'.
        shutil.copytree(os.path.join(refenv.GOLDEN, "real_configs", "CogVideoX-5b", "text_encoder"),
                        os.path.join(folder, "text_encoder"))
        index = json.load(open(os.path.join(refenv.GOLDEN, "real_configs", "CogVideoX-5b", "model_index.json")))
        index["_class_name"] = "CogVideoXImageToVideoPipeline" if i2v_model else "CogVideoXPipeline"
        json.dump(index, open(os.path.join(folder, "model_index.json"), "w"), indent=1)
        print("wrote", folder, file=sys.stderr)


def vae_columns():
    """The 1.5 tiny VAE decoding in full-height column tiles (the C# VaeTiling.Columns(48, 96, 2, overlapLatent=2)):
    tiles of 64x64 pixels (8 latent rows: int(8 * 5/6) = 6 covers the 6 latent rows, so one row of tiles; enable_tiling
    takes an overlap factor of 0 as "not given", hence the taller tile with the default 1/6), width overlap 2/8 ->
    stride 6 latent pixels, blended over 16 pixels, 2 columns."""
    folder = os.path.join(OUT, "pipeline_15_style")
    vae = AutoencoderKLCogVideoX.from_pretrained(folder, subfolder="vae", low_cpu_mem_usage=False).eval()
    z = torch.randn((1, 4, 3, 6, 12), generator=torch.Generator().manual_seed(150))
    untiled = vae.decode(z).sample
    vae.enable_tiling(tile_sample_min_height=64, tile_sample_min_width=64, tile_overlap_factor_height=1 / 6,
                      tile_overlap_factor_width=2 / 8)
    tiled = vae.decode(z).sample
    refenv.save(dict(z=z, decoded_columns=tiled, decoded_untiled=untiled), os.path.join(OUT, "vae_column_tiles.safetensors"),
                settings={"tile_sample_min_height": 64, "tile_sample_min_width": 64, "tile_overlap_factor_height": 1 / 6,
                          "tile_overlap_factor_width": 2 / 8})
    print("vae_column_tiles", tuple(tiled.shape), "max |tiled - untiled|", (tiled - untiled).abs().max().item())


if __name__ == "__main__":
    torch.manual_seed(0)
    real_configs()
    t2v()
    i2v()
    vae_columns()
    json.dump(refenv.provenance(), open(os.path.join(OUT, "provenance.json"), "w"), indent=1)
