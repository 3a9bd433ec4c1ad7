"""The run behind ``recipes/quantize_clip.py``: quantize with bitsandbytes and, optionally, win accuracy back with
QLoRA (LoRA adapters on the quantized model, distilled from the full-precision one or trained on the model's own
loss), then finish the checkpoint. Above the method packages (it uses quantization and distillation), as the CLI is.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainingArguments

from ..adapters import get_adapter
from ..checkpoint import finish_checkpoint
from ..errors import VlmcompressError
from ..evaluation import evaluate_model
from ..io import check_output_dir
from ..loading import load_checkpoint
from ..quantization import QuantizationConfig, quantization_step, quantize, save_quantized
from ..report import LATENCY_BATCH_SIZE, format_metrics_table
from ..utils import hf_argument_parser


@dataclass
class QuantizeArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "Checkpoint folder or Hub id (default: the embedded teacher)."})
    bits: int = field(default=4, metadata={"help": "8 (LLM.int8) or 4 (nf4/fp4)."})
    quant_type: str | None = field(default=QuantizationConfig.quant_type, metadata={"help": "4-bit data type: nf4 (default) or fp4."})
    double_quant: bool = field(default=QuantizationConfig.double_quant, metadata={"help": "4-bit: quantize the block scales too."})
    compute_dtype: str = field(default=QuantizationConfig.compute_dtype, metadata={"help": "4-bit matmul dtype: float32, bfloat16 or float16."})
    dtype: str | None = field(default=QuantizationConfig.dtype, metadata={"help": "dtype of what stays unquantized (embeddings, LayerNorms, Linears kept in full precision): float32, bfloat16 or float16 (default: the model's)."})
    towers: str = field(default="", metadata={"help": "Comma-separated towers to quantize (vision, text, text_decoder); default: every tower."})
    skip: list[str] = field(default_factory=list, metadata={"help": "More Linears to keep in full precision (name prefix, regex or suffix); each must match."})
    qlora: bool = field(default=False, metadata={"help": "Train LoRA adapters on the quantized model (QLoRA)."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA input."})
    qlora_loss: str = field(default="distillation", metadata={"choices": ["distillation", "contrastive"], "help": "QLoRA objective: distill the full-precision model into the 4-bit one (the distill command's default loss: similarity KL + the model's own contrastive loss; token-level KL for a captioner) or the model's own loss (contrastive; captioning for a captioner)."})
    merge_lora: bool = field(default=False, metadata={"help": "Merge the adapter into the weights (dequantize, add, requantize) instead of keeping it."})
    train_images_per_number: int = field(default=100, metadata={"help": "Embedded training images per seen number for QLoRA."})
    eval_images_per_number: int | None = field(default=None, metadata={"help": "Embedded test images per number (default: all 100)."})
    latency_batch_size: int = field(default=LATENCY_BATCH_SIZE, metadata={"help": "Batch size of the timed forward."})


@dataclass
class QuantizeTrainingArguments(TrainingArguments):
    """TrainingArguments (used only with --qlora) with an output folder under outputs/ and the overwrite rule."""

    output_dir: str = field(default="outputs/quantize_clip", metadata={"help": "Where the quantized model, its processor, compression_report.json and card go: a new or empty folder, or an earlier vlmcompress output with --overwrite_output_dir."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace output_dir when it holds an earlier vlmcompress result (never a folder holding anything else)."})


def distill_qlora(quantized, teacher, processor, train, training_args, args):
    """LoRA on the quantized model trained by DistillationTrainer, the full-precision model as its teacher."""
    from ..data.collate import ImageTextCollator
    from ..distillation import DistillationConfig, DistillationTrainer
    from ..quantization.qlora import prepare_qlora

    training_args.remove_unused_columns = False
    peft_model = prepare_qlora(quantized, r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout)
    collator = ImageTextCollator(processor, padding=get_adapter(quantized).text_padding)
    trainer = DistillationTrainer(model=peft_model, args=training_args, train_dataset=train, data_collator=collator,
                                  teacher=teacher,
                                  distillation_config=DistillationConfig.default_for(get_adapter(quantized).is_captioner))
    trainer.train()
    peft_model.eval()
    return peft_model, trainer


def quantize_and_recover(args: QuantizeArguments, training_args: TrainingArguments) -> dict:
    """Evaluate, quantize, optionally train LoRA adapters (QLoRA), finish the checkpoint; returns its report."""
    output_dir = training_args.output_dir
    check_output_dir(output_dir, overwrite=getattr(training_args, "overwrite_output_dir", False),
                     flag="--overwrite_output_dir")
    config = QuantizationConfig(bits=args.bits, quant_type=args.quant_type, double_quant=args.double_quant,
                                compute_dtype=args.compute_dtype, dtype=args.dtype,
                                towers=[t for t in args.towers.split(",") if t] or None,
                                skip=list(args.skip))
    model, processor, path = load_checkpoint(args.model_name_or_path, torch_for="quantization")
    eval_kw = dict(images_per_number=args.eval_images_per_number, latency_batch_size=args.latency_batch_size)
    before = evaluate_model(model, processor, model_path=path, **eval_kw)
    quantized = quantize(model, config)
    steps = [quantization_step(quantized)]
    final_model, save = quantized, (lambda m, p, folder: save_quantized(m, p, folder, config))
    scratch = tempfile.mkdtemp(prefix="vlmcompress-qlora-")  # the Trainer's own files never land in the result
    try:
        if args.qlora:
            from ..embedded import digits
            from ..quantization.qlora import merge_qlora_model, qlora_step, save_qlora_adapter, train_qlora

            base_dir = Path(scratch) / "base"  # the quantized base as it is before LoRA layers go into it
            base_loading = save_quantized(quantized, processor, base_dir, config)
            train = digits.load_digits_dataset("train", images_per_number=args.train_images_per_number)
            training_args.output_dir = str(Path(scratch) / "trainer")
            if args.qlora_loss == "distillation":  # the full-precision model teaches its quantized copy
                peft_model, trainer = distill_qlora(quantized, model, processor, train, training_args, args)
            else:
                peft_model, trainer = train_qlora(quantized, processor, train, training_args, r=args.lora_r,
                                                  alpha=args.lora_alpha, dropout=args.lora_dropout)
            step = qlora_step(peft_model, max_steps=trainer.state.global_step,
                              kept="merged" if args.merge_lora else "adapter", loss=args.qlora_loss)
            step["training"] = {"loss_log": [{"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history
                                             if "loss" in h], "global_step": trainer.state.global_step}
            steps.append(step)
            if args.merge_lora:
                final_model = merge_qlora_model(peft_model, base_dir, config)
            else:
                final_model = peft_model.get_base_model()

                def save(m, p, folder):  # the quantized base, and the adapter beside it in folder/lora
                    for item in base_dir.iterdir():
                        shutil.copy2(item, Path(folder) / item.name)
                    save_qlora_adapter(peft_model, folder)
                    return {**base_loading, "adapter": "lora"}
        report = finish_checkpoint(
            final_model, processor, output_dir, base_model=path, steps=steps, before=before, save=save,
            evaluate=lambda m, folder: evaluate_model(m, processor, model_path=folder, **eval_kw), latency_base=model,
            latency_batch_size=args.latency_batch_size, overwrite=getattr(training_args, "overwrite_output_dir", False),
            overwrite_flag="--overwrite_output_dir")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(format_metrics_table({"before": before, "after": report["after"]}))
    print(f"wrote {output_dir}")
    return report


def run_quantization(argv=None, prog: str = "quantize_clip") -> int:
    """Parse (``QuantizeArguments`` + ``QuantizeTrainingArguments``) and run; a VlmcompressError is one line, exit 1."""
    from ..utils import set_verbosity

    set_verbosity(0)
    try:
        args, training_args = hf_argument_parser((QuantizeArguments, QuantizeTrainingArguments), prog=prog).parse_args_into_dataclasses(
            args=argv)
        quantize_and_recover(args, training_args)
    except VlmcompressError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    return 0

