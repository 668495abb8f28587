"""Names only (see transformers/__init__.py): peft imports this for transformers < 4.33 (the shim reports 0.0.0); never called here."""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)

    def unavailable(*args, **kwargs):
        raise RuntimeError(f"transformers.deepspeed.{name} is not available here (transformers shim)")

    globals()[name] = unavailable
    return unavailable
