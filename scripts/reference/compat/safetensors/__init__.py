"""A small pure-Python reader/writer of the safetensors format, for machines where the package (a Rust extension)
cannot be installed. It implements only what the fixture scripts and diffusers' loaders call: safe_open (keys,
get_tensor, metadata) and, in .torch, load_file/save_file/load/save."""
import json
import struct

__version__ = "0.0.0+compat"


class SafetensorError(Exception):
    pass


def _read_header(data):
    if len(data) < 8:
        raise SafetensorError("file too small")
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    return header, 8 + n


class safe_open:
    def __init__(self, filename, framework="pt", device="cpu"):
        with open(filename, "rb") as f:
            self._data = f.read()
        self._header, self._start = _read_header(self._data)
        self._device = device

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def keys(self):
        return [k for k in self._header if k != "__metadata__"]

    def offset_keys(self):
        return sorted(self.keys(), key=lambda k: self._header[k]["data_offsets"][0])

    def metadata(self):
        return self._header.get("__metadata__")

    def get_tensor(self, name):
        from .torch import _from_bytes

        info = self._header[name]
        begin, end = info["data_offsets"]
        return _from_bytes(self._data[self._start + begin : self._start + end], info["dtype"], info["shape"])

    def get_slice(self, name):
        return _Slice(self, name)


class _Slice:
    def __init__(self, f, name):
        self._f, self._name = f, name

    def get_shape(self):
        return self._f._header[self._name]["shape"]

    def get_dtype(self):
        return self._f._header[self._name]["dtype"]

    def __getitem__(self, index):
        return self._f.get_tensor(self._name)[index]
