"""What every model-family adapter provides."""

from __future__ import annotations

import torch


def _pooled(output):
    """v5 get_*_features return a ModelOutput whose pooler_output is the projected embedding; older ones a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        pooled = output[0] if isinstance(output, (tuple, list)) else output["pooler_output"]
    return pooled


class ModelAdapter:
    """Wraps one model instance; methods take plain tensors so evaluation and losses stay family-agnostic."""

    family: str = ""
    model_types: tuple[str, ...] = ()
    #: keyword arguments for the tokenizer when encoding captions/prompts
    text_padding: dict = {"padding": True}

    def __init__(self, model):
        self.model = model

    @classmethod
    def matches_config(cls, config) -> bool:
        return getattr(config, "model_type", None) in cls.model_types

    def image_embeddings(self, pixel_values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def text_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def input_dtype(self) -> torch.dtype:
        """dtype pixel values should be cast to (the dtype of the first floating-point parameter)."""
        for p in self.model.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    def device(self) -> torch.device:
        return next(self.model.parameters()).device
