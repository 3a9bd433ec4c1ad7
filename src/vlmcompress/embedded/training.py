"""Training the embedded teachers from scratch: the CLIP teacher (``train_clip_teacher``), the BLIP captioner
(``train_blip_teacher``) and a BLIP retrieval teacher inherited from the captioner (``train_blip_retrieval_teacher``),
each with its arguments dataclass; ``recipes/train_teacher.py``, ``recipes/train_blip_teacher.py`` and
``recipes/train_blip_retrieval_teacher.py`` are their command lines. What they share: the auxiliary digit probe, the
warm-up/cosine schedule, one optimizer step, and saving the trained teacher through the one finishing path (folder,
evaluation, report, card).

A training process should spin its OpenMP threads (``vlmcompress.threads.use_training_thread_policy`` before torch is
imported): the recipes do; importing this module does not."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import VlmcompressError


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


@dataclass
class TeacherArguments:
    output_dir: str = field(default="outputs/teacher", metadata={"help": "Where the trained CLIPModel, its processor and report go."})
    seed: int = field(default=0, metadata={"help": "Seed for weights, sampling and augmentation."})
    max_steps: int = field(default=1400, metadata={"help": "Optimizer steps."})
    batch_size: int = field(default=128, metadata={"help": "Image-caption pairs per step."})
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak learning rate (AdamW, betas 0.9/0.98)."})
    warmup_ratio: float = field(default=0.04, metadata={"help": "Linear warm-up share of steps, then cosine decay."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay (none on biases, norms, embeddings of position/scale)."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping."})
    max_shift: int = field(default=2, metadata={"help": "Random shift of each digit in pixels (larger stalls learning)."})
    layers: int = field(default=4, metadata={"help": "Layers per tower."})
    hidden_size: int = field(default=128, metadata={"help": "Width of both towers (MLP is 4x)."})
    heads: int = field(default=4, metadata={"help": "Attention heads per layer."})
    eval_images_per_number: int = field(default=100, metadata={"help": "Test images per number for the final evaluation."})
    logit_scale_lr_multiplier: float = field(default=1.0, metadata={"help": "Learning-rate multiplier for the learned temperature."})
    digit_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the auxiliary loss that asks both embeddings to name the tens and units digit through linear probes (discarded after training; 0 turns it off). Contrastive learning from scratch starts slowly; this gets it going."})
    threads: int = field(default=0, metadata={"help": "torch threads (0: leave torch's default)."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace output_dir when it holds an earlier vlmcompress result."})


def train_clip_teacher(args: TeacherArguments) -> dict:
    """Train the embedded CLIP teacher (``recipes/train_teacher.py``); returns its test-split metrics."""
    from transformers import CLIPModel

    from ..io import check_output_dir
    from ..objectives import contrastive_loss
    from ..utils import progress
    from . import digits
    from .clip_teacher import TEACHER_NAME, build_processor, pixel_values_from_uint8, teacher_config

    check_output_dir(args.output_dir, overwrite=args.overwrite_output_dir, flag="--overwrite_output_dir")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    processor = build_processor()
    tokenizer, image_processor = processor.tokenizer, processor.image_processor
    config = teacher_config(tokenizer, layers=args.layers, hidden=args.hidden_size, heads=args.heads)
    model = CLIPModel(config)
    model.train()

    # every caption of every seen number, tokenized once: table[number, template] -> ids
    seen = np.asarray(digits.SEEN_NUMBERS)
    n_templates = len(digits.TEMPLATES)
    texts = [digits.caption(n, t) for n in range(digits.NUM_CLASSES) for t in digits.TEMPLATES]
    enc = tokenizer(texts, padding="max_length", max_length=config.text_config.max_position_embeddings,
                    truncation=True, return_tensors="pt")
    ids_table = enc["input_ids"].view(digits.NUM_CLASSES, n_templates, -1)
    mask_table = enc["attention_mask"].view(digits.NUM_CLASSES, n_templates, -1)

    # auxiliary linear probes: tens digit and units digit from each embedding (never saved with the model)
    probes = torch.nn.ModuleDict({
        "image": torch.nn.Linear(config.projection_dim, 20), "text": torch.nn.Linear(config.projection_dim, 20),
    })
    groups = param_groups(model, args.weight_decay, args.learning_rate, args.logit_scale_lr_multiplier)
    groups.append({"params": list(probes.parameters()), "weight_decay": 0.0, "lr": args.learning_rate})
    optimizer = torch.optim.AdamW(groups, lr=args.learning_rate, betas=(0.9, 0.98), eps=1e-6)
    scheduler = warmup_cosine(optimizer, args.warmup_ratio, args.max_steps)
    log = []
    start = time.time()
    bar = progress(range(args.max_steps), desc="training teacher", unit="step")
    for step in bar:
        labels = rng.choice(seen, size=args.batch_size)
        images = digits.sample_images(labels, rng, split="train", max_shift=args.max_shift)
        template = rng.integers(n_templates, size=args.batch_size)
        labels_t = torch.from_numpy(labels)
        input_ids = ids_table[labels_t, torch.from_numpy(template)]
        attention_mask = mask_table[labels_t, torch.from_numpy(template)]
        pixel_values = pixel_values_from_uint8(images, image_processor)

        out = model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values)
        # CLIPOutput embeds are already normalized; the loss renormalizes harmlessly
        clip_loss = contrastive_loss(out.image_embeds, out.text_embeds, model.logit_scale, labels=labels_t)
        digit_loss = torch.zeros(())
        if args.digit_loss_weight:
            digit_loss = sum(digit_probe_loss(probes[k], emb, labels_t)
                             for k, emb in (("image", out.image_embeds), ("text", out.text_embeds)))
        loss = clip_loss + args.digit_loss_weight * digit_loss
        optimizer_step(loss, model, optimizer, scheduler, args.max_grad_norm)
        if step % 25 == 0 or step == args.max_steps - 1:
            log.append({"step": step, "loss": round(loss.item(), 4), "contrastive_loss": round(clip_loss.item(), 4),
                        "digit_loss": round(digit_loss.item(), 4), "lr": scheduler.get_last_lr()[0],
                        "elapsed_s": round(time.time() - start, 1)})
            bar.set_postfix(clip=f"{clip_loss.item():.3f}", digits=f"{digit_loss.item():.3f}")
    train_seconds = time.time() - start

    step_record = {
        "method": "train_from_scratch",
        "seed": args.seed, "max_steps": args.max_steps, "batch_size": args.batch_size,
        "learning_rate": args.learning_rate, "warmup_ratio": args.warmup_ratio,
        "weight_decay": args.weight_decay, "max_grad_norm": args.max_grad_norm,
        "max_shift": args.max_shift, "digit_loss_weight": args.digit_loss_weight,
        "logit_scale_lr_multiplier": args.logit_scale_lr_multiplier, "train_seconds": round(train_seconds, 1),
        "training": {"loss_log": log, "train_runtime_s": round(train_seconds, 1), "global_step": args.max_steps},
    }
    metrics_on_disk = save_and_measure(model, processor, args.output_dir, args.eval_images_per_number, step_record,
                                       "clip", TEACHER_NAME, overwrite=args.overwrite_output_dir)
    print(f"trained {args.max_steps} steps in {train_seconds:.0f} s; saved to {args.output_dir}")
    return metrics_on_disk


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


def train_blip_teacher(args: BlipTeacherArguments) -> dict:
    """Train the embedded BLIP captioner (``recipes/train_blip_teacher.py``); returns its test-split metrics."""
    from transformers import BlipForConditionalGeneration

    from ..adapters import get_adapter
    from ..io import check_output_dir
    from ..utils import progress
    from .blip_captioner import BLIP_TEACHER_NAME, TEXT_MAX_LENGTH, blip_config, build_blip_processor

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


def retrieval_from_captioner(captioner):
    """A BlipForImageTextRetrieval of the captioner's config holding its vision tower and, as the text encoder, its
    decoder's BERT layers; the ITC projections and the ITM head are new."""
    from transformers import BlipForImageTextRetrieval

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
        raise VlmcompressError(f"the captioner does not fill {len(missing)} retrieval weights (e.g. {missing[0]}): "
                         "pass a BlipForConditionalGeneration folder as --captioner")
    model.load_state_dict(state, strict=False)
    return model


def train_blip_retrieval_teacher(args: RetrievalTeacherArguments) -> dict:
    """Train a BLIP retrieval teacher from the embedded captioner (``recipes/train_blip_retrieval_teacher.py``); returns
    its test-split metrics."""
    from ..adapters import get_adapter
    from ..io import check_output_dir
    from ..loading import load_checkpoint
    from ..utils import progress
    from .blip_captioner import TEXT_MAX_LENGTH, blip_teacher_path

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
