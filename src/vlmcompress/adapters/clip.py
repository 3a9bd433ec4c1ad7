"""CLIP and SigLIP: two towers with ``get_image_features`` / ``get_text_features``."""

from __future__ import annotations

from .base import ModelAdapter, _pooled


class ClipAdapter(ModelAdapter):
    family = "clip"
    model_types = ("clip",)

    def image_embeddings(self, pixel_values):
        return _pooled(self.model.get_image_features(pixel_values=pixel_values))

    def text_embeddings(self, input_ids, attention_mask=None):
        return _pooled(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))


class SiglipAdapter(ClipAdapter):
    family = "siglip"
    model_types = ("siglip",)
    # SigLIP was trained on max-length padded text without an attention mask
    text_padding = {"padding": "max_length"}
