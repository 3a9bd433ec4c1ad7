"""bitsandbytes quantization through ``from_pretrained`` only, so ``config.json`` always describes the layers.

Quantizing modules by hand (swapping in ``Linear8bitLt``/``Linear4bit``) and saving writes int8/4-bit values that
``from_pretrained`` loads into float Linears with no error when the config does not list exactly those modules. Here a
model is only ever quantized by ``from_pretrained(folder, quantization_config=BitsAndBytesConfig(...))``, whose
``llm_int8_skip_modules`` names every Linear kept in full precision; ``check_quantized_layout`` refuses to save a
model whose layers and config disagree.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import torch
from torch import nn

from ..adapters import get_adapter
from ..errors import VlmcompressError
from .config import QuantizationConfig

#: bitsandbytes' 4-bit CPU kernel (on CPUs with AVX512-BF16) repacks weights in blocks of 32 output rows and 64 inputs;
#: other shapes crash it, so such Linears stay in full precision wherever the checkpoint is loaded
BLOCK_IN, BLOCK_OUT = 64, 32


def require_bitsandbytes():
    """Import bitsandbytes or raise one line that names the fix."""
    try:
        import bitsandbytes
    except Exception as exc:  # noqa: BLE001 - missing, or installed without a usable backend
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VlmcompressError(
            f"bitsandbytes is not usable ({reason}): install it with pip install 'bitsandbytes>=0.49' "
            "(its CPU backend needs no GPU)"
        ) from None
    return bitsandbytes


def _bnb_linear_classes():
    import bitsandbytes as bnb

    return bnb.nn.Linear8bitLt, bnb.nn.Linear4bit


def is_quantized(model_or_config) -> bool:
    config = getattr(model_or_config, "config", model_or_config)
    if getattr(config, "quantization_config", None) is not None or getattr(model_or_config, "is_quantized", False):
        return True
    if isinstance(model_or_config, nn.Module):
        try:
            classes = _bnb_linear_classes()
        except ImportError:
            return False
        return any(isinstance(m, classes) for m in model_or_config.modules())
    return False


def ensure_not_quantized(model_or_config) -> None:
    if is_quantized(model_or_config):
        raise VlmcompressError(
            "the model is already quantized: quantize its full-precision checkpoint instead "
            "(quantizing twice would compound the error and bitsandbytes cannot re-quantize int8/4-bit weights)"
        )


def matches(name: str, patterns) -> bool:
    """Whether transformers keeps module ``name`` in full precision for these ``llm_int8_skip_modules`` patterns."""
    try:
        from transformers.quantizers.quantizers_utils import should_convert_module
    except ImportError:  # same rule, for transformers versions that moved it
        boundary = r"(?:(?<=\.)|(?=\.|$))"
        return any(re.match(rf"(?:{p}){boundary}", name) or name.endswith(p) for p in patterns)
    return not should_convert_module(name, list(patterns))


def linear_names(model) -> dict:
    """Name -> module of every Linear bitsandbytes would replace (exactly ``nn.Linear``, as transformers checks)."""
    return {name: m for name, m in model.named_modules() if type(m) is nn.Linear}


def plan_skips(model, config: QuantizationConfig) -> dict:
    """Which Linears stay in full precision and why; errors for a pattern that matches nothing.

    Returns {"skip": [...patterns for llm_int8_skip_modules], "defaults": [...], "user": [...], "shape": [...],
    "quantized": [...names]}.
    """
    adapter = get_adapter(model)
    present = set(adapter.towers())
    towers = config.towers_of(adapter.towers())
    missing = [t for t in towers if t not in present]
    if missing:
        raise VlmcompressError(f"{type(model).__name__} has no {', '.join(missing)} tower (it has {', '.join(sorted(present))})")
    linears = linear_names(model)
    defaults = adapter.quantization_skip_modules(towers, family_defaults=config.default_skip)
    if "" in defaults:  # a single-tower class whose tower is the model itself
        raise VlmcompressError("nothing to quantize: the towers asked for are not in this model")
    for pattern in config.skip:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise VlmcompressError(f"--skip {pattern!r} is not a valid module pattern: {exc}") from None
        if not any(matches(name, [pattern]) for name in linears):
            example = next(iter(linears), "")
            raise VlmcompressError(
                f"--skip {pattern!r} matches no Linear layer of this model (names look like {example!r}); "
                "a skip that matches nothing would leave the model quantized where you meant it not to be"
            )
    skip = defaults + [p for p in config.skip if p not in defaults]
    candidates = [name for name in linears if not matches(name, skip)]
    shape = []
    if config.bits == 4:
        shape = [n for n in candidates if linears[n].in_features % BLOCK_IN or linears[n].out_features % BLOCK_OUT]
        candidates = [n for n in candidates if n not in shape]
    if not candidates:
        raise VlmcompressError("nothing to quantize: every Linear layer is skipped")
    return {"skip": skip + shape, "defaults": defaults, "user": list(config.skip), "shape": shape, "quantized": candidates}


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise VlmcompressError("--device cuda was asked for but torch sees no CUDA device: use --device cpu")
    return name


def _model_class(config):
    """The class that rebuilds this config's shapes: vlmcompress's own for pruned shapes, else the named one."""
    import transformers

    from ..modeling import remote_class_for

    own = remote_class_for(config)
    if own is not None:
        return own
    for name in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    return transformers.AutoModel


def _skeleton(cls, config):
    """The model's modules on the meta device: names and shapes without weights."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        return cls._from_config(config) if hasattr(cls, "_from_config") else cls.from_config(config)


