"""Distillation inside ``transformers.Trainer``: losses, ``DistillationConfig``, ``DistillationTrainer`` and
teacher caching. Students are built by the recipes (from a config, by inheriting teacher layers with the pruning
tools, or from a pruned checkpoint)."""

from ..utils import lazy_attributes

_LAZY = {"DistillationConfig": "config", "DistillationTrainer": "trainer"}
__getattr__ = lazy_attributes(__name__, _LAZY)  # transformers' Trainer loads when first used

__all__ = list(_LAZY)
