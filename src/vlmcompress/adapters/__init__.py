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


def register_adapter(adapter: type[ModelAdapter]) -> type[ModelAdapter]:
    """Add a family (usable as a class decorator): everything else finds it through the functions below."""
    if adapter not in ADAPTERS:
        ADAPTERS.insert(0, adapter)
    return adapter


def adapter_for_family(family: str) -> type[ModelAdapter] | None:
    """The adapter class of a family name as reports record it ("clip", "siglip", "blip")."""
    return next((a for a in ADAPTERS if a.family == str(family).lower()), None)


def known_tower_names() -> tuple[str, ...]:
    """Every tower name of every registered family (what a config can name before a model is loaded)."""
    return tuple(dict.fromkeys(t for a in ADAPTERS for t in a.tower_names))


def known_head_sites() -> tuple[str, ...]:
    """Every head-site name of every registered family."""
    return tuple(dict.fromkeys(t for a in ADAPTERS for t in a.sites()))


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


__all__ = ["ADAPTERS", "ModelAdapter", "get_adapter", "adapter_for_config", "adapter_for_family", "register_adapter",
           "known_tower_names", "known_head_sites"]
