"""Model cards for compressed checkpoints, rendered from ``compression_report.json``.

``write_card(folder)`` writes ``README.md`` (Hub metadata + body) and its plots into a checkpoint folder.
``ModelCardCallback`` collects what a ``Trainer`` run did (non-default hyperparameters, loss and evaluation logs)
as the ``training`` entry of a report step, so the card can show it.
"""

from __future__ import annotations

from .render import CARD_FILENAME, GENERATED_MARKER, TEMPLATE, build_card, is_generated, write_card


def __getattr__(name):
    if name == "ModelCardCallback":  # imports transformers: only when asked for
        from .callback import ModelCardCallback

        return ModelCardCallback
    raise AttributeError(name)


__all__ = ["write_card", "build_card", "is_generated", "ModelCardCallback", "CARD_FILENAME", "GENERATED_MARKER",
           "TEMPLATE"]
