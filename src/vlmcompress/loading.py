"""Loading a model and its processor by name or path, with errors that name the fix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from .errors import VlmcompressError
from .utils import looks_local
from .embedded.clip_teacher import teacher_path


def _check_hub_reachable(model_id: str) -> None:
    """Fail at once, with a hint, when a Hub id cannot be fetched: offline and not cached, or no network (instead of
    transformers' retries and a traceback half a minute later)."""
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(model_id, "config.json")
    except Exception:  # noqa: BLE001 - an id the cache cannot parse: the Hub call below names the problem
        cached = None
    if isinstance(cached, str):
        return
    if constants.HF_HUB_OFFLINE:
        raise VlmcompressError(f"{model_id} is not a local folder and is not in the Hub cache, and HF_HUB_OFFLINE is "
                               "set: pass a save_pretrained folder, or unset HF_HUB_OFFLINE to download it")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().model_info(model_id, timeout=10)
    except RepositoryNotFoundError:
        raise VlmcompressError(f"{model_id} is not a local folder and the Hub has no model {model_id!r} "
                               "(or it is private: log in with `hf auth login`)") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "an error"
        raise VlmcompressError(f"{model_id} is not a local folder and the Hub at {constants.ENDPOINT} answered "
                               f"{status} for it") from None
    except Exception as exc:  # noqa: BLE001 - no network: one line, with the ways out
        raise VlmcompressError(f"{model_id} is not a local folder and the Hub at {constants.ENDPOINT} cannot be reached "
                               f"({type(exc).__name__}); pass a save_pretrained folder, or set HF_HUB_OFFLINE=1 to "
                               "use the local cache") from None


def resolve_model_path(name_or_path: str | None, *, check_hub: bool = True) -> str:
    """``None`` means the embedded teacher. A local path must exist and hold a loadable checkpoint; a Hub id must be
    cached or reachable."""
    if name_or_path is None:
        return teacher_path()
    if not str(name_or_path).strip():
        raise VlmcompressError("the model path is empty: pass a save_pretrained folder or a Hub model id")
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise VlmcompressError(f"{name_or_path} is a file: expected a folder written by save_pretrained")
        if not (path / "config.json").is_file():
            raise VlmcompressError(f"{name_or_path} has no config.json: expected a folder written by save_pretrained")
        return str(path)
    if looks_local(name_or_path):
        raise VlmcompressError(f"model folder {name_or_path} does not exist: expected a save_pretrained folder or a Hub "
                               "model id (owner/name)")
    if check_hub:
        _check_hub_reachable(name_or_path)
    return name_or_path


WEIGHT_FILES = (".safetensors", ".bin")


def check_weight_files(folder) -> list[Path]:
    """The folder's weight files, each checked whole: a safetensors header that parses and whose tensors end
    exactly where the file does (a truncated or damaged download fails here, naming the file)."""
    import json
    import struct

    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_FILES))
    if not files:
        raise VlmcompressError(f"{folder} has no weights (*.safetensors or *.bin): expected a folder written by "
                               "save_pretrained")
    for file in files:
        if not file.name.endswith(".safetensors"):
            continue
        size = file.stat().st_size
        damaged = f"{file} is damaged or truncated ({size:,} bytes)"
        try:
            with open(file, "rb") as f:
                (length,) = struct.unpack("<Q", f.read(8))
                if length > size - 8:
                    raise ValueError
                header = json.loads(f.read(length))
        except (struct.error, ValueError, UnicodeDecodeError):
            raise VlmcompressError(f"{damaged}: its safetensors header does not parse; save or download it again") from None
        ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)]
        if 8 + length + max(ends, default=0) != size:
            raise VlmcompressError(f"{damaged}: its header describes {8 + length + max(ends, default=0):,} bytes; "
                                   "save or download it again")
    return files


def check_config_file(folder) -> dict:
    """config.json of a local checkpoint, parsed (one line naming the file when it does not)."""
    import json

    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text())
    except OSError as exc:
        raise VlmcompressError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise VlmcompressError(f"{path} is not valid JSON ({exc}): the checkpoint is damaged; save it again") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise VlmcompressError(f"{path} has no model_type: expected a config.json written by save_pretrained")
    return config


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


class LoadedCheckpoint(NamedTuple):
    model: object
    processor: object
    path: str


def load_model(name_or_path: str | None = None, **kwargs):
    """The model of a CLIP/SigLIP/BLIP checkpoint (full precision, pruned or bitsandbytes-quantized), ready for
    inference; ``load_checkpoint`` also gives its processor and resolved path."""
    return load_checkpoint(name_or_path, **kwargs).model


def load_checkpoint(name_or_path: str | None = None, *, trust_remote_code: bool = False, device_map: str | None = None,
                    torch_for: str | None = None, **kwargs) -> LoadedCheckpoint:
    """(model, processor, path) of a CLIP/SigLIP/BLIP checkpoint: a folder, a Hub id, or None (the embedded teacher).
    An exported ONNX folder loads as an ONNX Runtime model, unless ``torch_for`` names what needs PyTorch weights
    (``"pruning"``): then it is one clear error."""
    from transformers import AutoConfig, AutoModel, AutoProcessor

    from .adapters import adapter_for_config

    path = resolve_model_path(name_or_path)
    local = Path(path).is_dir()
    from .modeling.onnx_runtime import is_onnx_folder

    if local and is_onnx_folder(path):  # exported graphs (vlmcompress export): run by ONNX Runtime
        if torch_for:
            raise VlmcompressError(f"{path} holds ONNX graphs (vlmcompress export), which {torch_for} cannot change: "
                                   "give the PyTorch checkpoint it was exported from")
        from .modeling.onnx_runtime import OnnxModel

        try:
            processor = AutoProcessor.from_pretrained(path)
        except OSError as exc:
            raise VlmcompressError(f"{path} has no processor (tokenizer and image processor): export it again") from exc
        return LoadedCheckpoint(OnnxModel(path), processor, path)
    if local:
        check_config_file(path)
        check_weight_files(path)
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
    if local:
        check_bnb_weights_described(path, config)
    from .modeling import remote_class_for

    # a pruned checkpoint records its per-layer shapes: our own class rebuilds them, no remote code needed
    own_class = remote_class_for(config)
    if own_class is not None:
        loader, extra = own_class, {}
    else:
        # the saved class (e.g. BlipForConditionalGeneration), not AutoModel's base class for the model type
        import transformers

        names = list(getattr(config, "architectures", None) or [])
        stock = getattr(transformers, names[0], None) if names and "auto_map" not in config.__dict__ else None
        loader, extra = (stock if stock is not None else AutoModel), {"trust_remote_code": trust_remote_code}
    try:
        model = loader.from_pretrained(path, device_map=device_map, **extra, **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        # a safetensors file damaged after the checks above, weights that do not fit the config, a download failure
        raise VlmcompressError(f"cannot load the weights of {path}: {type(exc).__name__}: "
                               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}") from exc
    try:
        processor = AutoProcessor.from_pretrained(path)
    except OSError as exc:
        raise VlmcompressError(f"{path} has no processor (tokenizer and image processor): save one beside the weights") from exc
    keep_bnb_layout_portable(model)
    model.eval()
    return LoadedCheckpoint(model, processor, path)
