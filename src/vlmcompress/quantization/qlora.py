"""QLoRA: LoRA adapters trained on a quantized model to win back what quantization cost.

Quantized weights cannot be trained; small full-precision LoRA matrices beside the attention and MLP Linears can
(Dettmers et al. 2023). The result is kept one of two ways:

* as an adapter: the quantized base in ``folder`` and the adapter in ``folder/lora``:
  ``PeftModel.from_pretrained(CLIPModel.from_pretrained(folder), folder + "/lora")``;
* merged: the base is dequantized, the LoRA product added, and the sum quantized again through ``quantize`` (the
  same from_pretrained path as any quantized checkpoint), so ``CLIPModel.from_pretrained(folder)`` loads it alone.

Training uses ``QLoRATrainer``, a ``transformers.Trainer`` that only overrides ``compute_loss``; its ``loss_fn`` is
pluggable (the model's own contrastive loss by default; a distillation loss slots in the same way).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from transformers import Trainer

from ..adapters import get_adapter
from ..data.collate import ImageTextCollator
from ..errors import VlmcompressError
from ..utils import unwrap_model
from .config import QuantizationConfig
from .core import is_quantized, quantize

ADAPTER_SUBFOLDER = "lora"


def lora_target_modules(model) -> list[str]:
    """Full names of every attention (q, k, v, out; BLIP's cross-attention too) and MLP Linear in the transformer
    layers, asked of the adapter."""
    adapter = get_adapter(model)
    names = {id(m): n for n, m in model.named_modules()}
    targets = []
    for _, _, attn in adapter.head_units():
        targets += [names[id(linear)] for linear in attn.linears()]
    for _, _, mlp in adapter.mlp_units():
        targets += [names[id(linear)] for linear in (*mlp.up, mlp.down)]
    return targets


def prepare_qlora(model, lora_config=None, *, r: int = 8, alpha: int = 16, dropout: float = 0.0,
                  gradient_checkpointing: bool = False):
    """``prepare_model_for_kbit_training`` + LoRA on the attention and MLP Linears of a quantized model."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if not is_quantized(model):
        raise VlmcompressError("QLoRA trains adapters on a quantized model: quantize it first "
                               "(vlmcompress.quantization.quantize), or use plain LoRA on a full-precision model")
    if lora_config is None:
        lora_config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none",
                                 target_modules=lora_target_modules(model))
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    return get_peft_model(model, lora_config)


def check_trainable(model) -> None:
    """Quantized weights take no gradient: point at QLoRA instead of failing inside the optimizer."""
    if model is None or not is_quantized(model):
        return
    has_adapters = hasattr(model, "peft_config") and any(p.requires_grad for p in model.parameters())
    if not has_adapters:
        raise VlmcompressError(
            "the model's weights are bitsandbytes-quantized and cannot be trained directly: train LoRA adapters on it "
            "(QLoRA) with model = vlmcompress.quantization.prepare_qlora(model), or train the full-precision model "
            "and quantize afterwards"
        )


def own_loss_fn(model, inputs):
    """The model family's own objective (CLIP InfoNCE, SigLIP sigmoid, BLIP ITC or captioning LM loss)."""
    adapter = get_adapter(unwrap_model(model))
    return adapter.training_loss(inputs["pixel_values"], inputs["input_ids"], inputs.get("attention_mask"),
                                 inputs.get("labels"))


class QLoRATrainer(Trainer):
    """A Trainer for LoRA adapters on a quantized model; only ``compute_loss`` is overridden.

    ``loss_fn(model, inputs) -> loss`` defaults to the contrastive loss; pass another one (e.g. distillation from the
    full-precision model) without subclassing.
    """

    _tag_names = ["vlmcompress", "qlora"]

    def __init__(self, model=None, *args, loss_fn=None, **kwargs):
        check_trainable(model)
        super().__init__(model, *args, **kwargs)
        self.loss_fn = loss_fn or own_loss_fn

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = self.loss_fn(model, inputs)
        return (loss, {"loss": loss.detach()}) if return_outputs else loss


