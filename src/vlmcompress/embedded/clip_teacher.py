"""The embedded teacher: a small CLIPModel trained from scratch on the embedded digits data.

It ships inside the package (``TEACHER_PATH``) and is the default model of every command and recipe,
so everything runs offline. It is a stock ``CLIPModel`` folder: ``CLIPModel.from_pretrained`` and
``CLIPProcessor.from_pretrained`` load it without vlmcompress. ``recipes/train_teacher.py`` rebuilds it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import digits

TEACHER_NAME = "vlmcompress/clip-digits-teacher"
TEACHER_PATH = Path(__file__).resolve().parent.parent / "assets" / "clip-digits-teacher"

def train_bpe(texts) -> tuple[dict, list]:
    """A byte-level BPE with CLIP's ``</w>`` word ends, trained deterministically (ties broken by the pair itself).

    ``tokenizers``' own trainer breaks ties in hash-map order, so two runs give different vocabularies; the teacher
    must be reproducible from its seed, so the few merges this corpus needs are computed here.
    """
    from collections import Counter

    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    # CLIP's own normalizer and pre-tokenizer, as transformers builds them (an empty tokenizer carries them)
    backend = CLIPTokenizer().backend_tokenizer
    normalizer, pre = backend.normalizer, backend.pre_tokenizer
    words: Counter = Counter()
    for text in texts:
        for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)):
            words[word] += 1
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in alphabet + [a + "</w>" for a in alphabet]:
        vocab[symbol] = len(vocab)
    splits = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in sorted(words)}
    merges = []
    while True:
        pairs: Counter = Counter()
        for w, syms in splits.items():
            for pair in zip(syms, syms[1:]):
                pairs[pair] += words[w]
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = best[0] + best[1]
        vocab.setdefault(merged, len(vocab))
        for w, syms in splits.items():
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            splits[w] = tuple(out)
    return vocab, merges


def build_tokenizer(texts=None):
    """A CLIPTokenizer whose BPE is trained offline on the captions of the training numbers.

    Uses CLIP's own normalizer, pre-tokenizer and ``</w>`` suffix, so every digit is its own token and a
    held-out number brings no unseen token. Deterministic: the same texts give the same ids.
    """
    from transformers import CLIPTokenizer

    vocab, merges = train_bpe(list(texts) if texts is not None else digits.all_captions())
    # v5: vocab=/merges= keywords (vocab_file=/merges_file= are silently ignored)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=TEXT_MAX_LENGTH)


TEXT_MAX_LENGTH = 16


def build_image_processor():
    """A CLIPImageProcessor for the 56x56 canvases; grayscale is converted to RGB like any photo."""
    from transformers import CLIPImageProcessor

    mean, std = digits.pixel_stats()
    return CLIPImageProcessor(
        do_resize=True,
        size={"shortest_edge": digits.CANVAS_SIZE},
        do_center_crop=True,
        crop_size={"height": digits.CANVAS_SIZE, "width": digits.CANVAS_SIZE},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=[round(mean, 4)] * 3,
        image_std=[round(std, 4)] * 3,
        do_convert_rgb=True,
    )


def build_processor():
    from transformers import CLIPProcessor

    return CLIPProcessor(image_processor=build_image_processor(), tokenizer=build_tokenizer())


def teacher_config(tokenizer, layers: int = 4, hidden: int = 128, heads: int = 4, projection: int = 128):
    """The teacher's CLIPConfig: both towers ``layers`` deep, MLP ratio 4, patch 8 on 56x56 RGB."""
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

    text = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        projection_dim=projection,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=TEXT_MAX_LENGTH,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        projection_dim=projection,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_channels=3,
        image_size=digits.CANVAS_SIZE,
        patch_size=8,
    )
    return CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=projection)


def pixel_values_from_uint8(images: np.ndarray, image_processor):
    """Fast path equal to ``image_processor(images)`` for 56x56 grayscale canvases (used in training loops)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    mean = torch.tensor(image_processor.image_mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(image_processor.image_std, dtype=torch.float32).view(1, -1, 1, 1)
    x = x.unsqueeze(1).expand(-1, len(image_processor.image_mean), -1, -1)
    return ((x - mean) / std).contiguous()


def shipped_model_path(path: Path, what: str, recipe: str) -> str:
    """``path`` of a model that ships inside the package; a clear error if it was installed without it."""
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the embedded {what} is missing from {path}; reinstall vlmcompress or rebuild it with "
                                f"`python recipes/{recipe} --output_dir src/vlmcompress/assets/{path.name}`")
    return str(path)


def teacher_path() -> str:
    """Where the shipped teacher lives; a clear error if the package was installed without it."""
    return shipped_model_path(TEACHER_PATH, "teacher", "train_teacher.py")
