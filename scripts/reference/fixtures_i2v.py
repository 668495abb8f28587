#!/usr/bin/env python3
"""Fixtures for image-to-video and video-to-video (issue 19): diffusers' CogVideoXImageToVideoPipeline and
CogVideoXVideoToVideoPipeline run on the CPU in float32 with tiny random-weight models in the published layout, every
intermediate recorded. Output: tests/fixtures/reference/i2v/ (README.md there says what each file holds).

    cd scripts/reference && REFERENCE_SRC=/work/main/.reference/src PYTHONPATH= /usr/bin/python3 fixtures_i2v.py

Deterministic: every random number comes from a seeded torch.Generator or numpy RandomState; the inputs (PNG, MP4)
are written by this script and stored with the fixtures. The MP4 is lossless RGB H.264 (libx264rgb, qp 0) and the
frames diffusers gets are read back from it with ffmpeg as rgb24, exactly as the C# VideoDecoder reads it.
"""
import hashlib
import json
import os
import shutil
import subprocess

import numpy as np
import refenv
import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import CogVideoXImageToVideoPipeline
from diffusers.pipelines.cogvideo.pipeline_cogvideox_video2video import CogVideoXVideoToVideoPipeline
from PIL import Image
from safetensors.torch import save_file

OUT = os.path.join(refenv.FIXTURES, "i2v")
I2V = os.path.join(OUT, "pipeline_5b_i2v_style")
INPUTS = os.path.join(OUT, "inputs")
RUNS = os.path.join(OUT, "runs")
G5 = os.path.join(refenv.GOLDEN, "pipeline_5b_style")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# 1. The tiny image-to-video model folder, in THUDM/CogVideoX-5b-I2V's layout.
# ---------------------------------------------------------------------------------------------------------------
def make_model():
    os.makedirs(os.path.join(I2V, "transformer"), exist_ok=True)
    # Components identical to the 5b style's (the published 5b-I2V repo has the same VAE, T5 and tokenizer as 5b).
    for sub in ("vae", "text_encoder", "tokenizer"):
        link = os.path.join(I2V, sub)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..", "..", "..", "golden", "pipeline_5b_style", sub), link)
    # The published 5b-I2V folder names CogVideoXDDIMScheduler like 5b; the 5b-style fixture swaps in DPM trailing as
    # THUDM's demo does, and so does this one (copied, not linked: it is part of this model's own files).
    os.makedirs(os.path.join(I2V, "scheduler"), exist_ok=True)
    shutil.copy(os.path.join(G5, "scheduler", "scheduler_config.json"), os.path.join(I2V, "scheduler", "scheduler_config.json"))
    index = json.load(open(os.path.join(G5, "model_index.json")))
    index["_class_name"] = "CogVideoXImageToVideoPipeline"
    json.dump(index, open(os.path.join(I2V, "model_index.json"), "w"), indent=2)

    config = json.load(open(os.path.join(G5, "transformer", "config.json")))
    latent = json.load(open(os.path.join(G5, "vae", "config.json")))["latent_channels"]
    # What the published CogVideoX-5b-I2V transformer config changes against 5b (diffusers'
    # scripts/convert_cogvideox_to_diffusers.py, --i2v): in_channels 2 × latent channels (video latents and image
    # latents concatenated), learned positional embeddings on top of the rotary ones, out_channels the latent channels.
    config.update(in_channels=2 * latent, out_channels=latent, use_learned_positional_embeddings=True)
    tr = CogVideoXTransformer3DModel.from_config(config).eval()
    base = refenv.load_file(os.path.join(G5, "transformer", "diffusion_pytorch_model.safetensors"))
    g = torch.Generator().manual_seed(1905)
    state = {}
    for name, value in tr.state_dict().items():
        if name in base and base[name].shape == value.shape:
            state[name] = base[name].clone()  # the 5b style's random weights
        elif name == "patch_embed.proj.weight":
            state[name] = torch.randn(value.shape, generator=g) * 0.3  # as the 5b style's proj (std 0.3)
        elif name == "patch_embed.pos_embedding":
            # Learned: the sincos table it was initialised from, moved by training (here: noise, also on the text rows,
            # which sincos leaves zero), so a port that recomputes sincos instead of reading it is caught.
            state[name] = (value + torch.randn(value.shape, generator=g) * 0.2).to(torch.float32)  # sincos is float64
        else:
            raise SystemExit(f"unexpected tensor {name} {tuple(value.shape)}")
    tr.load_state_dict(state)
    # Written directly (save_pretrained's sharding helper needs a newer PyTorch than Debian's): the config as the
    # published one is spelled, the weights as one safetensors file.
    save_file({k: v.contiguous() for k, v in state.items()},
              os.path.join(I2V, "transformer", "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    json.dump(config, open(os.path.join(I2V, "transformer", "config.json"), "w"), indent=2, sort_keys=True)


# ---------------------------------------------------------------------------------------------------------------
# 2. Inputs: images (PNG, RGBA PNG) and a lossless MP4, all seeded.
# ---------------------------------------------------------------------------------------------------------------
def pattern(rs, height, width, phase):
    """A smooth, structured RGB picture (gradients, rings, a little noise), uint8 [H, W, 3]."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 127.5 + 120 * np.sin(x / width * 5.0 + phase) * np.cos(y / height * 3.0)
    gch = 127.5 + 120 * np.cos(np.hypot(x - width / 2, y - height / 2) / 4.0 - phase)
    b = 255.0 * (x + y + 7 * phase) / (width + height + 40)
    img = np.stack([r, gch, b], axis=-1) + rs.normal(0, 12, size=(height, width, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_inputs():
    os.makedirs(INPUTS, exist_ok=True)
    rs = np.random.RandomState(19)
    Image.fromarray(pattern(rs, 50, 70, 0.3)).save(os.path.join(INPUTS, "image_50x70.png"))
    rgba = np.concatenate([pattern(rs, 24, 40, 1.1), rs.randint(0, 256, size=(24, 40, 1)).astype(np.uint8)], axis=-1)
    Image.fromarray(rgba, "RGBA").save(os.path.join(INPUTS, "image_rgba_24x40.png"))
    frames = [pattern(rs, 40, 56, 0.25 * i) for i in range(17)]
    for i, f in enumerate(frames):
        Image.fromarray(f).save(os.path.join(INPUTS, f"_frame{i:02d}.png"))
    mp4 = os.path.join(INPUTS, "video_17x40x56.mp4")
    subprocess.run(["ffmpeg", "-y", "-hide_banner", "-loglevel", "error", "-framerate", "8", "-i",
                    os.path.join(INPUTS, "_frame%02d.png"), "-c:v", "libx264rgb", "-qp", "0", "-preset", "veryslow",
                    "-pix_fmt", "rgb24", "-bitexact", "-map_metadata", "-1", mp4], check=True)
    for i in range(len(frames)):
        os.remove(os.path.join(INPUTS, f"_frame{i:02d}.png"))
    decoded = read_mp4(mp4)
    assert len(decoded) == 17 and all(np.array_equal(a, b) for a, b in zip(decoded, frames)), "the MP4 is not lossless"


def read_mp4(path):
    """The frames as the C# VideoDecoder reads them: ffmpeg, rawvideo rgb24."""
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                       "stream=width,height", "-of", "json", path], capture_output=True, check=True).stdout)
    w, h = probe["streams"][0]["width"], probe["streams"][0]["height"]
    raw = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", path, "-f", "rawvideo", "-pix_fmt",
                          "rgb24", "-"], capture_output=True, check=True).stdout
    n = len(raw) // (w * h * 3)
    return [np.frombuffer(raw[i * w * h * 3:(i + 1) * w * h * 3], dtype=np.uint8).reshape(h, w, 3) for i in range(n)]


