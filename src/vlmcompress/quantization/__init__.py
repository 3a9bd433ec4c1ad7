"""bitsandbytes 8-bit and 4-bit quantization of CLIP-like models, and QLoRA recovery.

    from vlmcompress.quantization import QuantizationConfig, quantize, save_quantized
    model = quantize("path/to/clip", QuantizationConfig(bits=4, quant_type="nf4"))
    save_quantized(model, processor, "outputs/nf4")      # CLIPModel.from_pretrained("outputs/nf4") reloads it
"""

from .config import QuantizationConfig
from .core import (
    check_quantized_layout,
    ensure_not_quantized,
    is_quantized,
    plan_skips,
    quantization_step,
    quantize,
    require_bitsandbytes,
    save_quantized,
    weight_bytes,
)

_QLORA = ("QLoRATrainer", "prepare_qlora", "lora_target_modules", "check_trainable",
          "own_loss_fn", "save_qlora_adapter", "load_qlora", "merge_qlora", "merge_qlora_model", "qlora_step",
          "train_qlora")


def __getattr__(name):
    # QLoRA pulls in transformers.Trainer and peft: only when asked for
    if name in _QLORA:
        from . import qlora

        return getattr(qlora, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["QuantizationConfig", "quantize", "save_quantized", "check_quantized_layout", "ensure_not_quantized",
           "is_quantized", "plan_skips", "quantization_step", "require_bitsandbytes", "weight_bytes", *_QLORA]
