"""Structural pruning of attention heads, MLP neurons and whole layers, with importance scores."""

from ..utils import lazy_attributes

_LAZY = {name: "structural" for name in ("prune_heads", "prune_hidden", "prune_layers", "prune_mlp")}
__getattr__ = lazy_attributes(__name__, _LAZY)  # torch loads when a function is first used

__all__ = list(_LAZY)
