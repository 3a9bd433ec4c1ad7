"""bitsandbytes 8-bit and 4-bit quantization of CLIP-like models, and QLoRA recovery.

    from vlmcompress.quantization import QuantizationConfig, quantize, save_quantized
    model = quantize("path/to/clip", QuantizationConfig(bits=4, quant_type="nf4"))
    save_quantized(model, processor, "outputs/nf4")      # CLIPModel.from_pretrained("outputs/nf4") reloads it
"""

from __future__ import annotations

import importlib

from .config import QuantizationConfig

_CORE = ("check_quantized_layout", "ensure_not_quantized", "is_quantized", "plan_skips", "quantization_step", "quantize",
         "require_bitsandbytes", "save_quantized", "weight_bytes")
_QLORA = ("QLoRATrainer", "prepare_qlora", "lora_target_modules", "check_trainable",
          "own_loss_fn", "save_qlora_adapter", "load_qlora", "merge_qlora", "merge_qlora_model", "qlora_step",
          "train_qlora")


def __getattr__(name):
    # the kernels (torch, bitsandbytes) and QLoRA (transformers.Trainer, peft) load when first used, so that the
    # config and the step kinds load without them
    if name in _CORE or name in _QLORA:
        value = getattr(importlib.import_module(".core" if name in _CORE else ".qlora", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["QuantizationConfig", *_CORE, *_QLORA]
