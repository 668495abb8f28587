"""transformers.utils, names only: diffusers reads the two weight-file names; peft's configs inherit PushToHubMixin
(a mixin whose Hub upload is never called here) and import http_user_agent (used only when downloading)."""
SAFE_WEIGHTS_NAME = "model.safetensors"
WEIGHTS_NAME = "pytorch_model.bin"


class PushToHubMixin:
    """No Hub upload here: the fixture scripts never push."""


def http_user_agent(user_agent=None):
    return "compat"


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    from .. import _Unavailable

    cls = type(name, (_Unavailable,), {})
    globals()[name] = cls
    return cls
