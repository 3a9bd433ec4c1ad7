#!/usr/bin/env python
"""Quantize a CLIP-like model with bitsandbytes and, optionally, win accuracy back with QLoRA.

    python recipes/quantize_clip.py --output_dir outputs/int8 --bits 8
    python recipes/quantize_clip.py --output_dir outputs/nf4-qlora --bits 4 --qlora --max_steps 150 \\
        --per_device_train_batch_size 64 --learning_rate 1e-3
    python recipes/quantize_clip.py --output_dir outputs/nf4-merged --bits 4 --qlora --merge_lora --max_steps 150

The model (default: the embedded teacher) is evaluated, quantized through transformers' ``BitsAndBytesConfig`` (the
adapter decides what stays in full precision), and saved so that ``CLIPModel.from_pretrained(output_dir)`` reloads
it. With ``--qlora`` LoRA adapters on every attention and MLP Linear are trained on the embedded training split,
distilled from the full-precision model (``--qlora_loss distillation``, the default: ``DistillationConfig``'s default
loss through ``DistillationTrainer``) or with the model's own contrastive loss, then kept beside the quantized base in ``output_dir/lora``
(``PeftModel.from_pretrained(CLIPModel.from_pretrained(d), d + "/lora")``) or, with ``--merge_lora``, merged into the
weights (dequantize, add, quantize again). The folder gets ``compression_report.json`` with metrics before and after.
Arguments are ``QuantizeArguments`` plus ``QuantizeTrainingArguments`` (transformers' ``TrainingArguments``, used only
with ``--qlora``) from ``vlmcompress.workflows.quantize``.
"""

import sys

if "--qlora" in sys.argv:  # QLoRA trains: spin OpenMP threads in this process (before torch is imported)
    from vlmcompress.threads import use_training_thread_policy

    use_training_thread_policy()

from vlmcompress.workflows.quantize import (QuantizeArguments, QuantizeTrainingArguments,  # noqa: E402,F401
                                            quantize_and_recover, run_quantization)


def main(args: QuantizeArguments | None = None, training_args: QuantizeTrainingArguments | None = None):
    """With arguments: run and return the report (errors raise); without: parse sys.argv, one-line errors."""
    if args is None:
        return run_quantization()
    return quantize_and_recover(args, training_args)


if __name__ == "__main__":
    sys.exit(main())
