"""Names only (see accelerate/__init__.py)."""
from accelerate import _stand_in


def __getattr__(name):
    value = _stand_in(__name__, name)
    globals()[name] = value
    return value
