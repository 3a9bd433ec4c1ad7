"""Distillation inside ``transformers.Trainer``: losses, ``DistillationConfig``, ``DistillationTrainer`` and
teacher caching. Students are built by the recipes (from a config, by inheriting teacher layers with the pruning
tools, or from a pruned checkpoint)."""

from .config import DistillationConfig
from .trainer import DistillationTrainer

__all__ = ["DistillationConfig", "DistillationTrainer"]
