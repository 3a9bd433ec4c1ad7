"""Loading a model and its processor by name or path, with errors that name the fix."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import VlmcompressError
from .teacher import teacher_path


def _looks_local(name: str) -> bool:
    # a Hub id is "name" or "owner/name"; anything else that does not exist is a missing local path
    return name.startswith((".", "/", "~")) or name.endswith("/") or name.count("/") > 1 or os.sep != "/" and os.sep in name


def resolve_model_path(name_or_path: str | None) -> str:
    """``None`` means the embedded teacher. A local path must exist."""
    if name_or_path is None:
        return teacher_path()
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise VlmcompressError(f"{name_or_path} has no config.json: expected a folder written by save_pretrained")
        return str(path)
    if _looks_local(name_or_path):
        raise VlmcompressError(f"model path {name_or_path} does not exist: expected a save_pretrained folder or a Hub model id")
    return name_or_path


#: keys only bitsandbytes-quantized Linears write (8-bit scales, 4-bit block scales and quant state)
BNB_KEY_SUFFIXES = (".SCB", ".weight.absmax", ".weight.quant_map", ".weight.quant_state.bitsandbytes__nf4",
                    ".weight.quant_state.bitsandbytes__fp4")


def check_bnb_weights_described(path, config) -> None:
    """Refuse a folder holding bitsandbytes weights that its config.json does not describe: from_pretrained would
    load the int8/4-bit values into float layers with no error (quantized by hand, or a config edited since)."""
    if getattr(config, "quantization_config", None) is not None:
        return
    from safetensors import safe_open

    for file in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(file), "pt") as f:
            key = next((k for k in f.keys() if k.endswith(BNB_KEY_SUFFIXES)), None)
        if key is not None:
            raise VlmcompressError(
                f"{path} holds bitsandbytes-quantized weights ({key}) but its config.json has no quantization_config: "
                "loading it would put int8/4-bit values into float layers; re-quantize the full-precision model with "
                "vlmcompress quantize"
            )


def keep_bnb_layout_portable(model) -> None:
    """Keep 4-bit weights in bitsandbytes' portable layout: on CPUs with AVX512-BF16 its first inference forward
    otherwise repacks them (block scales rounded to bf16) into a layout bitsandbytes 0.50 cannot save or dequantize
    back exactly, which would corrupt a later save, QLoRA merge or dequantize."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def load_model(name_or_path: str | None = None, *, trust_remote_code: bool = False, device_map: str | None = None, **kwargs):
    """Load a CLIP/SigLIP/BLIP model (full precision, pruned or bitsandbytes-quantized), its processor and path."""
    from transformers import AutoConfig, AutoModel, AutoProcessor

    from .adapters import adapter_for_config

    path = resolve_model_path(name_or_path)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise VlmcompressError(f"cannot load a model config from {path!r}: {str(exc).splitlines()[0]}") from exc
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise VlmcompressError(f"{path} carries its own modeling code: pass --trust-remote-code to load it") from exc
        raise VlmcompressError(f"{path}: {str(exc).splitlines()[0]}") from exc
    if adapter_for_config(config) is None:
        raise VlmcompressError(
            f"{path} is a {type(config).__name__.removesuffix('Config')} model ({config.model_type!r}), not a supported "
            "image-text model: expected CLIP, SigLIP or BLIP"
        )
    if getattr(config, "quantization_config", None) is not None and device_map is None:
        device_map = "cpu"
    if Path(path).is_dir():
        check_bnb_weights_described(path, config)
    from .modeling import remote_class_for

    # a pruned checkpoint records its per-layer shapes: our own class rebuilds them, no remote code needed
    own_class = remote_class_for(config)
    if own_class is not None:
        model = own_class.from_pretrained(path, device_map=device_map, **kwargs)
    else:
        # the saved class (e.g. BlipForConditionalGeneration), not AutoModel's base class for the model type
        import transformers

        names = list(getattr(config, "architectures", None) or [])
        stock = getattr(transformers, names[0], None) if names and "auto_map" not in config.__dict__ else None
        loader = stock if stock is not None else AutoModel
        model = loader.from_pretrained(path, trust_remote_code=trust_remote_code, device_map=device_map, **kwargs)
    try:
        processor = AutoProcessor.from_pretrained(path)
    except OSError as exc:
        raise VlmcompressError(f"{path} has no processor (tokenizer and image processor): save one beside the weights") from exc
    keep_bnb_layout_portable(model)
    model.eval()
    return model, processor, path
