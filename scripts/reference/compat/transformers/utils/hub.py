"""Names only (see transformers/__init__.py): peft's LoftQ helper imports this; never called here."""


def get_checkpoint_shard_files(*args, **kwargs):
    raise RuntimeError("transformers.utils.hub.get_checkpoint_shard_files is not available here (transformers shim)")
