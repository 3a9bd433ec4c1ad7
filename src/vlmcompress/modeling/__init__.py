"""Classes and files that make compressed checkpoints describe themselves.

``save_compressed`` writes a folder that loads three ways: through vlmcompress (``load_model``), with
``AutoModel.from_pretrained(path, trust_remote_code=True)`` where the shapes need our modeling file (copied into
the folder with an ``auto_map``), and with the stock class (``CLIPModel.from_pretrained``) where they do not.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import PreTrainedModel

from . import modeling_vlmcompress, structure
from .modeling_vlmcompress import VlmcompressCLIPModel, VlmcompressSiglipModel

def stock_class(cls):
    """The transformers class a vlmcompress class extends (its last base, after the mixin)."""
    return cls.__bases__[-1]


#: stock class name -> the vlmcompress class that rebuilds its per-layer shapes
REMOTE_CLASSES = {
    stock_class(cls).__name__: cls
    for name, cls in vars(modeling_vlmcompress).items()
    if name.startswith("Vlmcompress") and isinstance(cls, type) and issubclass(cls, PreTrainedModel)
}
_BY_OWN_NAME = {cls.__name__: cls for cls in REMOTE_CLASSES.values()}


def tower_configs(config) -> list:
    subs = [getattr(config, name, None) for name in ("vision_config", "text_config")]
    subs = [s for s in subs if s is not None]
    return subs or [config]


def needs_remote_code(config) -> bool:
    """True when any tower of the model's config records shapes the stock class cannot rebuild."""
    return any(structure.tower_needs_remote_code(c) for c in tower_configs(config))


def remote_class_for(config, model_class_name: str | None = None):
    """The vlmcompress class that rebuilds this config's shapes, or None when the stock class can.

    Chosen by the model's class (``model_class_name`` or the config's ``architectures``), else by model type.
    """
    if not needs_remote_code(config):
        return None
    names = [model_class_name] if model_class_name else list(getattr(config, "architectures", None) or [])
    for name in names:
        cls = REMOTE_CLASSES.get(name) or _BY_OWN_NAME.get(name)
        if cls is not None:
            return cls
    from ..adapters import adapter_for_config

    adapter = adapter_for_config(config)
    cls = _BY_OWN_NAME.get(adapter.default_remote_class) if adapter is not None and adapter.default_remote_class else None
    if cls is None:
        raise ValueError(f"per-layer shapes are supported for CLIP, SigLIP and BLIP classes, not {names or config.model_type}")
    return cls


def make_self_describing(model):
    """Give a model whose shapes the stock class cannot rebuild the vlmcompress class that can.

    The class only differs in ``__init__`` (it shrinks Linears from the config), so the swap changes nothing at
    run time; registered for ``AutoModel`` and the family's task auto classes, ``save_pretrained`` (also from
    ``Trainer.save_model``) then copies ``modeling_vlmcompress.py`` into the folder and writes the ``auto_map``.
    """
    cls = remote_class_for(model.config, type(model).__name__)
    if cls is None:
        if type(model) in REMOTE_CLASSES.values():  # its shapes are the stock class's again (e.g. a sliced width)
            model.__class__ = stock_class(type(model))
            auto_map = {k: v for k, v in (getattr(model.config, "auto_map", None) or {}).items()
                        if not str(v).startswith("modeling_vlmcompress.")}
            if auto_map:
                model.config.auto_map = auto_map
            elif hasattr(model.config, "auto_map"):
                delattr(model.config, "auto_map")
        return model
    if not isinstance(model, cls):
        base = stock_class(cls)
        if not isinstance(model, base):
            raise ValueError(f"cannot describe a pruned {type(model).__name__}: expected {base.__name__}")
        model.__class__ = cls
    cls.register_for_auto_class("AutoModel")
    # register_for_auto_class records one class; save_pretrained keeps the config's other auto_map entries, so the
    # family's task auto classes (pipelines, the Hub widget) load this class too instead of the stock one
    from ..adapters import get_adapter

    target = f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"
    model.config.auto_map = {**(getattr(model.config, "auto_map", None) or {}),
                             **{name: target for name in get_adapter(model).task_auto_classes}}
    return model


def save_compressed(model, processor, folder, *, overwrite: bool = False) -> dict:
    """Save weights (safetensors), config and processor into ``folder``; add remote code when the shapes need it.

    The folder is written whole or not at all (``io.atomic_output_dir``, with its rule: a new or empty folder, or an
    earlier vlmcompress output with ``overwrite=True``), so no stale file of an earlier save survives beside the new
    weights. Returns how it loads: {"kind": "stock" | "remote_code" | "bitsandbytes", "class": name}.
    """
    from ..io import atomic_output_dir, is_atomic_temp

    folder = Path(folder)
    if not is_atomic_temp(folder):  # called on its own: build it in a temp folder (finish_checkpoint passes one)
        with atomic_output_dir(folder, overwrite=overwrite) as tmp:
            return save_compressed(model, processor, tmp)
    make_self_describing(model)
    if not needs_remote_code(model.config) and "auto_map" in model.config.__dict__:
        delattr(model.config, "auto_map")  # shapes are stock again (e.g. a pruned model whose layers were dropped)
    model.save_pretrained(folder)
    if processor is not None:
        processor.save_pretrained(folder)
    if (folder / structure.REMOTE_CODE_FILE).exists():
        kind = "remote_code"
    elif getattr(model.config, "quantization_config", None) is not None:
        kind = "bitsandbytes"
    else:
        kind = "stock"
    config = json.loads((folder / "config.json").read_text())
    return {"kind": kind, "class": (config.get("architectures") or [type(model).__name__])[0]}


__all__ = ["save_compressed", "make_self_describing", "remote_class_for", "needs_remote_code", "structure",
           "VlmcompressCLIPModel", "VlmcompressSiglipModel"]
