#!/usr/bin/env python
"""Quantize a CLIP-like model with bitsandbytes and, optionally, win accuracy back with QLoRA.

    python recipes/quantize_clip.py --output_dir outputs/int8 --bits 8
    python recipes/quantize_clip.py --output_dir outputs/nf4-qlora --bits 4 --qlora --max_steps 150 \\
        --per_device_train_batch_size 64 --learning_rate 1e-3
    python recipes/quantize_clip.py --output_dir outputs/nf4-merged --bits 4 --qlora --merge_lora --max_steps 150

The model (default: the embedded teacher) is evaluated, quantized through transformers' ``BitsAndBytesConfig`` (the
adapter decides what stays in full precision), and saved so that ``CLIPModel.from_pretrained(output_dir)`` reloads
it. With ``--qlora`` LoRA adapters on every attention and MLP Linear are trained on the embedded training split,
distilled from the full-precision model (``--qlora_loss distillation``, the default: similarity-matrix KL and
embedding loss through ``DistillationTrainer``) or with the model's own contrastive loss, then kept beside the quantized base in ``output_dir/lora``
(``PeftModel.from_pretrained(CLIPModel.from_pretrained(d), d + "/lora")``) or, with ``--merge_lora``, merged into the
weights (dequantize, add, quantize again). The folder gets ``compression_report.json`` with metrics before and after.
Arguments are ``QuantizeArguments`` plus transformers' ``TrainingArguments`` (used only with ``--qlora``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")  # see FACTS: sleeping torch threads cost ~3.5 ms per op

import shutil  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from transformers import HfArgumentParser, TrainingArguments  # noqa: E402

from vlmcompress.adapters import get_adapter  # noqa: E402
from vlmcompress.cards import write_card  # noqa: E402
from vlmcompress.evaluation import evaluate_model  # noqa: E402
from vlmcompress.io import atomic_output_dir  # noqa: E402
from vlmcompress.loading import load_model  # noqa: E402
from vlmcompress.quantization import QuantizationConfig, quantize, save_quantized  # noqa: E402
from vlmcompress.report import format_metrics_table, new_report, write_report  # noqa: E402


@dataclass
class QuantizeArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "Checkpoint folder or Hub id (default: the embedded teacher)."})
    bits: int = field(default=4, metadata={"help": "8 (LLM.int8) or 4 (nf4/fp4)."})
    quant_type: str = field(default="nf4", metadata={"help": "4-bit data type: nf4 or fp4."})
    double_quant: bool = field(default=False, metadata={"help": "4-bit: quantize the block scales too."})
    compute_dtype: str = field(default="float32", metadata={"help": "4-bit matmul dtype: float32, bfloat16 or float16."})
    towers: str = field(default="", metadata={"help": "Comma-separated towers to quantize (vision, text, text_decoder); default: every tower."})
    skip: list[str] = field(default_factory=list, metadata={"help": "More Linears to keep in full precision (name prefix, regex or suffix); each must match."})
    qlora: bool = field(default=False, metadata={"help": "Train LoRA adapters on the quantized model (QLoRA)."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA input."})
    qlora_loss: str = field(default="distillation", metadata={"choices": ["distillation", "contrastive"], "help": "QLoRA objective: distill the full-precision model into the 4-bit one (similarity KL + embedding loss; token-level KL for a captioner) or the model's own loss (contrastive; captioning for a captioner)."})
    merge_lora: bool = field(default=False, metadata={"help": "Merge the adapter into the weights (dequantize, add, requantize) instead of keeping it."})
    train_images_per_number: int = field(default=100, metadata={"help": "Embedded training images per seen number for QLoRA."})
    eval_images_per_number: int | None = field(default=None, metadata={"help": "Embedded test images per number (default: all 100)."})
    latency_batch_size: int = field(default=32, metadata={"help": "Batch size of the timed forward."})


def distill_qlora(quantized, teacher, processor, train, training_args, args):
    """LoRA on the quantized model trained by DistillationTrainer, the full-precision model as its teacher."""
    from vlmcompress.data.collate import ImageTextCollator
    from vlmcompress.distillation import DistillationConfig, DistillationTrainer
    from vlmcompress.quantization.qlora import prepare_qlora

    training_args.remove_unused_columns = False
    peft_model = prepare_qlora(quantized, r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout)
    collator = ImageTextCollator(processor, padding=get_adapter(quantized).text_padding)
    trainer = DistillationTrainer(model=peft_model, args=training_args, train_dataset=train, data_collator=collator,
                                  teacher=teacher,
                                  distillation_config=DistillationConfig.default_for(get_adapter(quantized).is_captioner))
    trainer.train()
    peft_model.eval()
    return peft_model, trainer


def main(args: QuantizeArguments | None = None, training_args: TrainingArguments | None = None):
    if args is None:
        args, training_args = HfArgumentParser((QuantizeArguments, TrainingArguments)).parse_args_into_dataclasses()
    config = QuantizationConfig(bits=args.bits, quant_type=args.quant_type, double_quant=args.double_quant,
                                compute_dtype=args.compute_dtype, towers=[t for t in args.towers.split(",") if t] or None, skip=list(args.skip))
    config.validate()
    model, processor, path = load_model(args.model_name_or_path)
    eval_kw = dict(images_per_number=args.eval_images_per_number, latency_batch_size=args.latency_batch_size)
    before = evaluate_model(model, processor, model_path=path, **eval_kw)
    quantized = quantize(model, config)
    steps = [quantized.vlmcompress_quantization]
    output_dir = training_args.output_dir
    with atomic_output_dir(output_dir) as tmp:
        if not args.qlora:
            loading = save_quantized(quantized, processor, tmp, config)
            final, final_model = tmp, quantized
        else:
            from vlmcompress.data import digits
            from vlmcompress.quantization.qlora import merge_qlora_model, qlora_step, save_qlora_adapter, train_qlora

            base_dir = tempfile.mkdtemp(prefix="vlmcompress-qlora-base-") if args.merge_lora else tmp
            loading = save_quantized(quantized, processor, base_dir, config)
            train = digits.load_digits_dataset("train", images_per_number=args.train_images_per_number)
            training_args.output_dir = str(tmp / "trainer")  # checkpoints, if asked for, go inside the result
            if args.qlora_loss == "distillation":  # the full-precision model teaches its quantized copy
                peft_model, trainer = distill_qlora(quantized, model, processor, train, training_args, args)
            else:
                peft_model, trainer = train_qlora(quantized, processor, train, training_args, r=args.lora_r,
                                                  alpha=args.lora_alpha, dropout=args.lora_dropout)
            kept = "merged" if args.merge_lora else "adapter"
            step = qlora_step(peft_model, max_steps=trainer.state.global_step, kept=kept, loss=args.qlora_loss)
            step["loss_log"] = [[h["step"], h["loss"]] for h in trainer.state.log_history if "loss" in h]
            steps.append(step)
            if not any((tmp / "trainer").glob("checkpoint-*")):
                shutil.rmtree(tmp / "trainer", ignore_errors=True)
            if args.merge_lora:
                final_model = merge_qlora_model(peft_model, base_dir, config)
                shutil.rmtree(base_dir, ignore_errors=True)
                loading = save_quantized(final_model, processor, tmp, config)
            else:
                save_qlora_adapter(peft_model, tmp)
                final_model = peft_model.get_base_model()
                loading = {**loading, "adapter": "lora"}
            final = tmp
        after = evaluate_model(final_model, processor, model_path=final, **eval_kw)
        report = new_report(base_model=str(path), model_family=get_adapter(model).family, steps=steps, before=before,
                            after=after)
        report["loading"] = loading
        write_report(report, tmp)
        write_card(tmp, report)
    print(format_metrics_table({"before": before, "after": after}))
    print(f"wrote {output_dir}")
    return report


if __name__ == "__main__":
    main()
