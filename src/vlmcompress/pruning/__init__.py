"""Structural pruning of attention heads, MLP neurons and whole layers, with importance scores."""

from __future__ import annotations

import importlib

_LAZY = {name: "structural" for name in ("prune_heads", "prune_hidden", "prune_layers", "prune_mlp")}

__all__ = list(_LAZY)


def __getattr__(name):
    # imported when first used, so that light submodules (config, steps) load without torch
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
