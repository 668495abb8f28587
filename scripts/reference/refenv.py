"""The reference environment for making fixtures: diffusers (and huggingface_hub) from source, on whatever PyTorch
the machine has, in float32 on the CPU.

Where PyTorch >= 2.6, transformers and safetensors are installed (the GPU machine), they are used as they are.
Where they are not (the developers' machines: Debian's PyTorch 1.13, no transformers, no safetensors), the shims in
compat/ fill the gaps; they are appended to sys.path, so an installed package always wins. That this environment
computes what the real one does is checked, not assumed: check_env.py re-runs every golden pipeline run (made with
PyTorch 2.11 and transformers 5.17) from its prompt embeddings and compares the frames.

Sources: REFERENCE_SRC (default <repo>/.reference/src) holds diffusers/ and huggingface_hub/ as packed from their
repositories (README of scripts/reference says which commits)."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "fixtures", "golden")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "reference")
SRC = os.environ.get("REFERENCE_SRC", os.path.join(ROOT, ".reference", "src"))

if not os.path.isdir(os.path.join(SRC, "diffusers")):
    sys.exit(f"diffusers source not found under {SRC}: pack src/diffusers (and src/huggingface_hub) there, "
             "or set REFERENCE_SRC (see scripts/reference/README.md)")
sys.path.insert(0, SRC)
sys.path.append(os.path.join(HERE, "compat"))

import torch_compat  # noqa: E402

torch_compat.install()

import torch  # noqa: E402
from diffusers.utils import logging as _dlog  # noqa: E402

_dlog.set_verbosity_error()
_dlog.disable_progress_bar()
torch.set_grad_enabled(False)

import diffusers  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402


def provenance():
    """What made a fixture: recorded next to every file written."""
    import platform

    return {
        "diffusers": diffusers.__version__,
        "diffusers_commit": os.environ.get("DIFFUSERS_COMMIT", "58eb52c"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": "cpu",
        "dtype": "float32",
        "compat_shims": torch_compat.installed() + [m + " (shim)" for m in ("transformers", "safetensors", "accelerate")
                                                    if getattr(sys.modules.get(m), "__version__", "").endswith("compat")],
    }


def save(tensors, path, **meta):
    """Saves float tensors as F32 and integer tensors as I64, contiguous, with the provenance in the metadata."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    out = {}
    for k, v in tensors.items():
        v = v.detach().cpu().contiguous()
        out[k] = v.to(torch.float32) if v.is_floating_point() else v.to(torch.int64)
    save_file(out, path, metadata={"provenance": json.dumps(provenance()), **{k: json.dumps(v) for k, v in meta.items()}})


def golden_run(style, tag):
    """A golden run's settings and tensors (prompt embeddings are the usual input of the new fixtures)."""
    runs = json.load(open(os.path.join(GOLDEN, style, "runs", "runs.json")))
    settings = next(r for r in runs if r["tag"] == tag)
    return settings, load_file(os.path.join(GOLDEN, style, "runs", tag + ".safetensors"))


def load_components(folder, transformer_folder=None):
    """VAE, transformer and scheduler of a model folder in the published layout (the text encoder is not loaded:
    fixtures pass prompt embeddings)."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel

    vae = AutoencoderKLCogVideoX.from_pretrained(folder, subfolder="vae", low_cpu_mem_usage=False).eval()
    tr = CogVideoXTransformer3DModel.from_pretrained(transformer_folder or folder, subfolder="transformer",
                                                     low_cpu_mem_usage=False).eval()
    cls = json.load(open(os.path.join(folder, "scheduler", "scheduler_config.json")))["_class_name"]
    sched = getattr(diffusers, cls).from_pretrained(folder, subfolder="scheduler")
    return vae, tr, sched
