#!/usr/bin/env python3
"""The reference figures, measured on the GPU machine itself: diffusers (eager, default attention) on the same GPU as
our `bench`, full-size CogVideoX models with random weights from tests/fixtures/golden/real_configs, 49 frames
480x720, guidance 6 (CFG batch 2). ENGINEERING.md §5 has the same measurements from an H100; run this where the GPU
differs so that ratios compare like with like.

    PYTHONPATH=<diffusers>/src python3 scripts/reference/diffusers_bench.py [stage ...]

Stages: attention step2b step5b step5b-i2v vae vae_encode t5 pipeline offload lora2b lora5b step15 step15i2v vae15 fbcache
(default: all but offload, fbcache, the lora stages, which need peft importable — installed, or its source on PYTHONPATH —,
and the 1.5 stages). The C# side
of vae_encode is `bench encode --model-config 5b` (a bf16 pipeline, whose VAE encodes in f16 there: same bytes per
value). step5b-i2v is the CogVideoX-5b-I2V
transformer (in_channels 32, learned positional table besides the rotary positions; configs derived in
real_configs/CogVideoX-5b-I2V/PROVENANCE.md), the match of `cogvideox bench transformer-i2v`.
The 1.5 stages run CogVideoX1.5-5B (real_configs/CogVideoX1.5-5B[-I2V]) at THUDM's size, 81 frames 768x1360:
the transformer step in BF16 with CFG on the 22 padded latent frames (the I2V one with 32 input channels and ofs 2.0),
and the VAE decode of the 21 trimmed latent frames (BF16 as diffusers runs 1.5; untiled, then tiled). fbcache is
the pipeline with diffusers' First Block Cache (threshold FBCACHE_THRESHOLD, default 0.05); with random weights it
measures the hook's overhead and the time of what it reuses, not a real checkpoint's reuse (docs/fast-modes.md);
compare with `cogvideox bench pipeline --memory full --cache fbcache --cache-threshold X`. Each prints one line:
    diffusers <stage> <seconds> s  peak <GiB> GiB  [<repetitions>]  <what>
Speed does not depend on the weights' values, so random initialisation (on the GPU, for speed) is enough.
"""
import json
import os
import sys
import time

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CONFIGS = os.path.join(ROOT, "tests", "fixtures", "golden", "real_configs")
TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "golden", "pipeline_2b_style", "tokenizer")
GIB = 1024.0**3
FRAMES, HEIGHT, WIDTH, GUIDANCE = 49, 480, 720, 6.0
LATENT_FRAMES, LATENT_H, LATENT_W = (FRAMES - 1) // 4 + 1, HEIGHT // 8, WIDTH // 8


def config(model, component):
    with open(os.path.join(CONFIGS, model, component, "config.json")) as f:
        return {k: v for k, v in json.load(f).items() if not k.startswith("_")}