def _load(cls, path, config: QuantizationConfig, plan: dict, dtype):
    from ..loading import keep_bnb_layout_portable

    device = _device(config.device)
    try:
        model = cls.from_pretrained(path, quantization_config=config.bnb_config(plan["skip"]),
                                    device_map={"": device}, dtype=dtype)
    except (ImportError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VlmcompressError(f"bitsandbytes cannot quantize on {device}: {first}") from exc
    keep_bnb_layout_portable(model)
    check_quantized_layout(model)
    model.eval()
    model.vlmcompress_quantization = quantization_step(model, config, plan)
    return model


def quantize(model_or_path, config: QuantizationConfig | None = None, **options):
    """A bitsandbytes-quantized copy of a CLIP-like model (a model object or a checkpoint path).

    The model is saved (when given as an object) and loaded back by transformers with ``quantization_config``, so the
    result carries a ``config.quantization_config`` naming exactly the Linears kept in full precision. The returned
    model has ``vlmcompress_quantization``: the ``compression_report.json`` step describing what was done.
    """
    from transformers import AutoConfig

    from ..loading import resolve_model_path
    from ..modeling import save_compressed

    config = config or QuantizationConfig(**options)
    config.validate()
    require_bitsandbytes()
    if isinstance(model_or_path, (str, os.PathLike)):
        path = resolve_model_path(str(model_or_path))
        hf_config = AutoConfig.from_pretrained(path)
        ensure_not_quantized(hf_config)
        cls = _model_class(hf_config)
        plan = plan_skips(_skeleton(cls, hf_config), config)
        dtype = getattr(hf_config, "dtype", None)
        dtype = dtype if isinstance(dtype, torch.dtype) else getattr(torch, str(dtype or "float32"), torch.float32)
        return _load(cls, path, config, plan, getattr(torch, config.dtype) if config.dtype else dtype)
    model = model_or_path
    ensure_not_quantized(model)
    plan = plan_skips(model, config)
    dtype = getattr(torch, config.dtype) if config.dtype else get_adapter(model).input_dtype()
    source = getattr(model, "name_or_path", "") or ""
    with tempfile.TemporaryDirectory(prefix="vlmcompress-quantize-") as tmp:
        save_compressed(model, None, tmp)  # adds vlmcompress's class for pruned shapes
        quantized = _load(_model_class(model.config), tmp, config, plan, dtype)
    # the model came from where the original did, not from the temp folder (gone now: peft and the Hub tools would
    # otherwise look for it and warn)
    quantized.name_or_path = quantized.config._name_or_path = source if not source.startswith(tmp) else ""
    return quantized


def quantization_step(model, config: QuantizationConfig | None = None, plan: dict | None = None) -> dict:
    """The ``compression_report.json`` step of a quantized model (see ``vlmcompress.report``)."""
    existing = getattr(model, "vlmcompress_quantization", None)
    if existing is not None and config is None:
        return existing
    qc = _qconfig_dict(model.config)
    bits = 8 if qc.get("load_in_8bit") else 4
    classes = _bnb_linear_classes()
    quantized = [n for n, m in model.named_modules() if isinstance(m, classes)]
    step = {
        "method": "quantization",
        "backend": "bitsandbytes",
        "bits": bits,
        "quant_type": qc.get("bnb_4bit_quant_type") if bits == 4 else "llm_int8",
        "double_quant": bool(qc.get("bnb_4bit_use_double_quant")) if bits == 4 else False,
        "compute_dtype": str(qc.get("bnb_4bit_compute_dtype") or "float32").replace("torch.", "") if bits == 4 else "float16",
        "dtype": str(get_adapter(model).input_dtype()).replace("torch.", ""),  # of what stays unquantized
        "towers": (config or QuantizationConfig()).towers_of(get_adapter(model).towers()),
        "skipped_modules": list(qc.get("llm_int8_skip_modules") or []),
        "quantized_linears": len(quantized),
        "full_precision_linears": len(linear_names(model)),
        "quantize_embeddings": False,
    }
    if plan is not None:
        step["skipped_by_default"] = plan["defaults"]
        step["skipped_by_user"] = plan["user"]
        step["skipped_for_shape"] = plan["shape"]
    return step


def _qconfig_dict(config) -> dict:
    qc = getattr(config, "quantization_config", None)
    if qc is None:
        return {}
    return qc.to_dict() if hasattr(qc, "to_dict") else dict(qc)


def check_quantized_layout(model) -> None:
    """Raise unless ``config.quantization_config`` describes exactly which Linears are quantized, and how.

    This is what makes a saved checkpoint reload right: a Linear the config says is quantized but that holds floats,
    or a bnb Linear the config skips (or that no config mentions), would reload as the wrong class, silently.
    """
    try:
        linear8, linear4 = _bnb_linear_classes()
    except ImportError:
        return
    qc = _qconfig_dict(model.config)
    bnb_modules = {n: m for n, m in model.named_modules() if isinstance(m, (linear8, linear4))}
    fix = ("quantize with vlmcompress.quantization.quantize (it loads through from_pretrained with a "
           "BitsAndBytesConfig), never by swapping modules by hand")
    if not qc:
        if bnb_modules:
            raise VlmcompressError(
                f"{len(bnb_modules)} Linear layers (e.g. {next(iter(bnb_modules))}) are bitsandbytes-quantized but the "
                f"config has no quantization_config: from_pretrained would load their int8/4-bit values into float "
                f"layers with no error; {fix}"
            )
        return
    if qc.get("quant_method") not in (None, "bitsandbytes"):
        return
    skip = qc.get("llm_int8_skip_modules") or []
    expected = linear8 if qc.get("load_in_8bit") else linear4
    problems = []
    for name, module in model.named_modules():
        if type(module) is nn.Linear and not matches(name, skip):
            problems.append(f"{name} is full precision but the config quantizes it")
        elif isinstance(module, (linear8, linear4)):
            if matches(name, skip):
                problems.append(f"{name} is quantized but the config keeps it in full precision")
            elif not isinstance(module, expected):
                problems.append(f"{name} is {type(module).__name__} but the config asks for {expected.__name__}")
            elif getattr(getattr(module.weight, "quant_state", None), "packing_format_for_cpu", False):
                problems.append(f"{name} was repacked into bitsandbytes' CPU inference layout by a forward pass, "
                                "which bitsandbytes 0.50 cannot save back exactly (load it with vlmcompress, or save "
                                "before running it)")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise VlmcompressError("the model's layers and its quantization_config disagree: " + "; ".join(problems[:3])
                               + more + f"; {fix}")


def save_quantized(model, processor, folder, config: QuantizationConfig | None = None) -> dict:
    """``save_compressed`` after checking that the config describes the quantized layers; returns how it loads."""
    from ..modeling import save_compressed

    check_quantized_layout(model)
    loading = save_compressed(model, processor, folder)
    if config is not None:
        config.save(folder)
    return loading


def weight_bytes(model, folder) -> dict:
    """Bytes of a saved checkpoint's weights, by kind: quantized Linear weights (with their scales), what those
    weights take in fp32, full-precision Linears, the text token embedding, and everything else.
    """
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {folder}")
    sizes = {}
    for file in files:
        with safe_open(str(file), "pt") as f:
            for key in f.keys():
                sl = f.get_slice(key)
                numel = 1
                for d in sl.get_shape():
                    numel *= d
                sizes[key] = numel * torch.empty(0, dtype=_DTYPES[sl.get_dtype()]).element_size()
    classes = _bnb_linear_classes()
    quantized = {n: m for n, m in model.named_modules() if isinstance(m, classes)}
    plain = linear_names(model)
    text = get_adapter(model).towers().get("text")
    token = None
    if text is not None:
        embeddings = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Embedding)
                      and any(m is e for e in text.modules())]
        if embeddings:
            token = max(embeddings, key=lambda nm: nm[1].num_embeddings)[0]
    out = {"total": sum(sizes.values()), "quantized_linear": 0, "quantized_linear_fp32": 0, "full_precision_linear": 0,
           "token_embedding": 0, "other": 0}
    for key, size in sizes.items():
        module, _, leaf = key.rpartition(".")
        owner = next((n for n in quantized if key.startswith(n + ".")), None)
        if owner is not None and not key == owner + ".bias":
            out["quantized_linear"] += size
        elif module in plain and leaf == "weight":
            out["full_precision_linear"] += size
        elif token is not None and key == token + ".weight":
            out["token_embedding"] += size
        else:
            out["other"] += size
    out["quantized_linear_fp32"] = sum(m.in_features * m.out_features * 4 for m in quantized.values())
    if out["quantized_linear_fp32"]:
        out["quantized_linear_ratio"] = out["quantized_linear"] / out["quantized_linear_fp32"]
    out["token_embedding_share"] = out["token_embedding"] / out["total"]
    return out


_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I8": torch.int8, "U8": torch.uint8,
           "I32": torch.int32, "I64": torch.int64, "F64": torch.float64, "BOOL": torch.bool, "I16": torch.int16}