# ---------------------------------------------------------------------------------------------------------------
# 3. PIL's Lanczos resize (what VaeImageProcessor.resize calls), on awkward sizes, up and down.
# ---------------------------------------------------------------------------------------------------------------
def make_resize_cases():
    rs = np.random.RandomState(7)
    src = pattern(rs, 37, 53, 0.7)
    Image.fromarray(src).save(os.path.join(INPUTS, "resize_source_37x53.png"))
    cases = {"source": torch.from_numpy(src.astype(np.float32))}
    for (h, w) in [(32, 48), (16, 16), (48, 80), (37, 24), (96, 32), (1, 7)]:
        out = np.array(Image.fromarray(src).resize((w, h), resample=Image.LANCZOS))
        cases[f"lanczos_{h}x{w}"] = torch.from_numpy(out.astype(np.float32))
    # The RGBA image as diffusers.utils.load_image gives it (convert("RGB") drops alpha) and the processor resizes it.
    rgba = Image.open(os.path.join(INPUTS, "image_rgba_24x40.png"))
    cases["rgba_as_rgb"] = torch.from_numpy(np.array(rgba.convert("RGB")).astype(np.float32))
    # A JPEG whose EXIF says "rotate 90° clockwise to display" (orientation 6), as phones write them: load_image
    # applies exif_transpose before convert("RGB"). Chroma subsampling off, so decoders agree to the last bit or two.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pattern(rs, 24, 40, 2.0)).save(os.path.join(INPUTS, "image_exif6_24x40.jpg"), quality=95,
                                                  subsampling=0, exif=exif)
    from PIL import ImageOps
    loaded = ImageOps.exif_transpose(Image.open(os.path.join(INPUTS, "image_exif6_24x40.jpg"))).convert("RGB")
    cases["jpeg_exif6_as_loaded"] = torch.from_numpy(np.array(loaded).astype(np.float32))
    refenv.save(cases, os.path.join(OUT, "resize_cases.safetensors"),
                note="uint8 pixel values stored as float32, [H, W, 3]; PIL " + Image.__version__)


