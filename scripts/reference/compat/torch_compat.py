"""Lets diffusers (which asks for PyTorch >= 2.6) run its CogVideoX code paths on an older PyTorch (Debian's 1.13),
in float32 on the CPU. Every shim here stands in for something those code paths never use (device namespaces,
dtype names in lookup tables, compiler decorators), except scaled_dot_product_attention, which is written out as
the textbook softmax(Q Kᵀ / sqrt(d)) V in float32, as PyTorch's own math backend computes it."""
import math
import types

import torch
import torch.nn.functional as F


class _Absent(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name[:1].isupper():
            return type(name, (), {})
        if name == "is_available":
            return lambda: False
        if name == "device_count":
            return lambda: 0
        return lambda *a, **k: None


def _identity_decorator(fn=None, *a, **k):
    if callable(fn):
        return fn
    return lambda f: f


def _sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    assert dropout_p == 0.0 and not is_causal, "the compat attention covers inference only"
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = torch.matmul(query, key.transpose(-2, -1)) * scale
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    return torch.matmul(torch.softmax(scores, dim=-1), value)


_installed = []


def installed():
    """The shims in force, for the fixtures' provenance."""
    return list(_installed)


def install():
    if tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 6):
        return
    _installed.append("torch<2.6: absent device namespaces, dtype names, compiler decorators, math attention")
    for dev in ("xpu", "mps", "mtia"):
        if not hasattr(torch, dev):
            setattr(torch, dev, _Absent("torch." + dev))
    for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
                 "uint16", "uint32", "uint64", "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7",
                 "int1", "int2", "int3", "int4", "int5", "int6", "int7", "float4_e2m1fn_x2"):
        if not hasattr(torch, name):
            setattr(torch, name, types.SimpleNamespace(name=name, itemsize=1, is_floating_point=False))
    if not hasattr(torch, "compiler"):
        torch.compiler = types.SimpleNamespace(disable=_identity_decorator, is_compiling=lambda: False,
                                               is_dynamo_compiling=lambda: False)
    import torch.distributed as dist
    if not hasattr(dist, "device_mesh"):
        dist.device_mesh = types.SimpleNamespace(DeviceMesh=type("DeviceMesh", (), {}))
    import sys
    for mod in ("torch.distributed._functional_collectives", "torch.nn.attention", "torch.nn.attention.flex_attention"):
        try:
            __import__(mod)
        except ImportError:
            sys.modules[mod] = _Absent(mod)
    if not hasattr(F, "scaled_dot_product_attention"):
        F.scaled_dot_product_attention = _sdpa
