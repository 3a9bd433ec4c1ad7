"""Adapters: the only code that knows where a model family keeps its towers, layers, heads and MLPs.

Everything else asks ``get_adapter(model)``. Adding a family means adding one adapter module and
listing its class in ``ADAPTERS``.
"""

from __future__ import annotations

from ..errors import VlmcompressError
from .base import ModelAdapter
from .blip import BlipAdapter
from .clip import ClipAdapter, SiglipAdapter

ADAPTERS: list[type[ModelAdapter]] = [ClipAdapter, SiglipAdapter, BlipAdapter]


def adapter_for_config(config) -> type[ModelAdapter] | None:
    for adapter in ADAPTERS:
        if adapter.matches_config(config):
            return adapter
    return None


def get_adapter(model) -> ModelAdapter:
    config = getattr(model, "config", None)
    adapter = adapter_for_config(config) if config is not None else None
    if adapter is None:
        supported = ", ".join(sorted({f for a in ADAPTERS for f in a.model_types}))
        found = type(model).__name__
        raise VlmcompressError(
            f"{found} is not a supported image-text model: expected a model of type {supported}"
        )
    return adapter(model)


__all__ = ["ADAPTERS", "ModelAdapter", "get_adapter", "adapter_for_config"]
