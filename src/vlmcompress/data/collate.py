"""Turning rows of an image-caption data set into model batches."""

from __future__ import annotations

import numpy as np
import torch

from .streaming import log_keys


class ImageTextCollator:
    """Rows with an image, a caption and optionally a label -> ``pixel_values``, ``input_ids``,
    ``attention_mask``, ``labels``; columns named ``teacher_*`` (cached teacher outputs) pass through as tensors.

    ``shift`` > 0 moves each image by a random number of pixels (at most ``shift``) in x and y, a light
    augmentation that changes the input every epoch (so it cannot be combined with teacher caching).
    """

    def __init__(self, processor, image_column="image", text_column="text", label_column="label", padding=None,
                 shift: int = 0, seed: int = 0):
        self.processor = processor
        self.image_column, self.text_column, self.label_column = image_column, text_column, label_column
        self.padding = padding or {"padding": True}
        self.shift = shift
        self.rng = np.random.default_rng(seed)

    def _shifted(self, image):
        from PIL import ImageChops

        dx, dy = (int(v) for v in self.rng.integers(-self.shift, self.shift + 1, size=2))
        return ImageChops.offset(image, dx, dy)

    def encode(self, images, texts) -> dict:
        """``pixel_values``, ``input_ids`` and ``attention_mask`` for images and captions, as the model takes them."""
        batch = dict(self.processor.image_processor(images=images, return_tensors="pt"))
        batch.update(self.processor.tokenizer(texts, truncation=True, return_tensors="pt", **self.padding))
        batch.pop("token_type_ids", None)
        return batch

    def __call__(self, rows):
        log_keys(rows)
        images = [r[self.image_column] for r in rows]
        if self.shift:
            images = [self._shifted(im) for im in images]
        batch = self.encode(images, [r[self.text_column] for r in rows])
        if self.label_column in rows[0]:
            batch["labels"] = torch.tensor([int(r[self.label_column]) for r in rows])
        for key in rows[0]:
            if key.startswith("teacher_"):
                batch[key] = torch.tensor(np.asarray([r[key] for r in rows], dtype=np.float32))
        return batch
