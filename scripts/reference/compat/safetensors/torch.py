import json
import struct

import torch

from . import safe_open

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def _from_bytes(buf, dtype, shape):
    t = torch.frombuffer(bytearray(buf), dtype=_DTYPES[dtype]) if len(buf) else torch.empty(0, dtype=_DTYPES[dtype])
    return t.reshape(shape).clone()


def _to_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def save(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        b = _to_bytes(t)
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(blobs)


def save_file(tensors, filename, metadata=None):
    with open(filename, "wb") as f:
        f.write(save(tensors, metadata))


def load(data):
    import tempfile, os
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data)
    try:
        return load_file(f.name)
    finally:
        os.unlink(f.name)


def load_file(filename, device="cpu"):
    with safe_open(filename, framework="pt", device=device) as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def storage_ptr(tensor):
    """Address of a tensor's storage (as safetensors.torch's: peft uses it to find tensors that share storage)."""
    storage = tensor.untyped_storage() if hasattr(tensor, "untyped_storage") else tensor.storage()
    return storage.data_ptr()


def storage_size(tensor):
    """Bytes of a tensor's storage (as safetensors.torch's)."""
    if hasattr(tensor, "untyped_storage"):
        return tensor.untyped_storage().nbytes()
    return tensor.storage().size() * tensor.element_size()
