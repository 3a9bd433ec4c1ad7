"""Classes and files that make compressed checkpoints describe themselves.

``save_compressed`` writes a folder that loads three ways: through vlmcompress (``load_model``), with
``AutoModel.from_pretrained(path, trust_remote_code=True)`` where the shapes need our modeling file (copied into
the folder with an ``auto_map``), and with the stock class (``CLIPModel.from_pretrained``) where they do not.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from . import structure
from .modeling_vlmcompress import VlmcompressCLIPModel, VlmcompressSiglipModel

REMOTE_CLASSES = {"clip": VlmcompressCLIPModel, "siglip": VlmcompressSiglipModel}


def tower_configs(config) -> list:
    subs = [getattr(config, name, None) for name in ("vision_config", "text_config")]
    subs = [s for s in subs if s is not None]
    return subs or [config]


def needs_remote_code(config) -> bool:
    return any(structure.needs_remote_code(c) for c in tower_configs(config))


def remote_class_for(config):
    """The vlmcompress class that rebuilds this config's shapes, or None when the stock class can."""
    if not needs_remote_code(config):
        return None
    cls = REMOTE_CLASSES.get(config.model_type)
    if cls is None:
        raise ValueError(f"per-layer shapes are only supported for two-tower CLIP and SigLIP, not {config.model_type!r}")
    return cls


def save_compressed(model, processor, folder) -> dict:
    """Save weights (safetensors), config and processor into ``folder``; add remote code when the shapes need it.

    Returns {"loading": "stock" | "remote_code" | "bitsandbytes", "class": name}.
    """
    folder = Path(folder)
    cls = remote_class_for(model.config)
    if cls is not None:
        model.config.auto_map = {"AutoModel": f"{structure.REMOTE_CODE_FILE[:-3]}.{cls.__name__}"}
        model.config.architectures = [cls.__name__]
    else:
        for key in ("auto_map",):
            if key in model.config.__dict__:
                delattr(model.config, key)
    model.save_pretrained(folder)
    if processor is not None:
        processor.save_pretrained(folder)
    if cls is not None:
        shutil.copyfile(Path(__file__).with_name(structure.REMOTE_CODE_FILE), folder / structure.REMOTE_CODE_FILE)
        loading = "remote_code"
    elif getattr(model.config, "quantization_config", None) is not None:
        loading = "bitsandbytes"
    else:
        loading = "stock"
    config = json.loads((folder / "config.json").read_text())
    return {"loading": loading, "class": (config.get("architectures") or [type(model).__name__])[0]}


__all__ = ["save_compressed", "remote_class_for", "needs_remote_code", "structure",
           "VlmcompressCLIPModel", "VlmcompressSiglipModel"]
