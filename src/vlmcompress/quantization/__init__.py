"""bitsandbytes 8-bit and 4-bit quantization of CLIP-like models, and QLoRA recovery.

    from vlmcompress.quantization import QuantizationConfig, quantize, save_quantized
    model = quantize("path/to/clip", QuantizationConfig(bits=4, quant_type="nf4"))
    save_quantized(model, processor, "outputs/nf4")      # CLIPModel.from_pretrained("outputs/nf4") reloads it
"""

from ..utils import lazy_attributes
from .config import QuantizationConfig

_CORE = ("check_quantized_layout", "ensure_not_quantized", "is_quantized", "plan_skips", "quantization_step", "quantize",
         "require_bitsandbytes", "save_quantized", "weight_bytes")
_QLORA = ("QLoRATrainer", "prepare_qlora", "lora_target_modules", "check_trainable",
          "own_loss_fn", "save_qlora_adapter", "load_qlora", "merge_qlora", "merge_qlora_model", "qlora_step",
          "train_qlora")
# the kernels (torch, bitsandbytes) and QLoRA (transformers.Trainer, peft) load when first used, so that the config
# and the step kinds load without them
__getattr__ = lazy_attributes(__name__, {**{n: "core" for n in _CORE}, **{n: "qlora" for n in _QLORA}})

__all__ = ["QuantizationConfig", *_CORE, *_QLORA]