def timed(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1000.0)
    return sorted(times)[len(times) // 2], times


def report(stage, seconds, times, what):
    peak = torch.cuda.max_memory_allocated() / GIB
    reps = " ".join(f"{t:.3f}" for t in times)
    print(f"diffusers {stage:<12} {seconds:8.3f} s  peak {peak:6.2f} GiB  [{reps}]  {what}", flush=True)


def fresh():
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def transformer(model, dtype):
    from diffusers import CogVideoXTransformer3DModel

    with torch.device("cuda"):
        t = CogVideoXTransformer3DModel.from_config(config(model, "transformer"))
    return t.to(dtype).eval()


def rotary(t):
    """The pipeline's 3D rotary tables for a 5b-style transformer (None for sincos models)."""
    if not t.config.use_rotary_positional_embeddings:
        return None
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

    patch = t.config.patch_size
    grid_h, grid_w = LATENT_H // patch, LATENT_W // patch
    crops = get_resize_crop_region_for_grid((grid_h, grid_w), t.config.sample_width // patch,
                                            t.config.sample_height // patch)
    cos, sin = get_3d_rotary_pos_embed(
        embed_dim=t.config.attention_head_dim,
        crops_coords=crops,
        grid_size=(grid_h, grid_w),
        temporal_size=LATENT_FRAMES,
        device="cuda",
    )
    return cos, sin


FRAMES15, HEIGHT15, WIDTH15 = 81, 768, 1360


def rotary15(t, latent_frames, latent_h, latent_w):
    """The 1.5 pipeline's rotary tables: grid_type "slice" over the patched grid (frames in temporal patches)."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    p, p_t = t.config.patch_size, t.config.patch_size_t
    return get_3d_rotary_pos_embed(
        embed_dim=t.config.attention_head_dim, crops_coords=None, grid_size=(latent_h // p, latent_w // p),
        temporal_size=(latent_frames + p_t - 1) // p_t, grid_type="slice",
        max_size=(t.config.sample_height // p, t.config.sample_width // p), device="cuda")


def step15(model, repeats):
    """One CogVideoX 1.5 transformer call with CFG at 81 frames 768x1360: 21 latent frames padded to 22."""
    fresh()
    dtype = torch.bfloat16
    t = transformer(model, dtype)
    latent_frames = (FRAMES15 - 1) // 4 + 1
    latent_frames += latent_frames % t.config.patch_size_t
    lh, lw = HEIGHT15 // 8, WIDTH15 // 8
    latents = torch.randn(2, latent_frames, t.config.in_channels, lh, lw, device="cuda", dtype=dtype)
    text = torch.randn(2, 226, t.config.text_embed_dim, device="cuda", dtype=dtype)
    timestep = torch.tensor([999, 999], device="cuda")
    ofs = torch.full((1,), 2.0, device="cuda", dtype=dtype) if t.config.ofs_embed_dim else None
    rope = rotary15(t, latent_frames, lh, lw)
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        fn = lambda: t(hidden_states=latents, encoder_hidden_states=text, timestep=timestep, ofs=ofs,
                       image_rotary_emb=rope, return_dict=False)
        seconds, times = timed(fn, repeats)
    tokens = latent_frames // t.config.patch_size_t * (lh // 2) * (lw // 2)
    report("step15" + ("i2v" if ofs is not None else ""), seconds, times,
           f"{model} transformer {dtype}, CFG batch 2, latents {latent_frames}x{lh}x{lw}, {tokens} video + 226 text tokens")
    del t


def vae15(repeats):
    """The CogVideoX 1.5 VAE decode: 21 latent frames -> 81 frames 768x1360, BF16, untiled then tiled."""
    fresh()
    from diffusers import AutoencoderKLCogVideoX

    with torch.device("cuda"):
        v = AutoencoderKLCogVideoX.from_config(config("CogVideoX1.5-5B", "vae"))
    v = v.to(torch.bfloat16).eval()
    lf, lh, lw = (FRAMES15 - 1) // 4 + 1, HEIGHT15 // 8, WIDTH15 // 8
    z = torch.randn(1, 16, lf, lh, lw, device="cuda", dtype=torch.bfloat16)
    what = f"1.5 VAE decode BF16, {lf} latent frames -> {FRAMES15} frames {HEIGHT15}x{WIDTH15}"
    torch.cuda.reset_peak_memory_stats()
    try:
        with torch.no_grad():
            seconds, times = timed(lambda: v.decode(z).sample, repeats)
        report("vae15", seconds, times, what)
    except torch.cuda.OutOfMemoryError as e:  # the reported ~68 GB may not fit beside the rest
        print(f"diffusers vae15 out of memory: {str(e)[:200]}", flush=True)
    torch.cuda.empty_cache()
    v.enable_tiling()
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        seconds, times = timed(lambda: v.decode(z).sample, repeats)
    report("vae15-tiled", seconds, times, what + ", tiling on (default tiles)")
    del v


def step(model, dtype, repeats):
    fresh()
    t = transformer(model, dtype)
    latents = torch.randn(2, LATENT_FRAMES, t.config.in_channels, LATENT_H, LATENT_W, device="cuda", dtype=dtype)
    text = torch.randn(2, 226, t.config.text_embed_dim, device="cuda", dtype=dtype)
    timestep = torch.tensor([999, 999], device="cuda")
    rope = rotary(t)
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        fn = lambda: t(hidden_states=latents, encoder_hidden_states=text, timestep=timestep,
                       image_rotary_emb=rope, return_dict=False)
        seconds, times = timed(fn, repeats)
    report(f"step-{model[10:]}", seconds, times, f"{model} transformer {dtype}, CFG batch 2, latents "
           f"{LATENT_FRAMES}x{LATENT_H}x{LATENT_W}")
    del t


def lora(model, dtype, repeats, rank=64):
    """Step time with random rank-64 LoRA adapters on every block's attention (to_q/to_k/to_v/to_out.0), loaded with
    diffusers' load_lora_adapter (PEFT must import: installed, or its source on PYTHONPATH): none, one and two adapters
    unfused (PEFT's run-time path), then fused with fuse_lora; and the load + fuse time. The C# side: `bench lora`."""
    fresh()
    t = transformer(model, dtype)
    latents = torch.randn(2, LATENT_FRAMES, t.config.in_channels, LATENT_H, LATENT_W, device="cuda", dtype=dtype)
    text = torch.randn(2, 226, t.config.text_embed_dim, device="cuda", dtype=dtype)
    timestep = torch.tensor([999, 999], device="cuda")
    rope = rotary(t)
    fn = lambda: t(hidden_states=latents, encoder_hidden_states=text, timestep=timestep, image_rotary_emb=rope, return_dict=False)
    gen = torch.Generator().manual_seed(0)

    def adapter():
        sd = {}
        for name, m in t.named_modules():
            if isinstance(m, torch.nn.Linear) and name.startswith("transformer_blocks.") and name.split(".", 2)[2] in (
                    "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0"):
                sd[f"{name}.lora_A.weight"] = (torch.randn(rank, m.in_features, generator=gen) * 0.02).to(dtype)
                sd[f"{name}.lora_B.weight"] = (torch.randn(m.out_features, rank, generator=gen) * 0.02).to(dtype)
        return sd

    tag = f"lora-{model[10:]}"
    with torch.no_grad():
        seconds, times = timed(fn, repeats)
        report(tag + "-none", seconds, times, f"{model} transformer {dtype}, CFG batch 2, no LoRA")
        for n, name in ((1, "a"), (2, "b")):
            sd = adapter()
            torch.cuda.synchronize()
            start = time.perf_counter()
            t.load_lora_adapter(sd, prefix=None, adapter_name=name)
            torch.cuda.synchronize()
            load = time.perf_counter() - start
            t.set_adapters(["a", "b"][:n], [0.8] * n)
            seconds, times = timed(fn, repeats)
            report(f"{tag}-{n}", seconds, times, f"{n} adapter(s) rank {rank} unfused (PEFT at run time); load_lora_adapter {load:.3f} s")
        torch.cuda.synchronize()
        start = time.perf_counter()
        t.fuse_lora(lora_scale=1.0, adapter_names=["a", "b"])
        torch.cuda.synchronize()
        fuse = time.perf_counter() - start
        seconds, times = timed(fn, repeats)
        report(f"{tag}-2fused", seconds, times, f"2 adapters fused (fuse_lora {fuse:.3f} s)")
    del t


def attention(repeats):
    fresh()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = (torch.randn(2, 30, 17776, 64, device="cuda", dtype=torch.float16) for _ in range(3))
    flops = 4 * 2 * 30 * 17776 * 17776 * 64
    for name, backend in (("default", None), ("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)):
        try:
            def fn():
                if backend is None:
                    return torch.nn.functional.scaled_dot_product_attention(q, k, v)
                with sdpa_kernel(backend):
                    return torch.nn.functional.scaled_dot_product_attention(q, k, v)
            seconds, times = timed(fn, repeats, warmup=3)
            report(f"attn-{name}", seconds, times, f"SDPA [2,30,17776,64] F16, {flops / seconds / 1e12:.0f} TFLOP/s")
        except Exception as e:  # a backend PyTorch cannot use for these sizes
            print(f"diffusers attn-{name} failed: {type(e).__name__}: {str(e)[:200]}", flush=True)


def vae(repeats):
    fresh()
    from diffusers import AutoencoderKLCogVideoX

    with torch.device("cuda"):
        v = AutoencoderKLCogVideoX.from_config(config("CogVideoX-2b", "vae"))
    v = v.to(torch.float16).eval()
    z = torch.randn(1, 16, LATENT_FRAMES, LATENT_H, LATENT_W, device="cuda", dtype=torch.float16)
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        seconds, times = timed(lambda: v.decode(z).sample, repeats)
    report("vae", seconds, times, f"VAE decode F16, {LATENT_FRAMES} latent frames -> {FRAMES} frames {HEIGHT}x{WIDTH}")
    v.enable_tiling()
    v.enable_slicing()
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        seconds, times = timed(lambda: v.decode(z).sample, repeats)
    report("vae-tiled", seconds, times, "same, tiling and slicing on")
    del v


def vae_encode(repeats, model="CogVideoX-5b", dtype=torch.bfloat16):
    """vae.encode(video).latent_dist of one 49-frame 480x720 video with values in [-1, 1], in the dtype the
    image-to-video and video-to-video pipelines encode in (the VAE's: bf16 for 5b), whole frames, then tiled."""
    fresh()
    from diffusers import AutoencoderKLCogVideoX

    with torch.device("cuda"):
        v = AutoencoderKLCogVideoX.from_config(config(model, "vae"))
    v = v.to(dtype).eval()
    x = torch.rand(1, 3, FRAMES, HEIGHT, WIDTH, device="cuda", dtype=dtype) * 2 - 1
    name = str(dtype).replace("torch.", "")
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        seconds, times = timed(lambda: v.encode(x).latent_dist.mode(), repeats)
    report("vae_encode", seconds, times, f"{model} VAE encode {name}, {FRAMES} frames {HEIGHT}x{WIDTH} -> {LATENT_FRAMES} latent frames")
    v.enable_tiling()
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        seconds, times = timed(lambda: v.encode(x).latent_dist.mode(), repeats)
    report("vae_encode-tiled", seconds, times, "same, tiling on (default tiles)")
    del v, x


def text_encoder():
    from transformers import T5Config, T5EncoderModel

    with torch.device("cuda"):
        te = T5EncoderModel(T5Config(**config("CogVideoX-2b", "text_encoder")))
    return te.to(torch.float16).eval()


def t5(repeats):
    fresh()
    te = text_encoder()
    ids = torch.randint(0, 32000, (2, 226), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        seconds, times = timed(lambda: te(ids)[0], repeats)
    report("t5", seconds, times, "T5 encoder F16, batch 2 x 226 tokens")
    del te


def pipeline(offload, fbcache=None):
    fresh()
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    with torch.device("cuda"):
        v = AutoencoderKLCogVideoX.from_config(config("CogVideoX-2b", "vae"))
    with open(os.path.join(CONFIGS, "CogVideoX-2b", "scheduler", "scheduler_config.json")) as f:
        scheduler = CogVideoXDDIMScheduler.from_config(json.load(f))
    pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=text_encoder(), vae=v.to(torch.float16),
                             transformer=transformer("CogVideoX-2b", torch.float16), scheduler=scheduler)
    what = "all on the GPU"
    if offload:
        pipe.to("cpu")
        torch.cuda.empty_cache()
        pipe.enable_model_cpu_offload()
        pipe.vae.enable_tiling()
        pipe.vae.enable_slicing()
        what = "model CPU offload + VAE tiling and slicing"
    if fbcache is not None:
        from diffusers.hooks import FirstBlockCacheConfig, apply_first_block_cache

        apply_first_block_cache(pipe.transformer, FirstBlockCacheConfig(threshold=fbcache))
        what += f", first block cache {fbcache}"
    pipe.set_progress_bar_config(disable=True)
    prompt = "A panda, dressed in a small, red jacket and a tiny hat, sits on a wooden stool in a serene bamboo forest."
    run = lambda steps: pipe(prompt=prompt, num_frames=FRAMES, height=HEIGHT, width=WIDTH, num_inference_steps=steps,
                             guidance_scale=GUIDANCE, generator=torch.Generator().manual_seed(42), output_type="pt")
    run(2)  # warm-up: kernels chosen, memory pools sized
    if fbcache is not None:
        pipe.transformer._reset_stateful_cache()  # the hook keeps its state across calls: start the measured video afresh
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run(50)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    report("pipeline" + ("-offload" if offload else "") + ("-fbcache" if fbcache is not None else ""), seconds, [seconds],
           f"CogVideoX-2b F16, 50 steps, text encoder included, {what}")
    del pipe


R15 = int(os.environ.get("R15", "3"))  # repetitions of the 1.5 stages (a step takes seconds at 81x768x1360)


def main():
    stages = sys.argv[1:] or ["attention", "step2b", "step5b", "step5b-i2v", "vae", "vae_encode", "t5", "pipeline"]
    import diffusers

    props = torch.cuda.get_device_properties(0)
    print(f"reference: diffusers {diffusers.__version__}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
          f"{props.name} ({props.total_memory / GIB:.0f} GiB)", flush=True)
    for stage in stages:
        try:
            {"attention": lambda: attention(10), "step2b": lambda: step("CogVideoX-2b", torch.float16, 5),
             "step5b": lambda: step("CogVideoX-5b", torch.bfloat16, 3),
             "step5b-i2v": lambda: step("CogVideoX-5b-I2V", torch.bfloat16, 3), "vae": lambda: vae(3),
             "vae_encode": lambda: vae_encode(3), "t5": lambda: t5(5),
             "pipeline": lambda: pipeline(False), "offload": lambda: pipeline(True),
             "lora2b": lambda: lora("CogVideoX-2b", torch.float16, 5), "lora5b": lambda: lora("CogVideoX-5b", torch.bfloat16, 3),
             "step15": lambda: step15("CogVideoX1.5-5B", R15), "step15i2v": lambda: step15("CogVideoX1.5-5B-I2V", R15),
             "vae15": lambda: vae15(min(R15, 2)),
             "fbcache": lambda: pipeline(False, float(os.environ.get("FBCACHE_THRESHOLD", "0.05")))}[stage]()
        except Exception as e:
            print(f"diffusers {stage} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
