"""Distillation inside ``transformers.Trainer``: losses, ``DistillationConfig``, ``DistillationTrainer`` and
teacher caching. Students are built by the recipes (from a config, by inheriting teacher layers with the pruning
tools, or from a pruned checkpoint)."""

from __future__ import annotations

import importlib

_LAZY = {"DistillationConfig": "config", "DistillationTrainer": "trainer"}

__all__ = list(_LAZY)


def __getattr__(name):
    # imported when first used, so that light submodules (config, steps) load without torch
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
