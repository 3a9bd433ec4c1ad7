"""What the embedded teachers' training recipes share (``recipes/train_teacher.py``, ``recipes/train_blip_teacher.py``):
the auxiliary digit probe, the warm-up/cosine schedule, one optimizer step, and saving the trained teacher through
the one finishing path (folder, evaluation, report, card)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def digit_probe_loss(probe, embeds, labels):
    """Cross-entropy of a linear probe naming the tens (first 10 logits) and units digit (last 10)."""
    logits = probe(embeds)
    return F.cross_entropy(logits[:, :10], labels // 10) + F.cross_entropy(logits[:, 10:], labels % 10)


def caption_tables(tokenizer, max_length: int):
    """Token ids and attention masks of every number's caption in every training template: two tensors of shape
    (numbers, templates, max_length), indexed by (number, template)."""
    from . import digits

    texts = [digits.caption(n, t) for n in range(digits.NUM_CLASSES) for t in digits.TEMPLATES]
    enc = tokenizer(texts, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    shape = (digits.NUM_CLASSES, len(digits.TEMPLATES), -1)
    return enc["input_ids"].view(shape), enc["attention_mask"].view(shape)


def sample_caption_batch(rng, batch_size: int, image_processor, tables, max_shift: int):
    """Fresh training images of random seen numbers, each with a caption from a random template: (pixel_values,
    input_ids, attention_mask, labels)."""
    import numpy as np

    from . import digits
    from .clip_teacher import pixel_values_from_uint8

    ids_table, mask_table = tables
    labels = rng.choice(np.asarray(digits.SEEN_NUMBERS), size=batch_size)
    images = digits.sample_images(labels, rng, split="train", max_shift=max_shift)
    template = torch.from_numpy(rng.integers(len(digits.TEMPLATES), size=batch_size))
    labels_t = torch.from_numpy(labels)
    return (pixel_values_from_uint8(images, image_processor), ids_table[labels_t, template],
            mask_table[labels_t, template], labels_t)


def adamw(model, lr: float, weight_decay: float, extra=()):
    """AdamW (betas 0.9/0.98) with weight decay on matrices only (not norms, embeddings or vectors); ``extra``:
    more parameters without decay (e.g. an auxiliary probe's)."""
    def decays(name, p):
        return p.ndim >= 2 and "norm" not in name.lower() and "embedding" not in name

    decay = [p for n, p in model.named_parameters() if decays(n, p)]
    rest = [p for n, p in model.named_parameters() if not decays(n, p)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": rest + list(extra), "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98), eps=1e-6)


def warmup_cosine(optimizer, warmup_ratio: float, max_steps: int):
    """Linear warm-up over ``warmup_ratio`` of the steps, then cosine decay to 0."""
    warmup = max(1, int(warmup_ratio * max_steps))

    def lr_at(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, max_steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)


def optimizer_step(loss, model, optimizer, scheduler, max_grad_norm):
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()


def param_groups(model, weight_decay, lr, logit_scale_lr_multiplier=1.0):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if name == "logit_scale":
            continue
        if p.ndim < 2 or "norm" in name or "embedding" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "lr": lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": lr},
        {"params": [model.logit_scale], "weight_decay": 0.0, "lr": lr * logit_scale_lr_multiplier},
    ]


def save_and_measure(model, processor, output_dir, eval_images_per_number, step_record, family, name,
                     overwrite: bool = False) -> dict:
    """Save a trained teacher with its processor, measure it on the test split, write its report and card; the folder
    appears whole or not at all. Returns the metrics (also printed as a table)."""
    from ..checkpoint import finish_checkpoint
    from ..evaluation import evaluate_model
    from ..report import format_metrics_table

    model.eval()
    print(f"trained {step_record.get('max_steps')} steps in {step_record['train_seconds']:.0f} s; evaluating", flush=True)
    report = finish_checkpoint(
        model, processor, output_dir, base_model=None, steps=[step_record], model_family=family, model_name=name,
        evaluate=lambda m, folder: evaluate_model(m, processor, images_per_number=eval_images_per_number,
                                                  model_path=folder),
        overwrite=overwrite, overwrite_flag="--overwrite_output_dir")
    print(format_metrics_table({"teacher": report["after"]}))
    return report["after"]
