"""Names only (see transformers/__init__.py): classes peft tests with isinstance or imports for other tuners."""
from transformers import _Unavailable


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    cls = type(name, (_Unavailable,), {})
    globals()[name] = cls
    return cls
