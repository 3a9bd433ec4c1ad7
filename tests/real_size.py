"""Real-size configs for tests: the public ``config.json`` shape keys of released CLIP, SigLIP and BLIP checkpoints
(``tests/fixtures/real_configs/<org>--<name>.json``; configs only, never weights), built into transformers configs
and random-init models with every width, head count and head_dim of the release, and fewer layers.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "real_configs"

#: config class by the checkpoint's architecture (the model class its config.json names)
ARCHITECTURES = {
    "CLIPModel": "CLIPConfig",
    "SiglipModel": "SiglipConfig",
    "BlipForConditionalGeneration": "BlipConfig",
    "BlipForImageTextRetrieval": "BlipConfig",
}
#: config class by model_type, for a file that names no architectures
MODEL_TYPES = {"clip": "CLIPConfig", "siglip": "SiglipConfig", "blip": "BlipConfig"}
TOWERS = {"vision": "vision_config", "text": "text_config"}

REAL_NAMES = ("openai/clip-vit-base-patch32", "openai/clip-vit-large-patch14", "google/siglip-base-patch16-224",
              "Salesforce/blip-image-captioning-base", "Salesforce/blip-itm-base-coco")


def fixture_path(name: str) -> Path:
    return FIXTURES / (name.replace("/", "--") + ".json")


def load_fixture(name_or_path) -> dict:
    path = Path(name_or_path)
    if not path.is_file():
        path = fixture_path(str(name_or_path))
    data = json.loads(path.read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}  # "_source": where the values come from


def _config_class(data: dict):
    import transformers

    names = list(data.get("architectures") or [])
    cls_name = next((ARCHITECTURES[n] for n in names if n in ARCHITECTURES), None)
    if cls_name is None and not names:
        cls_name = MODEL_TYPES.get(data.get("model_type"))
    if cls_name is None:
        supported = ", ".join(sorted(set(ARCHITECTURES.values())))
        raise ValueError(f"real_config supports {supported} ({', '.join(ARCHITECTURES)}), not architectures={names} "
                         f"model_type={data.get('model_type')!r}")
    return getattr(transformers, cls_name)


def real_config(name, layers=None):
    """The transformers config of a fixture (``"openai/clip-vit-base-patch32"`` or a path to such a JSON).

    ``layers`` cuts ``num_hidden_layers``: an int for every tower, or ``{"vision": 1, "text": 2}`` (towers not named
    keep the release's depth). Every other shape key is the release's.
    """
    data = copy.deepcopy(load_fixture(name))
    cls = _config_class(data)
    if layers is not None:
        per_tower = layers if isinstance(layers, dict) else {tower: layers for tower in TOWERS}
        for tower, n in per_tower.items():
            data[TOWERS[tower]]["num_hidden_layers"] = int(n)
    return cls(**data)


def real_model(name, layers=None, seed=0):
    """A random-init model of the fixture's architecture, in eval mode (its own config object)."""
    import transformers

    config = real_config(name, layers)
    torch.manual_seed(seed)
    return getattr(transformers, config.architectures[0])(config).eval()


def real_inputs(config, batch=None, text_len=8, seed=0):
    """(pixel_values at the config's image_size, input_ids < vocab_size, attention_mask): tensors, no processor.

    The last row ends in two padding tokens. ``batch`` defaults to 2, and to 1 for BLIP (384x384 images: 577 tokens).
    """
    if batch is None:
        batch = 1 if config.model_type == "blip" else 2
    g = torch.Generator().manual_seed(seed)
    vc, tc = config.vision_config, config.text_config
    pixel_values = torch.randn(batch, vc.num_channels, vc.image_size, vc.image_size, generator=g)
    input_ids = torch.randint(3, tc.vocab_size, (batch, text_len), generator=g)
    mask = torch.ones_like(input_ids)
    mask[-1, text_len - 2:] = 0
    input_ids[-1, text_len - 2:] = tc.pad_token_id
    return pixel_values, input_ids, mask
