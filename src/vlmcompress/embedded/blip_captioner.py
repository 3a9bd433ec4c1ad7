"""The embedded BLIP pieces: a WordPiece tokenizer, an image processor and tiny configs, all built offline.

The tokenizer's vocabulary is every word of the digits captions plus the digits ``0``-``9`` and their ``##``
continuations, so a two-digit number is two tokens and a held-out number brings no unseen token. BLIP's decoder
starts from ``[DEC]`` (its BOS) and stops at ``[SEP]``.
"""

from __future__ import annotations

from pathlib import Path

from . import digits

BLIP_TEACHER_NAME = "vlmcompress/blip-digits-captioner"
BLIP_TEACHER_PATH = Path(__file__).resolve().parent.parent / "assets" / "blip-digits-captioner"
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]")
TEXT_MAX_LENGTH = 16


def blip_vocab(texts=None) -> dict:
    """Deterministic WordPiece vocabulary: special tokens, digits, ``##`` digits, then the caption words sorted."""
    texts = list(texts) if texts is not None else digits.all_captions()
    numbers = [str(d) for d in range(10)]
    words = sorted({w for t in texts for w in t.lower().split() if not w.isdigit()})
    tokens = list(SPECIAL_TOKENS) + numbers + ["##" + d for d in numbers] + words
    return {token: i for i, token in enumerate(tokens)}


def build_blip_tokenizer(texts=None):
    from transformers import BertTokenizer

    # v5: vocab= takes the dict (a vocab_file= keyword would be ignored)
    return BertTokenizer(vocab=blip_vocab(texts), bos_token="[DEC]", model_max_length=TEXT_MAX_LENGTH)


def build_blip_image_processor():
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    mean, std = digits.pixel_stats()
    return BlipImageProcessorPil(
        do_resize=True, size={"height": digits.CANVAS_SIZE, "width": digits.CANVAS_SIZE}, do_rescale=True,
        rescale_factor=1 / 255, do_normalize=True, image_mean=[round(mean, 4)] * 3, image_std=[round(std, 4)] * 3,
        do_convert_rgb=True,
    )


def build_blip_processor():
    from transformers import BlipProcessor

    return BlipProcessor(image_processor=build_blip_image_processor(), tokenizer=build_blip_tokenizer())


def blip_config(tokenizer, layers: int = 4, hidden: int = 128, heads: int = 4, text_layers: int | None = None,
                projection: int = 128):
    """A BlipConfig for 56x56 digits canvases (patch 8), MLP ratio 4, text ids from ``tokenizer``."""
    from transformers import BlipConfig

    text = dict(
        vocab_size=len(tokenizer), hidden_size=hidden, encoder_hidden_size=hidden, intermediate_size=4 * hidden,
        num_hidden_layers=text_layers or layers, num_attention_heads=heads, max_position_embeddings=TEXT_MAX_LENGTH + 8,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.sep_token_id, sep_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers, num_attention_heads=heads,
                  image_size=digits.CANVAS_SIZE, patch_size=8, initializer_range=0.02)  # the default 1e-10 starts dead
    return BlipConfig(text_config=text, vision_config=vision, projection_dim=projection, image_text_hidden_size=projection)


def blip_teacher_path() -> str:
    """Where the shipped BLIP captioner lives; a clear error if the package was installed without it."""
    from .clip_teacher import shipped_model_path

    return shipped_model_path(BLIP_TEACHER_PATH, "BLIP teacher", "train_blip_teacher.py")
