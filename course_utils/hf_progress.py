"""Quiet model loading: hide transformers' "Loading weights" bar (noise in a lesson); download bars stay."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def no_weight_loading_bar():
    """Within this block transformers shows no "Loading weights" bar (through its tqdm hook, transformers >= 5)."""
    from transformers.utils import logging as hf_logging  # heavy: only when a model is loaded

    set_hook = getattr(hf_logging, "set_tqdm_hook", None)  # transformers >= 5
    if set_hook is None:
        yield
        return

    def hook(factory, args, kwargs):
        if kwargs.get("desc") == "Loading weights":
            kwargs = {**kwargs, "disable": True}
        return factory(*args, **kwargs)

    previous = set_hook(hook)
    try:
        yield
    finally:
        set_hook(previous)
