#!/usr/bin/env python3
"""The reference figures, measured on the GPU machine itself: diffusers (eager, default attention) on the same GPU as
our `bench`, full-size CogVideoX models with random weights from tests/fixtures/golden/real_configs, 49 frames
480x720, guidance 6 (CFG batch 2). ENGINEERING.md §5 has the same measurements from an H100; run this where the GPU
differs so that ratios compare like with like.

    PYTHONPATH=<diffusers>/src python3 scripts/reference/diffusers_bench.py [stage ...]

Stages: attention step2b step5b vae t5 pipeline offload fbcache (default: all but offload and fbcache). fbcache is
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


def main():
    stages = sys.argv[1:] or ["attention", "step2b", "step5b", "vae", "t5", "pipeline"]
    import diffusers

    props = torch.cuda.get_device_properties(0)
    print(f"reference: diffusers {diffusers.__version__}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
          f"{props.name} ({props.total_memory / GIB:.0f} GiB)", flush=True)
    for stage in stages:
        try:
            {"attention": lambda: attention(10), "step2b": lambda: step("CogVideoX-2b", torch.float16, 5),
             "step5b": lambda: step("CogVideoX-5b", torch.bfloat16, 3), "vae": lambda: vae(3), "t5": lambda: t5(5),
             "pipeline": lambda: pipeline(False), "offload": lambda: pipeline(True),
             "fbcache": lambda: pipeline(False, float(os.environ.get("FBCACHE_THRESHOLD", "0.05")))}[stage]()
        except Exception as e:
            print(f"diffusers {stage} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
