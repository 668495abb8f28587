"""Stands in for accelerate where it cannot be installed: peft imports its hooks and utilities by name at import time.
The fixture runs load LoRA adapters into a model on the CPU with no device map, no offloading and no distributed
setup, so none of these is ever used: the availability probes (is_*_available) answer False, any other function or
class says it is not available when called or made. Nothing here computes."""
__version__ = "0.0.0+compat"


def _stand_in(module_name, name):
    if name.startswith("__"):
        raise AttributeError(name)
    if name.startswith("is_") and name.endswith("_available"):
        return lambda *args, **kwargs: False

    class _Unavailable:
        def __init__(self, *args, **kwargs):
            raise RuntimeError(f"{module_name}.{name} is not available here (accelerate shim)")

    _Unavailable.__name__ = _Unavailable.__qualname__ = name
    return _Unavailable


def __getattr__(name):
    value = _stand_in(__name__, name)
    globals()[name] = value
    return value