def train_qlora(quantized, processor, train_dataset, args, *, r: int = 8, alpha: int = 16, dropout: float = 0.0,
                loss_fn=None, callbacks=None):
    """LoRA on ``quantized`` trained on an image/text/label data set; returns (peft model in eval mode, trainer).

    ``args`` is a ``TrainingArguments``; image and caption columns must reach the collator, so
    ``remove_unused_columns`` is turned off.
    """
    args.remove_unused_columns = False
    model = prepare_qlora(quantized, r=r, alpha=alpha, dropout=dropout)
    batches = ImageTextCollator(processor, padding=get_adapter(quantized).text_padding)
    trainer = QLoRATrainer(model=model, args=args, train_dataset=train_dataset, data_collator=batches, loss_fn=loss_fn,
                           callbacks=callbacks)
    trainer.train()
    model.eval()
    return model, trainer


def qlora_step(peft_model, *, max_steps: int, kept: str, loss: str = "contrastive") -> dict:
    """The ``compression_report.json`` step of a QLoRA run (see ``vlmcompress.report``)."""
    config = peft_model.peft_config["default"]
    return {
        "method": "qlora",
        "r": config.r,
        "alpha": config.lora_alpha,
        "dropout": config.lora_dropout,
        "adapted_linears": sum(1 for m in peft_model.modules() if hasattr(m, "lora_A") and hasattr(m, "base_layer")),
        "trainable_params": sum(p.numel() for p in peft_model.parameters() if p.requires_grad),
        "max_steps": max_steps,
        "loss": loss,
        "kept": kept,
    }


def save_qlora_adapter(peft_model, folder) -> Path:
    """Write the adapter into ``folder/lora``; the quantized base it was trained on must already be in ``folder``."""
    target = Path(folder) / ADAPTER_SUBFOLDER
    peft_model.save_pretrained(target)
    config_path = target / "adapter_config.json"
    config = json.loads(config_path.read_text())
    # the base is the folder above; a temporary path recorded here would mislead
    config["base_model_name_or_path"] = None
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return target


def load_qlora(folder):
    """The quantized base of ``folder`` with the adapter of ``folder/lora``, and the processor."""
    from peft import PeftModel

    from ..loading import load_checkpoint

    base, processor, path = load_checkpoint(folder)
    adapter = Path(path) / ADAPTER_SUBFOLDER
    if not (adapter / "adapter_config.json").is_file():
        raise VlmcompressError(f"{path} has no {ADAPTER_SUBFOLDER}/adapter_config.json: it holds no QLoRA adapter")
    model = PeftModel.from_pretrained(base, str(adapter))
    model.eval()
    return model, processor


def merge_qlora(base_folder, adapter_folder=None, config: QuantizationConfig | None = None, requantize: bool = True):
    """Dequantize the base, merge the adapter in full precision, quantize again the same way; a quantized model.

    ``config`` defaults to the ``quantization_config.json`` vlmcompress wrote beside the base. ``requantize=False``
    returns the full-precision merge (what the adapter model computes, up to float rounding).
    """
    from peft import PeftModel

    from ..loading import load_checkpoint

    base, _, path = load_checkpoint(base_folder)
    config = config or QuantizationConfig.load(path)
    dtype = next(p.dtype for n, p in base.named_parameters() if p.is_floating_point())
    full = base.dequantize(dtype=dtype)
    merged = PeftModel.from_pretrained(full, str(adapter_folder or Path(path) / ADAPTER_SUBFOLDER)).merge_and_unload()
    if is_quantized(merged):
        raise VlmcompressError("dequantizing the base left quantized layers behind; cannot merge")
    return quantize(merged, config) if requantize else merged


def merge_qlora_model(peft_model, base_folder, config: QuantizationConfig | None = None):
    """``merge_qlora`` for an adapter still in memory (trained on the base saved in ``base_folder``)."""
    with tempfile.TemporaryDirectory(prefix="vlmcompress-lora-") as tmp:
        peft_model.save_pretrained(tmp)
        return merge_qlora(base_folder, tmp, config)
