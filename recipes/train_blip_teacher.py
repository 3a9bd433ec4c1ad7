#!/usr/bin/env python
"""Train the embedded BLIP teacher: a BlipForConditionalGeneration captioner from scratch on two-digit MNIST numbers.

    python recipes/train_blip_teacher.py --output_dir outputs/blip-teacher
    python recipes/train_blip_teacher.py --output_dir src/vlmcompress/assets/blip-digits-captioner   # the shipped one

Every step draws fresh images (random training digit images, shifts of at most 2 px) of numbers seen in training,
each with a caption from a random template; the loss is the decoder's next-token cross-entropy. As for the CLIP
teacher, an auxiliary linear probe must read the tens and units digit off the vision tower's pooled output (thrown
away afterwards): a captioner from scratch otherwise spends its first hundreds of steps learning the templates
before it looks at the image. At the end the model is evaluated on the test split (how often its greedy caption names
the right number, seen and held-out numbers separately) and saved with its processor and ``compression_report.json``.
"""

from __future__ import annotations

from vlmcompress.threads import use_training_thread_policy

use_training_thread_policy()  # a training process: spin OpenMP threads (before torch is imported)

import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import BlipForConditionalGeneration, HfArgumentParser  # noqa: E402

from vlmcompress.adapters import get_adapter  # noqa: E402
from vlmcompress.embedded.blip_captioner import BLIP_TEACHER_NAME, TEXT_MAX_LENGTH, blip_config, build_blip_processor  # noqa: E402
from vlmcompress.embedded.training import (adamw, caption_tables, digit_probe_loss, optimizer_step,  # noqa: E402
                                           sample_caption_batch, save_and_measure, warmup_cosine)
from vlmcompress.io import check_output_dir  # noqa: E402
from vlmcompress.utils import progress  # noqa: E402


@dataclass
class BlipTeacherArguments:
    output_dir: str = field(default="outputs/blip-teacher", metadata={"help": "Where the captioner, its processor and report go."})
    seed: int = field(default=0, metadata={"help": "Seed for weights, sampling and augmentation."})
    max_steps: int = field(default=2400, metadata={"help": "Optimizer steps."})
    batch_size: int = field(default=96, metadata={"help": "Image-caption pairs per step."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate (AdamW), linear warm-up then cosine."})
    warmup_ratio: float = field(default=0.04, metadata={"help": "Warm-up share of steps."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay on matrices."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping."})
    max_shift: int = field(default=2, metadata={"help": "Random shift of each digit in pixels."})
    layers: int = field(default=4, metadata={"help": "Vision layers."})
    text_layers: int = field(default=3, metadata={"help": "Decoder layers (each has self-attention, cross-attention, MLP)."})
    hidden_size: int = field(default=128, metadata={"help": "Width of both towers (MLP is 4x)."})
    heads: int = field(default=4, metadata={"help": "Attention heads per layer."})
    digit_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the auxiliary digit probe on the vision tower (0: off)."})
    eval_images_per_number: int = field(default=50, metadata={"help": "Test images per number for the final evaluation."})
    threads: int = field(default=0, metadata={"help": "torch threads (0: leave torch's default)."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace output_dir when it holds an earlier vlmcompress result."})


def main(args: BlipTeacherArguments | None = None):
    if args is None:
        (args,) = HfArgumentParser(BlipTeacherArguments).parse_args_into_dataclasses()
    check_output_dir(args.output_dir, overwrite=args.overwrite_output_dir, flag="--overwrite_output_dir")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    processor = build_blip_processor()
    tokenizer, image_processor = processor.tokenizer, processor.image_processor
    config = blip_config(tokenizer, layers=args.layers, text_layers=args.text_layers, hidden=args.hidden_size,
                         heads=args.heads)
    model = BlipForConditionalGeneration(config)
    adapter = get_adapter(model)
    model.train()

    tables = caption_tables(tokenizer, TEXT_MAX_LENGTH)
    probe = torch.nn.Linear(config.vision_config.hidden_size, 20)
    optimizer = adamw(model, args.learning_rate, args.weight_decay, extra=probe.parameters())
    scheduler = warmup_cosine(optimizer, args.warmup_ratio, args.max_steps)
    log, start = [], time.time()
    bar = progress(range(args.max_steps), desc="training BLIP teacher", unit="step")
    for step in bar:
        pixel_values, ids, mask, labels_t = sample_caption_batch(rng, args.batch_size, image_processor, tables,
                                                                 args.max_shift)
        input_ids, lm_labels = adapter.caption_inputs(ids, mask)
        out = model(pixel_values=pixel_values, input_ids=input_ids, attention_mask=mask, labels=lm_labels,
                    output_hidden_states=False)
        lm_loss = out.loss
        digit_loss = torch.zeros(())
        if args.digit_loss_weight:
            digit_loss = digit_probe_loss(probe, out.last_hidden_state[:, 0], labels_t)
        loss = lm_loss + args.digit_loss_weight * digit_loss
        optimizer_step(loss, model, optimizer, scheduler, args.max_grad_norm)
        if step % 25 == 0 or step == args.max_steps - 1:
            log.append({"step": step, "loss": round(loss.item(), 4), "lm_loss": round(lm_loss.item(), 4),
                        "digit_loss": round(digit_loss.item(), 4), "lr": scheduler.get_last_lr()[0],
                        "elapsed_s": round(time.time() - start, 1)})
            bar.set_postfix(lm=f"{lm_loss.item():.3f}", digits=f"{digit_loss.item():.3f}")
    train_seconds = time.time() - start

    step_record = {"method": "train_from_scratch", "train_seconds": round(train_seconds, 1),
                   "training": {"loss_log": log, "train_runtime_s": round(train_seconds, 1), "global_step": args.max_steps}}
    step_record.update({k: v for k, v in vars(args).items() if k not in ("output_dir", "threads", "overwrite_output_dir")})
    metrics = save_and_measure(model, processor, args.output_dir, args.eval_images_per_number, step_record, "blip",
                               BLIP_TEACHER_NAME, overwrite=args.overwrite_output_dir)
    print("captions:", metrics.get("caption_examples"))
    print(f"trained {args.max_steps} steps in {train_seconds:.0f} s; saved to {args.output_dir}")
    return metrics


if __name__ == "__main__":
    main()
