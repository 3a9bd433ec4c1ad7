"""Structural pruning of attention heads, MLP neurons and whole layers, with importance scores."""

from .structural import prune_heads, prune_hidden, prune_layers, prune_mlp

__all__ = ["prune_heads", "prune_hidden", "prune_layers", "prune_mlp"]
