#!/usr/bin/env python
"""Train a BLIP retrieval teacher on the digits: a BlipForImageTextRetrieval that inherits the embedded captioner.

    python recipes/train_blip_retrieval_teacher.py --output_dir outputs/blip-retrieval-teacher

The retrieval model is built from the embedded BLIP captioner's config: its vision tower is the captioner's (already
trained on the digits), its text encoder starts from the captioner's decoder (the same BERT layers, self-attention,
cross-attention to the image and MLP; used bidirectionally here), and the ITC projections and the ITM head start
random. It is trained with BLIP's own retrieval objective through the model adapter (``training_loss``): the
image-text contrastive loss (ITC, every pair showing the same number is a positive) plus image-text matching (ITM:
each image with its caption and with the next row's, a negative unless it names the same number). Every step draws
fresh images of seen numbers with a caption from a random template. At the end it is evaluated zero-shot on the test
split through its ITC embeddings (seen and held-out numbers) and saved with its processor and
``compression_report.json``. ``benchmarks/run.py --suite blip_retrieval`` distils from it (ITC and ITM terms).
"""

from __future__ import annotations

from vlmcompress.threads import use_training_thread_policy

use_training_thread_policy()  # a training process: spin OpenMP threads (before torch is imported)

import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import BlipForImageTextRetrieval, HfArgumentParser  # noqa: E402

from vlmcompress.adapters import get_adapter  # noqa: E402
from vlmcompress.embedded.blip_captioner import TEXT_MAX_LENGTH, blip_teacher_path  # noqa: E402
from vlmcompress.embedded.training import (adamw, caption_tables, optimizer_step, sample_caption_batch,  # noqa: E402
                                           save_and_measure, warmup_cosine)
from vlmcompress.io import check_output_dir  # noqa: E402
from vlmcompress.loading import load_checkpoint  # noqa: E402
from vlmcompress.utils import progress  # noqa: E402

RETRIEVAL_TEACHER_NAME = "vlmcompress/blip-digits-retrieval"


@dataclass
class RetrievalTeacherArguments:
    output_dir: str = field(default="outputs/blip-retrieval-teacher", metadata={"help": "Where the retrieval model, its processor and report go."})
    captioner: str | None = field(default=None, metadata={"help": "The BLIP captioner it inherits its vision tower and text layers from (default: the embedded one)."})
    seed: int = field(default=0, metadata={"help": "Seed for the new heads, sampling and augmentation."})
    max_steps: int = field(default=600, metadata={"help": "Optimizer steps."})
    batch_size: int = field(default=64, metadata={"help": "Image-caption pairs per step."})
    learning_rate: float = field(default=5e-4, metadata={"help": "Peak learning rate (AdamW), linear warm-up then cosine."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Warm-up share of steps."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay on matrices."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping."})
    max_shift: int = field(default=2, metadata={"help": "Random shift of each digit in pixels."})
    eval_images_per_number: int = field(default=100, metadata={"help": "Test images per number for the final evaluation."})
    threads: int = field(default=0, metadata={"help": "torch threads (0: leave torch's default)."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace output_dir when it holds an earlier vlmcompress result."})


def retrieval_from_captioner(captioner) -> BlipForImageTextRetrieval:
    """A BlipForImageTextRetrieval of the captioner's config holding its vision tower and, as the text encoder, its
    decoder's BERT layers; the ITC projections and the ITM head are new."""
    model = BlipForImageTextRetrieval(captioner.config)
    state = {}
    for name, value in captioner.state_dict().items():
        if name.startswith("vision_model."):
            state[name] = value
        elif name.startswith("text_decoder.bert."):
            state["text_encoder." + name[len("text_decoder.bert."):]] = value
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in state and not k.startswith(("vision_proj", "text_proj", "itm_head"))]
    if missing:
        raise SystemExit(f"the captioner does not fill {len(missing)} retrieval weights (e.g. {missing[0]}): "
                         "pass a BlipForConditionalGeneration folder as --captioner")
    model.load_state_dict(state, strict=False)
    return model


def main(args: RetrievalTeacherArguments | None = None):
    if args is None:
        (args,) = HfArgumentParser(RetrievalTeacherArguments).parse_args_into_dataclasses()
    check_output_dir(args.output_dir, overwrite=args.overwrite_output_dir, flag="--overwrite_output_dir")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    captioner_path = args.captioner or blip_teacher_path()
    captioner, processor, _ = load_checkpoint(captioner_path)
    model = retrieval_from_captioner(captioner)
    del captioner
    adapter = get_adapter(model)
    model.train()
    tokenizer, image_processor = processor.tokenizer, processor.image_processor

    tables = caption_tables(tokenizer, TEXT_MAX_LENGTH)
    optimizer = adamw(model, args.learning_rate, args.weight_decay)
    scheduler = warmup_cosine(optimizer, args.warmup_ratio, args.max_steps)
    log, start = [], time.time()
    bar = progress(range(args.max_steps), desc="training BLIP retrieval teacher", unit="step")
    for step in bar:
        pixel_values, input_ids, attention_mask, labels = sample_caption_batch(rng, args.batch_size, image_processor,
                                                                               tables, args.max_shift)
        loss = adapter.training_loss(pixel_values, input_ids, attention_mask, labels=labels)
        optimizer_step(loss, model, optimizer, scheduler, args.max_grad_norm)
        if step % 25 == 0 or step == args.max_steps - 1:
            log.append({"step": step, "loss": round(loss.item(), 4), "lr": scheduler.get_last_lr()[0],
                        "elapsed_s": round(time.time() - start, 1)})
            bar.set_postfix(loss=f"{loss.item():.3f}")
    train_seconds = time.time() - start

    step_record = {"method": "train_retrieval_from_captioner", "train_seconds": round(train_seconds, 1),
                   "captioner": str(captioner_path), "objective": "ITC + ITM (the adapter's training_loss)",
                   "training": {"loss_log": log, "train_runtime_s": round(train_seconds, 1), "global_step": args.max_steps}}
    step_record.update({k: v for k, v in vars(args).items()
                        if k not in ("output_dir", "threads", "overwrite_output_dir", "captioner")})
    metrics = save_and_measure(model, processor, args.output_dir, args.eval_images_per_number, step_record, "blip",
                               RETRIEVAL_TEACHER_NAME, overwrite=args.overwrite_output_dir)
    print(f"trained {args.max_steps} steps in {train_seconds:.0f} s; saved to {args.output_dir}")
    return metrics


if __name__ == "__main__":
    main()
