"""Names only (see transformers/__init__.py): peft's AdaLoRA and DeepSpeed helpers import these; never called here."""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)

    def unavailable(*args, **kwargs):
        raise RuntimeError(f"transformers.integrations.{name} is not available here (transformers shim)")

    globals()[name] = unavailable
    return unavailable