# ---------------------------------------------------------------------------------------------------------------
# 4. Pipeline runs with every intermediate.
# ---------------------------------------------------------------------------------------------------------------
class Recorder:
    def __init__(self, pipe):
        self.t = {}
        self.step = 0
        self.encode_calls = 0
        tr, vae = pipe.transformer, pipe.vae

        orig_forward = tr.forward

        def forward(*a, **kwargs):  # PyTorch 1.13's forward hooks do not see keyword arguments
            output = orig_forward(*a, **kwargs)
            i = self.step
            self.t[f"transformer_in_step{i}"] = kwargs["hidden_states"].clone()
            self.t[f"timestep_step{i}"] = kwargs["timestep"].clone()
            self.t[f"transformer_out_step{i}"] = output[0].clone()
            return output

        tr.forward = forward
        orig_encode = vae.encode

        def encode(x, *a, **k):
            out = orig_encode(x, *a, **k)
            self.t["vae_encode_input"] = x.clone()
            self.t["encoder_mean"] = out.latent_dist.mean.clone()
            self.t["encoder_logvar"] = out.latent_dist.logvar.clone()
            self.encode_calls += 1
            return out

        vae.encode = encode
        orig_decode = vae.decode

        def decode(z, *a, **k):
            out = orig_decode(z, *a, **k)
            self.t["vae_input"] = z.clone()
            self.t["vae_decoded"] = out.sample.clone()
            return out

        vae.decode = decode

    def callback(self, pipe, i, t, kw):
        self.t[f"latents_after_step{i}"] = kw["latents"].clone()
        self.step = i + 1
        return {}


def run_i2v(pipe, tag, image_file, seed, steps, guidance, frames, dynamic_cfg, golden):
    settings, ref = refenv.golden_run(*golden)
    rec = Recorder(pipe)
    orig_prepare = pipe.prepare_latents

    def prepare(*a, **k):
        latents, image_latents = orig_prepare(*a, **k)
        rec.t["initial_latents"] = latents.clone()
        rec.t["image_latents"] = image_latents.clone()
        return latents, image_latents

    pipe.prepare_latents = prepare
    image = Image.open(os.path.join(INPUTS, image_file)).convert("RGB")  # diffusers.utils.load_image
    frames_out = pipe(image=image, prompt_embeds=ref["prompt_embeds"], negative_prompt_embeds=ref["negative_embeds"],
                      guidance_scale=guidance, num_inference_steps=steps, num_frames=frames, height=32, width=48,
                      use_dynamic_cfg=dynamic_cfg, generator=torch.Generator().manual_seed(seed), output_type="pt",
                      callback_on_step_end=rec.callback).frames[0]
    pipe.prepare_latents = orig_prepare
    t = rec.t
    t["timesteps"] = torch.tensor([int(t[k][0]) for k in sorted((k for k in t if k.startswith("timestep_step")),
                                                                 key=lambda k: int(k[len("timestep_step"):]))])
    t["frames"] = frames_out
    refenv.save(t, os.path.join(RUNS, tag + ".safetensors"))
    return dict(tag=tag, task="image-to-video", model="pipeline_5b_i2v_style", image=f"inputs/{image_file}",
                image_sha256=sha256(os.path.join(INPUTS, image_file)), prompt=settings["prompt"],
                negative_prompt=settings.get("negative_prompt"), prompt_from=f"golden {golden[0]}/{golden[1]}",
                seed=seed, steps=steps, guidance=guidance, frames=frames, height=32, width=48, dynamic_cfg=dynamic_cfg,
                scheduler=type(pipe.scheduler).__name__, tensors=sorted(t))


