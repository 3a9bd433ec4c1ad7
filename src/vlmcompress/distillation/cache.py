"""Teacher caching: compute the teacher's embeddings once per example, keep them on disk, skip its forward later.

``cache_teacher_outputs`` runs ``datasets.map`` over the training set and adds ``teacher_image_embeds`` and
``teacher_text_embeds`` columns. The cache file is keyed by the teacher's weights, the data set's fingerprint and
the preprocessing, so a different teacher or data set never reads a stale cache. Cached outputs are only right
when every epoch feeds the teacher the same inputs: a collator that augments images or samples captions must not
be combined with the cache (``check_no_augmentation``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..adapters import get_adapter
from ..data.collate import ImageTextCollator
from ..errors import VlmcompressError


def default_cache_dir() -> Path:
    root = os.environ.get("VLMCOMPRESS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vlmcompress")
    return Path(root) / "teacher_outputs"


def teacher_fingerprint(teacher) -> str:
    """Hash of the teacher's config and every weight (a few ms for small models, seconds for large ones)."""
    h = hashlib.sha256(teacher.config.to_json_string().encode())
    for name, tensor in sorted(teacher.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def processor_hash(processor) -> str:
    """Hash of the processor's settings: what the teacher's cached or stored embeddings depend on besides its
    weights."""
    return hashlib.sha256(json.dumps(processor.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


@torch.no_grad()
def teacher_embeddings(adapter, collator, images, texts) -> tuple:
    """(image, text) embeddings, float32 numpy, of one batch through ``collator.encode`` (the inputs training batches
    get) and the teacher's towers."""
    dev = adapter.device()
    inputs = collator.encode(images, texts)
    mask = inputs.get("attention_mask")
    img = adapter.image_embeddings(inputs["pixel_values"].to(device=dev, dtype=adapter.input_dtype()))
    txt = adapter.text_embeddings(inputs["input_ids"].to(dev), None if mask is None else mask.to(dev))
    return img.float().cpu().numpy(), txt.float().cpu().numpy()


def check_no_augmentation(augment: bool) -> None:
    if augment:
        raise VlmcompressError("teacher caching needs the same inputs every epoch, but augmentation is on: "
                               "turn one of them off (cached outputs of unaugmented images would be wrong targets)")


def cache_teacher_outputs(teacher, processor, dataset, *, image_column="image", text_column="text", cache_dir=None,
                          batch_size=256, text_padding=None):
    """``dataset`` plus ``teacher_image_embeds`` / ``teacher_text_embeds`` columns, read from disk when cached."""
    import datasets

    if not isinstance(dataset, datasets.Dataset):
        raise VlmcompressError("teacher caching needs a datasets.Dataset (map with an on-disk cache file)")
    adapter = get_adapter(teacher)
    padding = text_padding or adapter.text_padding
    key_parts = {
        "teacher": teacher_fingerprint(teacher),
        "data": dataset._fingerprint,
        "columns": [image_column, text_column],
        "padding": padding,
        "processor": processor_hash(processor),
    }
    key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:24]
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    collator = ImageTextCollator(processor, padding=padding)  # the inputs training batches get

    def encode(batch):
        img, txt = teacher_embeddings(adapter, collator, batch[image_column], batch[text_column])
        return {"teacher_image_embeds": img, "teacher_text_embeds": txt}

    was_training = teacher.training
    teacher.eval()
    try:
        return dataset.map(encode, batched=True, batch_size=batch_size, cache_file_name=str(folder / f"{key}.arrow"),
                           new_fingerprint=key, load_from_cache_file=True, desc="caching teacher outputs")
    finally:
        teacher.train(was_training)


def use_teacher_cache(mode: str, *, augment: bool, config) -> bool:
    """Whether to cache the teacher's outputs: ``mode`` "true" (and one clear error when the losses or augmentation
    forbid it), "false", or "auto" (on unless augmentation or a loss term needs the teacher's forward every step).
    ``config`` is the run's ``DistillationConfig``."""
    if mode == "false":
        return False
    conflict = config.cache_conflict("--cache_teacher")
    if mode == "true":
        check_no_augmentation(augment)
        if conflict:
            raise VlmcompressError(f"{conflict} (use --cache_teacher false or set their weights to 0)")
        return True
    if mode != "auto":
        raise VlmcompressError(f"--cache_teacher takes auto, true or false, got {mode!r}")
    return not augment and not conflict