def run_v2v(pipe, style, tag, video_frames, seed, steps, strength, guidance, dynamic_cfg, golden):
    settings, ref = refenv.golden_run(*golden)
    rec = Recorder(pipe)
    orig_prepare = pipe.prepare_latents

    def prepare(*a, **k):
        latents = orig_prepare(*a, **k)
        rec.t["initial_latents"] = latents.clone()
        return latents

    pipe.prepare_latents = prepare
    mp4 = os.path.join(INPUTS, "video_17x40x56.mp4")
    video = [Image.fromarray(f) for f in read_mp4(mp4)[:video_frames]]
    # All timesteps of the uncut schedule, to show the cut.
    pipe.scheduler.set_timesteps(steps)
    full = pipe.scheduler.timesteps.clone()
    frames_out = pipe(video=video, prompt_embeds=ref["prompt_embeds"], negative_prompt_embeds=ref["negative_embeds"],
                      guidance_scale=guidance, num_inference_steps=steps, strength=strength, height=32, width=48,
                      use_dynamic_cfg=dynamic_cfg, generator=torch.Generator().manual_seed(seed), output_type="pt",
                      callback_on_step_end=rec.callback).frames[0]
    pipe.prepare_latents = orig_prepare
    t = rec.t
    t["timesteps_full"] = full
    t["timesteps"] = torch.tensor([int(t[k][0]) for k in sorted((k for k in t if k.startswith("timestep_step")),
                                                                 key=lambda k: int(k[len("timestep_step"):]))])
    t["frames"] = frames_out
    refenv.save(t, os.path.join(RUNS, tag + ".safetensors"))
    return dict(tag=tag, task="video-to-video", model=style, video="inputs/video_17x40x56.mp4",
                video_sha256=sha256(mp4), video_frames_used=video_frames, prompt=settings["prompt"],
                negative_prompt=settings.get("negative_prompt"), prompt_from=f"golden {golden[0]}/{golden[1]}",
                seed=seed, steps=steps, strength=strength, guidance=guidance, frames=video_frames, height=32, width=48,
                dynamic_cfg=dynamic_cfg, scheduler=type(pipe.scheduler).__name__, tensors=sorted(t))


def main():
    make_model()
    make_inputs()
    make_resize_cases()
    os.makedirs(RUNS, exist_ok=True)
    runs = []

    vae, tr, sched = refenv.load_components(I2V)
    pipe = CogVideoXImageToVideoPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=tr, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    # 9 frames = the config's sample_frames: the learned table is used as stored.
    runs.append(run_i2v(pipe, "i2v_cfg_dyn", "image_50x70.png", 42, 4, 6.0, 9, True, ("pipeline_5b_style", "panda_dpm_dyncfg")))
    # 13 frames, no guidance: diffusers recomputes the sincos table for 4 latent frames; RGBA input (alpha dropped).
    runs.append(run_i2v(pipe, "i2v_gs1_frames13", "image_rgba_24x40.png", 7, 3, 1.0, 13, False, ("pipeline_5b_style", "whale_dpm_frames13")))
    # 5 frames (2 latent frames), guidance without dynamic CFG, upscaled input.
    runs.append(run_i2v(pipe, "i2v_cfg_frames5", "image_rgba_24x40.png", 1234, 3, 4.5, 5, False, ("pipeline_5b_style", "whale_dpm_frames13")))

    for style, specs in (
        ("pipeline_2b_style", [("v2v_2b_s08", 9, 42, 5, 0.8, 6.0, False, ("pipeline_2b_style", "panda_s42")),
                               ("v2v_2b_s1_gs1", 9, 3, 3, 1.0, 1.0, False, ("pipeline_2b_style", "panda_frames17_gs1"))]),
        ("pipeline_5b_style", [("v2v_5b_s05", 17, 11, 6, 0.5, 6.0, True, ("pipeline_5b_style", "panda_dpm_dyncfg")),
                               ("v2v_5b_s03_f13", 13, 5, 7, 0.3, 3.0, False, ("pipeline_5b_style", "whale_dpm_frames13"))]),
    ):
        vae, tr, sched = refenv.load_components(os.path.join(refenv.GOLDEN, style))
        pipe = CogVideoXVideoToVideoPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=tr, scheduler=sched)
        pipe.set_progress_bar_config(disable=True)
        for spec in specs:
            runs.append(run_v2v(pipe, style, *spec))

    json.dump(runs, open(os.path.join(RUNS, "runs.json"), "w"), indent=1)
    json.dump(refenv.provenance(), open(os.path.join(OUT, "provenance.json"), "w"), indent=1)
    for r in runs:
        print(r["tag"], "timesteps", r["tensors"].count("timesteps"), "->", r["task"])


if __name__ == "__main__":
    main()
