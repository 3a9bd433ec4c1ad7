"""The distillation run behind ``vlmcompress distill`` and ``recipes/distill_clip.py`` / ``recipes/distill_blip.py``:
arguments (HfArgumentParser dataclasses, transformers-examples style), student building, data, training and the
finished checkpoint.

It sits above the method packages (it builds an inherited student with the pruning tools and trains it with the
distillation ones), as the CLI does; the methods themselves never import each other.

The student is built one of three ways: inherited from the teacher (default: every 2nd layer of each tower and 25% of
every MLP's neurons removed by Taylor importance, the TinyCLIP/DistilBERT recipe), from a smaller config
(``--student_config``, random init), or from a checkpoint (``--student``, e.g. a pruned folder). It is trained with the
similarity-matrix KL (T annealed 3 -> 1) and the student's own contrastive loss by default (``DistillationConfig``),
then teacher and student are evaluated on the same test set and the student is written to ``--output_dir`` by
``finish_checkpoint``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import TrainingArguments

from ..adapters import get_adapter
from ..cards.callback import ModelCardCallback
from ..checkpoint import finish_checkpoint
from ..data.collate import ImageTextCollator
from ..data.sources import CAPTION_COLUMN, IMAGE_COLUMN, LABEL_COLUMN, open_dataset, standard_columns
from ..data.streaming import is_streamed, shard_files
from ..distillation import DistillationConfig, DistillationTrainer
from ..distillation.cache import cache_teacher_outputs, use_teacher_cache
from ..errors import VlmcompressError
from ..evaluation import embedded_images_per_number, evaluate_model
from ..evaluation.harness import count_parameters
from ..hub import push_if_requested, without_push
from ..io import check_output_dir
from ..loading import load_checkpoint
from ..pruning.config import SCOPES, PruningConfig, prune_model
from ..report import (EVAL_SPLIT, EVAL_TASKS, LATENCY_BATCH_SIZE, LATENCY_ROUNDS, ON_BAD_SAMPLE, TEMPLATES,
                      format_metrics_table)
from ..threads import set_threads
from ..utils import hf_argument_parser


@dataclass
class StudentArguments:
    teacher: str | None = field(default=None, metadata={"help": "Teacher: save_pretrained folder or Hub id (default: the embedded teacher)."})
    student: str | None = field(default=None, metadata={"help": "Start from this checkpoint (e.g. a pruned folder) instead of building a student."})
    student_config: str | None = field(default=None, metadata={"help": 'Random-init student from the teacher config with these overrides (JSON or JSON file), e.g. {"vision_config": {"num_hidden_layers": 2}}.'})
    keep_every: int = field(default=2, metadata={"help": "Inherited student: keep teacher layers 0, k, 2k, ... of each tower (1 keeps all)."})
    head_ratio: float = field(default=0.0, metadata={"help": "Inherited student: fraction of attention heads removed (ranked as --head_scope says)."})
    mlp_ratio: float = field(default=0.25, metadata={"help": "Inherited student: fraction of MLP neurons removed in every layer."})
    hidden_ratio: float = field(default=0.0, metadata={"help": "Inherited student: fraction of each tower's hidden width removed, with as many heads per layer (head_dim kept): a narrow student of the stock shape, TinyCLIP-style (CLIP; not with --head_ratio)."})
    importance: str = field(default=PruningConfig.importance, metadata={"help": "Inherited student: ranking of heads/neurons: ablation (heads removed one at a time, scored by the output KL; neurons by taylor), fisher (empirical Fisher of per-sample gates), taylor, magnitude or random."})
    towers: str = field(default="vision,text", metadata={"help": "Towers the inherited student shrinks."})
    head_scope: str = field(default=PruningConfig.head_scope, metadata={"help": f"Inherited student: rank heads within each layer (per_layer) or across the layers of a tower (global); default: {PruningConfig.head_scope}."})
    prune_gradually: bool = field(default=False, metadata={"help": "Inherited student: remove --head_ratio/--mlp_ratio gradually while distilling (PruningCallback: Taylor scores accumulated over the steps, cubic schedule) instead of one-shot before training; layers (--keep_every) still go first."})
    prune_end: float = field(default=0.75, metadata={"help": "With --prune_gradually: the fraction of the steps by which the ratios are reached (the rest trains the final shape)."})

    def __post_init__(self):
        if self.keep_every < 1:
            raise VlmcompressError(f"--keep_every must be at least 1, got {self.keep_every}")
        for name in ("head_ratio", "mlp_ratio", "hidden_ratio"):
            if not 0 <= getattr(self, name) < 1:
                raise VlmcompressError(f"--{name} is a fraction in [0, 1), got {getattr(self, name)}")
        if self.head_scope not in SCOPES:
            raise VlmcompressError(f"--head_scope is one of {', '.join(SCOPES)}, got {self.head_scope!r}")
        if self.prune_gradually:
            if not (self.head_ratio or self.mlp_ratio):
                raise VlmcompressError("--prune_gradually needs --head_ratio and/or --mlp_ratio to reach")
            if self.hidden_ratio or self.student or self.student_config:
                raise VlmcompressError("--prune_gradually prunes the inherited student: not with --hidden_ratio, "
                                       "--student or --student_config")
            if not 0 < self.prune_end <= 1:
                raise VlmcompressError(f"--prune_end is a fraction of the steps in (0, 1], got {self.prune_end}")

    def teacher_path(self) -> str | None:
        """The teacher to load (None: load_model's default, the embedded CLIP teacher)."""
        return self.teacher


@dataclass
class DataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "Hub data set or save_to_disk folder (default: the embedded digits)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of --dataset_name."})
    train_split: str = field(default="train", metadata={"help": "Split used for training."})
    eval_split: str = field(default=EVAL_SPLIT, metadata={"help": "Split of --eval_dataset_name (or of --dataset_name when no evaluation set is named) used for evaluation."})
    eval_dataset_name: str | None = field(default=None, metadata={"help": "Evaluation set, as the commands' --eval-dataset takes it: a save_to_disk folder, an image folder, a CSV/JSON file of image paths and captions, a Hub data set, vlmcompress/digits-test or none (default: --dataset_name's --eval_split; the embedded benchmark when training on the embedded data)."})
    eval_image_column: str | None = field(default=None, metadata={"help": "Image column of the evaluation set (default: --image_column, else found by name)."})
    eval_caption_column: str | None = field(default=None, metadata={"help": "Caption column(s) of the evaluation set: a string or a list per image (default: --caption_column, else found by name)."})
    eval_label_column: str | None = field(default=None, metadata={"help": "ClassLabel column of the evaluation set: its names are the zero-shot classes (default: --label_column)."})
    eval_task: str = field(default=EVAL_TASKS[0], metadata={"choices": list(EVAL_TASKS), "help": "Evaluation protocol (auto: zero-shot with a ClassLabel, retrieval with captions, captioning for a captioner)."})
    templates: str = field(default=TEMPLATES, metadata={"help": "Zero-shot prompts: default, openai_imagenet (CLIP's 80) or a file with one template per line, each with {}."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Evaluate on at most this many images (a seeded random subset; on the embedded benchmark, fewer test images per number, each number kept)."})
    on_bad_sample: str = field(default=ON_BAD_SAMPLE[0], metadata={"choices": list(ON_BAD_SAMPLE), "help": "An unreadable image, an empty class folder or an empty caption in the evaluation set: error (refused before any work) or skip (left out, counted in one warning line)."})
    image_column: str = field(default=IMAGE_COLUMN, metadata={"help": "Image column."})
    caption_column: str = field(default=CAPTION_COLUMN, metadata={"help": "Caption column."})
    label_column: str = field(default=LABEL_COLUMN, metadata={"help": "Label column (optional: used by the contrastive term and by evaluation)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use at most this many training rows."})
    streaming: bool = field(default=False, metadata={"help": "Stream --dataset_name (a Hub data set) instead of downloading it whole. A folder or glob of WebDataset .tar, .parquet or .arrow shards is always streamed. Streaming needs --max_steps; each process reads whole shards of its own."})
    teacher_store: str | None = field(default=None, metadata={"help": "Streamed shards: read the teacher's embeddings from this store (written by `vlmcompress cache-teacher`) instead of running the teacher; checked against this run's teacher and preprocessing."})
    shuffle_buffer: int = field(default=1000, metadata={"help": "Streamed data: samples held in the shuffle buffer (the shard order is shuffled too, by --seed)."})
    text_dataset: str | None = field(default=None, metadata={"help": "Unpaired texts for --text_weight: a text file with one text per line (the class names or prompts you will query, classes without training images included), or `embedded` (the embedded benchmark's zero-shot prompts of all 100 numbers)."})
    train_images_per_number: int = field(default=160, metadata={"help": "Embedded data: training images per seen number (90 numbers)."})
    eval_images_per_number: int = field(default=100, metadata={"help": "Embedded data: test images per number (100 numbers)."})
    augment_shift: int = field(default=0, metadata={"help": "Shift training images by up to N px each time they are drawn (cannot be combined with teacher caching)."})
    cache_teacher: str = field(default="auto", metadata={"choices": ["auto", "true", "false"], "help": "Compute the teacher's embeddings once (datasets.map, cached on disk in $VLMCOMPRESS_CACHE or ~/.cache/vlmcompress) and skip its forward pass afterwards. auto: on unless --augment_shift or --hidden_weight needs the teacher every step."})
    threads: int = field(default=0, metadata={"help": "torch threads per process (0: VLMCOMPRESS_THREADS if set, else the machine's cores divided by the processes; OMP_NUM_THREADS is not read: `accelerate launch` without a config sets it to 1 even for one process)."})
    skip_eval: bool = field(default=False, metadata={"help": "Do not evaluate teacher and student (metrics are recorded as not measured)."})
    latency_rounds: int = field(default=LATENCY_ROUNDS, metadata={"help": "Interleaved rounds in which teacher and student take turns to be timed (the card shows the median ratio and its range)."})
    latency_batch_size: int = field(default=LATENCY_BATCH_SIZE, metadata={"help": "Batch size of the latency measurement (image+text forward, or one caption per image for a captioner)."})

    def __post_init__(self):
        for name in ("train_images_per_number", "eval_images_per_number"):
            if getattr(self, name) < 1:
                raise VlmcompressError(f"--{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise VlmcompressError(f"--{name} must be at least 1, got {getattr(self, name)}")
        for name in ("latency_rounds", "latency_batch_size", "shuffle_buffer"):
            if getattr(self, name) < 1:
                raise VlmcompressError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.augment_shift < 0 or self.threads < 0:
            raise VlmcompressError(f"--augment_shift and --threads must be >= 0, got {self.augment_shift} and {self.threads}")


#: a pretrained (not embedded) teacher's fine-tuning defaults where the learning rate was not given: the embedded
#: job's 4e-3 wrecks pretrained weights (recipes/clip_b32.yaml uses 5e-5)
USER_MODEL_DEFAULTS = {"learning_rate": 5e-5, "warmup_steps": 0.1}


#: rows read from a streamed training set for the inherited student's importance (the most any importance takes by
#: default: ablation's 512)
CALIBRATION_ROWS = 512


def max_steps_problem(steps) -> str | None:
    """What is wrong with a ``max_steps`` (None: a positive step count, or -1 for num_train_epochs): the one rule the
    command line, Python and recipes share."""
    if steps is not None and steps < 1 and steps != -1:
        return (f"expected a positive number of optimizer steps, got {steps} (-1 trains num_train_epochs epochs "
                "instead)")
    return None


@dataclass
class DistillTrainingArguments(TrainingArguments):
    """TrainingArguments with defaults that finish the embedded job in a few minutes on 2 CPU cores (a teacher that is
    not embedded gets ``USER_MODEL_DEFAULTS`` unless the learning rate is given: ``user_model_defaults``)."""

    output_dir: str = field(default="outputs/distill_clip", metadata={"help": "Where the student, its processor, compression_report.json and card go: a new or empty folder, or an earlier vlmcompress output with --overwrite_output_dir (a folder holding anything else is refused)."})
    overwrite_output_dir: bool = field(default=False, metadata={"aliases": ["--overwrite"], "help": "Replace output_dir when it holds an earlier vlmcompress result (never a folder holding anything else)."})
    max_steps: int = field(default=900, metadata={"help": "Optimizer steps."})
    per_device_train_batch_size: int = field(default=128, metadata={"help": "Image-caption pairs per step and process."})
    learning_rate: float = field(default=4e-3, metadata={"help": "Peak learning rate (AdamW)."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})
    warmup_steps: float = field(default=0.05, metadata={"help": "Warm-up steps (a float < 1 is a share of max_steps)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    logging_steps: float = field(default=25, metadata={"help": "Log the loss (and each loss term) every N steps."})
    save_strategy: str = field(default="no", metadata={"help": "Checkpointing: no, steps or epoch (checkpoints go in output_dir)."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep image/caption columns for the collator."})
    use_cpu: bool = field(default=not torch.cuda.is_available(), metadata={"help": "Train on CPU (default when no GPU: also makes 2-process CPU runs use DDP)."})
    dataloader_drop_last: bool = field(default=True, metadata={"help": "Equal batch sizes (the similarity KL compares batch-sized matrices)."})

    #: whether the learning rate was chosen (False: the command line or recipe left it at the embedded default)
    learning_rate_given: bool = field(default=True, metadata={"help": argparse.SUPPRESS})

    def __post_init__(self):
        problem = max_steps_problem(self.max_steps)
        if problem:
            raise VlmcompressError(f"--max_steps: {problem}")
        super().__post_init__()


@dataclass
class BlipStudentArguments(StudentArguments):
    teacher: str | None = field(default=None, metadata={"help": "Teacher captioner: save_pretrained folder or Hub id (default: the embedded BLIP captioner)."})
    towers: str = field(default="vision,text_decoder", metadata={"help": "Towers the inherited student shrinks."})
    mlp_ratio: float = field(default=0.35, metadata={"help": "Inherited student: fraction of MLP neurons removed in every layer."})

    def teacher_path(self) -> str:
        from ..embedded.blip_captioner import blip_teacher_path

        return self.teacher or blip_teacher_path()


@dataclass
class BlipDataArguments(DataArguments):
    eval_images_per_number: int = field(default=20, metadata={"help": "Embedded data: test images per number (greedy captioning of each)."})
    train_images_per_number: int = field(default=120, metadata={"help": "Embedded data: training images per seen number (90 numbers)."})
    eval_split: str = field(default="test", metadata={"help": "Split used for evaluation: BLEU-4 and ROUGE-L of the greedy captions against its captions (the embedded data: how often a caption names the right number)."})
    cache_teacher: str = field(default="false", metadata={"choices": ["auto", "true", "false"], "help": "Teacher caching holds image/text embeddings, which captioners do not distill from: off."})


@dataclass
class BlipDistillationConfig(DistillationConfig):
    logit_weight: float = field(default=0.0, metadata={"help": "Two-tower models only (0 for captioners)."})
    embedding_weight: float = field(default=0.0, metadata={"help": "Two-tower models only (0 for captioners)."})
    contrastive_weight: float = field(default=0.0, metadata={"help": "Two-tower models only (0 for captioners)."})
    temperature_end: float | None = field(default=None, metadata={"help": "Two-tower models only (the similarity KL's; None for captioners)."})
    token_weight: float = field(default=1.0, metadata={"help": "Weight of the token-level KL on the decoder's next-token logits."})
    token_temperature: float = field(default=2.0, metadata={"help": "Softmax temperature of the token-level KL (x T^2)."})
    hidden_weight: float = field(default=0.0, metadata={"help": "Weight of the hidden-state loss (vision and decoder layers the student inherited); off: it cost held-out accuracy in our runs."})
    caption_weight: float = field(default=0.5, metadata={"help": "Weight of the student's own captioning loss."})


@dataclass
class BlipTrainingArguments(DistillTrainingArguments):
    output_dir: str = field(default="outputs/distill_blip", metadata={"help": "Where the student, its processor and compression_report.json go."})
    max_steps: int = field(default=1500, metadata={"help": "Optimizer steps."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Image-caption pairs per step and process."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate (AdamW)."})


def _json_overrides(value):
    if isinstance(value, dict):
        return value
    text = Path(value).read_text() if os.path.isfile(value) else value
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise VlmcompressError(f"--student_config must be JSON or a JSON file: {exc}") from None
    if not isinstance(data, dict):
        raise VlmcompressError("--student_config must be a JSON object of config overrides")
    return data


def _merge(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def inherited_pruning(args: StudentArguments) -> dict:
    """The PruningConfig fields that make the inherited student from the teacher before training (with
    ``--prune_gradually`` only its layers: heads and neurons go while training, see ``gradual_pruning``)."""
    one_shot = not args.prune_gradually
    return dict(towers=args.towers.split(","), importance=args.importance,
                head_ratio=args.head_ratio if one_shot else 0.0, head_scope=args.head_scope,
                mlp_ratio=args.mlp_ratio if one_shot else 0.0, hidden_ratio=args.hidden_ratio,
                layer_strategy="every_k" if args.keep_every > 1 else None,
                keep_every=args.keep_every if args.keep_every > 1 else None)


def build_student(teacher, processor, args: StudentArguments, calibration=None):
    """(student, report steps describing how it was made)."""
    if args.student:
        student, _, path = load_checkpoint(args.student, torch_for="distillation (--student)")
        return student, [{"method": "student_from_checkpoint", "path": str(path)}]
    if args.student_config:
        overrides = _json_overrides(args.student_config)
        config = type(teacher.config).from_dict(_merge(teacher.config.to_dict(), overrides))
        torch.manual_seed(0)
        return type(teacher)(config), [{"method": "student_from_config", "overrides": overrides}]
    student = copy.deepcopy(teacher)
    fields = inherited_pruning(args)
    if args.prune_gradually and args.keep_every == 1:  # every unit goes gradually, while training: nothing to do now
        return student, [{"method": "student_from_teacher", "pruning": fields}]
    pruning = PruningConfig(**fields)
    steps = prune_model(student, pruning, processor, dataset=calibration)
    return student, [{"method": "student_from_teacher", "pruning": pruning.to_dict()}, *steps]


def gradual_pruning(args: StudentArguments, max_steps: int):
    """The PruningCallback of ``--prune_gradually`` (None without it): the ratios reached at ``prune_end`` of the
    steps, Taylor scores accumulated while training."""
    if not args.prune_gradually:
        return None
    from ..pruning.callback import PruningCallback

    end = max(1, int(args.prune_end * max_steps)) if max_steps and max_steps > 0 else None
    return PruningCallback(PruningConfig(towers=args.towers.split(","), head_ratio=args.head_ratio,
                                         head_scope=args.head_scope, mlp_ratio=args.mlp_ratio, importance="taylor"),
                           start_step=0, end_step=end)


def load_data(data: DataArguments, seed: int):
    """(train, evaluation set): the training rows with image/text(/label) columns, and what evaluate_model measures on
    (an EvalSet, EMBEDDED or NO_EVAL). Both are opened before any model is loaded."""
    from ..evaluation import EMBEDDED, NO_EVAL, eval_set_from_dataset, load_eval_set

    columns = dict(image_column=data.eval_image_column, caption_column=data.eval_caption_column,
                   label_column=data.eval_label_column, max_samples=data.max_eval_samples, seed=seed,
                   on_bad_sample=data.on_bad_sample)
    named = load_eval_set(data.eval_dataset_name, split=data.eval_split, **columns) if data.eval_dataset_name else None
    if data.dataset_name is None:
        from ..embedded import digits

        train = digits.load_digits_dataset("train", images_per_number=data.train_images_per_number)
        return train, named or EMBEDDED  # trained on the embedded data: measured on its test split unless named
    if is_streamed(data.dataset_name, data.streaming):
        from ..data.streaming import open_stream

        train = open_stream(data.dataset_name, config=data.dataset_config_name, split=data.train_split,
                            image_column=data.image_column, caption_column=data.caption_column,
                            label_column=data.label_column, seed=seed, shuffle_buffer=data.shuffle_buffer)
        if data.max_train_samples:
            train = train.take(data.max_train_samples)
        if named is None:
            print(f"note: {data.dataset_name!r} is streamed and no --eval_dataset_name was given: accuracy is not "
                  "measured (size, memory and latency are)")
        return train, named or NO_EVAL
    import datasets

    ds = open_dataset(data.dataset_name, config=data.dataset_config_name)
    if not isinstance(ds, datasets.DatasetDict) or data.train_split not in ds:
        raise VlmcompressError(f"data set {data.dataset_name!r} has no split {data.train_split!r}")
    train = ds[data.train_split]
    missing = [c for c in (data.image_column, data.caption_column) if c not in train.column_names]
    if missing:
        raise VlmcompressError(f"data set {data.dataset_name!r} has no column(s) {', '.join(missing)} "
                               f"(it has {', '.join(train.column_names)}): pass --image_column/--caption_column")
    if data.max_train_samples:
        train = train.shuffle(seed=seed).select(range(min(data.max_train_samples, len(train))))
    if named is not None:
        return train, named
    test = ds.get(data.eval_split)
    if test is None:
        print(f"note: {data.dataset_name!r} has no {data.eval_split!r} split and no --eval_dataset_name was given: "
              "accuracy is not measured (size, memory and latency are)")
        return train, NO_EVAL
    # the training columns name the evaluation split's too, unless --eval_*_column says otherwise
    training_names = {"image_column": data.image_column, "caption_column": data.caption_column,
                      "label_column": data.label_column}
    for key, name in training_names.items():
        if columns[key] is None and name in test.column_names:
            columns[key] = name
    return train, eval_set_from_dataset(test, data.dataset_name, split=data.eval_split, **columns)


def kept_summary(before: dict, after: dict) -> str:
    """'student keeps X% of the teacher's seen accuracy and Y% of its held-out accuracy' for whichever accuracy
    (zero-shot or caption) was measured."""
    for key, what in (("zero_shot_accuracy", "accuracy"), ("caption_accuracy", "caption accuracy")):
        if before.get(key):
            text = f"student keeps {after[key] / before[key]:.1%} of the teacher's seen {what}"
            if before.get(f"{key}_heldout"):
                text += f" and {after[f'{key}_heldout'] / before[f'{key}_heldout']:.1%} of its held-out {what}"
            return text
    return ""



def below_start(start: dict | None, after: dict | None, training_args) -> str | None:
    """A one-line warning when the student's accuracy after training is below its accuracy before training (the
    inherited or given student, measured on the same images) by more than the sampling noise of the two figures (2
    standard errors of the difference of two proportions); None otherwise."""
    import math

    for key, what in (("zero_shot_accuracy", "accuracy"), ("caption_accuracy", "caption accuracy")):
        a, b = (start or {}).get(key), (after or {}).get(key)
        n = (after or {}).get("eval_images") or (start or {}).get("eval_images")
        if a is None or b is None or not n:
            continue
        noise = 2 * math.sqrt((a * (1 - a) + b * (1 - b)) / n)
        if b < a - noise:
            return (f"warning: the student's {what} after training ({b:.1%}) is below its start before training "
                    f"({a:.1%}) by more than the noise ({noise:.1%} on {n} images): the training hurt it; likely too "
                    f"high a learning rate (--learning_rate {training_args.learning_rate:g}) or too few steps for the "
                    f"schedule (--max_steps {training_args.max_steps})")
        return None
    return None


CLIP_ARGUMENTS = (StudentArguments, DataArguments, DistillationConfig, DistillTrainingArguments)
BLIP_ARGUMENTS = (BlipStudentArguments, BlipDataArguments, BlipDistillationConfig, BlipTrainingArguments)
ARGUMENTS = {"clip": CLIP_ARGUMENTS, "blip": BLIP_ARGUMENTS}
# --help's headings (HfArgumentParser's _argument_group_name): ours first, then transformers' TrainingArguments (over
# a hundred options) under one heading; set on the classes themselves, not fields (a subclass made for --help would
# not pickle into Trainer's training_args.bin)
StudentArguments._argument_group_name = "student: the model the teacher is distilled into"
DataArguments._argument_group_name = "data: training data, unpaired texts and the evaluation"


def _training_heading(cls) -> str:
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    own = ", ".join(f"{name} {defaults[name]}" for name in ("max_steps", "per_device_train_batch_size", "learning_rate",
                                                             "lr_scheduler_type", "warmup_steps"))
    return f"training: transformers' TrainingArguments, every option it has (this command's own defaults: {own})"


for _cls in (DistillTrainingArguments, BlipTrainingArguments):
    _cls._argument_group_name = _training_heading(_cls)
USAGE = ("%(prog)s [student options] [data options] [distillation options] [training options]\n"
         "       %(prog)s ARGS.json          (every option in one JSON file)")


def parse_arguments(argv=None, family: str = "clip", prog: str | None = None):
    """(student, data, distillation, training) arguments from ``argv`` (a list; None: sys.argv) or one JSON file."""
    parser = hf_argument_parser(ARGUMENTS[family], prog=prog, usage=USAGE)
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if len(argv) == 1 and argv[0].endswith(".json"):
            parsed = parser.parse_json_file(os.path.abspath(argv[0]))
            parsed[-1].learning_rate_given = "learning_rate" in json.loads(Path(argv[0]).read_text())
            remaining = []
        else:
            *parsed, remaining = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
            named = {a.split("=")[0][2:].replace("-", "_") for a in argv if a.startswith("--")}  # either spelling
            parsed[-1].learning_rate_given = "learning_rate" in named
            if "disable_tqdm" not in named:
                parsed[-1].disable_tqdm = show_no_bar()
    except ValueError as exc:  # a dataclass's own check (TrainingArguments raises ValueError): its first line
        raise VlmcompressError(str(exc).strip().splitlines()[0]) from None
    if remaining:
        bad = next((a for a in remaining if a.startswith("-")), remaining[0])
        known = [o for action in parser._actions for o in action.option_strings]
        close = difflib.get_close_matches(bad.split("=")[0], known, n=1)
        raise VlmcompressError(f"unknown option {bad}" + (f": did you mean {close[0]}?" if close else "")
                               + f" ({parser.prog} --help lists them)")
    student, data, config, training = parsed
    return student, data, config.with_texts(bool(data.text_dataset)), training


def _move_checkpoints(out_dir: Path):
    """``write_extra`` for finish_checkpoint: keep this run's resumable Trainer checkpoints in the new folder."""
    def move(tmp):
        for checkpoint in out_dir.glob("checkpoint-*") if out_dir.is_dir() else []:
            shutil.move(str(checkpoint), str(Path(tmp) / checkpoint.name))
    return move


def read_unpaired_texts(source: str | None) -> list[str]:
    """The texts of --text_dataset: ``embedded`` (every class's zero-shot prompts of the embedded benchmark) or a file
    with one text per line (blank lines skipped)."""
    if not source:
        raise VlmcompressError("--text_weight needs --text_dataset: a text file with one text per line (e.g. your "
                               "class names or prompts), or embedded")
    if source == "embedded":
        from ..embedded import digits

        return [prompt for prompts in digits.class_prompts() for prompt in prompts]
    path = Path(source).expanduser()
    if not path.is_file():
        raise VlmcompressError(f"--text_dataset {source} does not exist: expected a text file with one text per line, "
                               "or embedded")
    texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise VlmcompressError(f"--text_dataset {source} holds no text: expected one text per line")
    return texts


def unpaired_texts(texts: list[str], processor, padding) -> dict:
    """Token ids (and attention mask) of the unpaired texts, padded as the student's collator pads captions."""
    tokenizer = getattr(processor, "tokenizer", processor)
    enc = tokenizer(texts, truncation=True, return_tensors="pt", **padding)
    return {"input_ids": enc["input_ids"], "attention_mask": enc.get("attention_mask")}


def distill(student_args, data_args, distill_cfg, training_args, *, base_model=None, report_extra=None, card=True):
    """Build the student, train it against the teacher, finish the checkpoint; returns its report (None on ranks
    other than 0). ``base_model`` is what the report names as the student's origin (default: the teacher; a pipeline
    names the previous stage's folder, so the card shows the whole chain); ``card=False`` writes no README.md (a
    pipeline writes its last stage's card once, with the recipe). The output folder is locked meanwhile."""
    from ..io import releasing_outputs

    with releasing_outputs():  # check_output_dir, first in _distill, locks the output folder
        return _distill(student_args, data_args, distill_cfg, training_args, base_model=base_model,
                        report_extra=report_extra, card=card)


def show_no_bar() -> bool:
    """The Trainer's progress bar is drawn on a terminal (and not with VLMCOMPRESS_NO_PROGRESS=1, --quiet); elsewhere
    ``ProgressLines`` logs a line per logging step."""
    return os.environ.get("VLMCOMPRESS_NO_PROGRESS") == "1" or not sys.stderr.isatty()


def user_model_defaults(training_args, teacher: str) -> str | None:
    """A teacher that is not an embedded one, distilled at the embedded job's learning rate because none was given:
    ``USER_MODEL_DEFAULTS`` are set and the note saying so returned (None: nothing changed)."""
    from ..evaluation.eval_sets import is_embedded_model
    from ..loading import resolve_model_path

    if getattr(training_args, "learning_rate_given", True) or is_embedded_model(resolve_model_path(teacher)):
        return None
    for key, value in USER_MODEL_DEFAULTS.items():
        setattr(training_args, key, value)
    return (f"note: {teacher} is not an embedded teacher: fine-tuning defaults for a pretrained model, learning rate "
            f"{USER_MODEL_DEFAULTS['learning_rate']:g} with warm-up over {USER_MODEL_DEFAULTS['warmup_steps']:.0%} of "
            "the steps (the embedded job's 4e-3 wrecks pretrained weights); --learning_rate sets your own")


def _distill(student_args, data_args, distill_cfg, training_args, *, base_model=None, report_extra=None, card=True):
    resuming = bool(training_args.resume_from_checkpoint)
    check_output_dir(training_args.output_dir, overwrite=training_args.overwrite_output_dir or resuming,
                     flag="--overwrite_output_dir (or --resume_from_checkpoint)")
    note = user_model_defaults(training_args, student_args.teacher_path())
    if note and training_args.process_index == 0:
        print(note, file=sys.stderr)
    if student_args.student_config:
        student_args.student_config = _json_overrides(student_args.student_config)  # fail before any work
    distill_cfg.with_texts(bool(data_args.text_dataset))  # the text term's default: on where texts are given
    texts = read_unpaired_texts(data_args.text_dataset) if distill_cfg.text_weight else None  # fail before any work
    use_cache = use_teacher_cache(data_args.cache_teacher, augment=data_args.augment_shift > 0, config=distill_cfg)
    set_threads(data_args.threads, training_args.world_size)
    started = time.time()

    streamed = is_streamed(data_args.dataset_name, data_args.streaming)
    if streamed:  # before any work: a stream has no length, and each process reads shards of its own
        if training_args.max_steps is None or training_args.max_steps <= 0:
            raise VlmcompressError("streamed training data has no length: give --max_steps (the optimizer steps to "
                                   "train)")
        if data_args.cache_teacher == "true":
            raise VlmcompressError("--cache_teacher true stores the teacher's outputs as a column of a map-style data "
                                   "set; streamed data runs the teacher on the fly (--cache_teacher auto or false)")
        use_cache = False
        training_args.accelerator_config.dispatch_batches = False  # each process reads its own shards
    shards = shard_files(data_args.dataset_name) if streamed else None  # (builder, files) of a shard source
    if data_args.teacher_store:
        if not shards:
            raise VlmcompressError("--teacher_store reads the embeddings of streamed shards: give --dataset_name a "
                                   "folder or glob of the shards the store was written from")
        from ..distillation.store import check_keyed

        check_keyed(shards[0], data_args.dataset_name)
        conflict = distill_cfg.cache_conflict("--teacher_store")
        if conflict:
            raise VlmcompressError(f"{conflict} (drop --teacher_store, or those terms)")
        if data_args.augment_shift:
            raise VlmcompressError("--augment_shift changes the images the teacher store embedded: drop one of them")
    train, test = load_data(data_args, training_args.seed)
    if streamed:
        from ..data.streaming import check_shards, head

        check_shards(train, training_args.world_size, data_args.dataset_name)
        calibration = head(train, CALIBRATION_ROWS)  # what an importance scores the inherited student's units on
    else:
        calibration = train
    teacher, processor, teacher_path = load_checkpoint(student_args.teacher_path(), torch_for="distillation (--teacher)")
    calibration = standard_columns(calibration, data_args.image_column, data_args.caption_column)
    if data_args.teacher_store:  # every sample's teacher embeddings read from the store: the teacher never runs
        from ..distillation.cache import teacher_fingerprint
        from ..distillation.store import TeacherStore

        store = TeacherStore(data_args.teacher_store, fingerprint=teacher_fingerprint(teacher), processor=processor,
                             padding=get_adapter(teacher).text_padding,
                             source_shards=shards[1])
        train = store.attach(train)
    frozen = distill_cfg.frozen_towers()
    for tower in frozen:
        get_adapter(teacher).tower_modules(tower)  # an unknown tower name: one line, before the student is built
    if frozen and not (student_args.student or student_args.student_config):
        # the student keeps the teacher's copy of a frozen tower: only the other towers are shrunk
        shrink = [t for t in student_args.towers.split(",") if t not in frozen]
        if not shrink:
            raise VlmcompressError(f"--freeze_towers {','.join(frozen)} leaves no tower to shrink out of --towers "
                                   f"{student_args.towers}: freeze fewer towers")
        student_args.towers = ",".join(shrink)
    eval_kw = {"dataset": test, "images_per_number": embedded_images_per_number(test, data_args.eval_images_per_number,
                                                                     data_args.max_eval_samples, "--max_eval_samples"),
               "templates": data_args.templates, "task": data_args.eval_task,
               "latency_batch_size": data_args.latency_batch_size}
    measure = not data_args.skip_eval and training_args.process_index == 0
    # the teacher is measured first: an evaluation set it cannot be scored on fails before any work, not after training
    before = evaluate_model(teacher, processor, model_path=teacher_path, **eval_kw) if measure else None
    student, steps = build_student(teacher, processor, student_args, calibration)
    if measure:  # the student's start: a training run that ends below it is warned about, and the card plots it
        steps[-1]["metrics"] = evaluate_model(student, processor, model_path=teacher_path,
                                              **{**eval_kw, "latency_repeats": 0})
    t_params, s_params = count_parameters(teacher), count_parameters(student)
    print(f"teacher {t_params:,} parameters; student {s_params:,} ({s_params / t_params:.1%})", flush=True)

    if use_cache:
        with training_args.main_process_first(desc="caching teacher outputs"):  # one process writes the cache
            train = cache_teacher_outputs(teacher, processor, train, image_column=data_args.image_column,
                                          text_column=data_args.caption_column)
    collator = ImageTextCollator(processor, data_args.image_column, data_args.caption_column, data_args.label_column,
                                 padding=get_adapter(student).text_padding, shift=data_args.augment_shift,
                                 seed=training_args.seed)
    unpaired = unpaired_texts(texts, processor, get_adapter(student).text_padding) if texts else None
    gradual = gradual_pruning(student_args, training_args.max_steps)
    card_info = ModelCardCallback(hyperparameters={"distillation": distill_cfg.to_dict(),
                                                   "student": {k: v for k, v in vars(student_args).items() if v is not None}})
    # the Trainer never pushes: the finished folder (student, report, card) is pushed once at the end
    trainer = DistillationTrainer(model=student, args=without_push(training_args), train_dataset=train,
                                  data_collator=collator, processing_class=processor,
                                  callbacks=[card_info] + ([gradual] if gradual else []),
                                  teacher=teacher, distillation_config=distill_cfg, unpaired_texts=unpaired)
    if training_args.disable_tqdm:  # no bar: a line per logging step with the time left, not the bare log dict
        from transformers.trainer_callback import PrinterCallback

        from ..distillation.trainer import ProgressLines

        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(ProgressLines())
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    student = trainer.trained_student()  # FSDP: a collective, called on every rank
    print(f"rank {training_args.process_index}/{training_args.world_size}: trained {trainer.state.global_step} steps "
          f"({type(trainer.model_wrapped).__name__})", flush=True)
    if not trainer.is_world_process_zero():
        return None
    if gradual is not None:
        steps += gradual.report_steps  # the heads and neurons it removed, in the inherited student's numbering
        s_params = count_parameters(student)

    student.eval()
    steps.append({
        "method": "distillation",
        "teacher": str(teacher_path),
        "student_init": steps[0]["method"],
        "losses": distill_cfg.active_losses(),
        "temperature": distill_cfg.temperature,
        **({"temperature_end": distill_cfg.temperature_end} if distill_cfg.temperature_end is not None else {}),
        "config": distill_cfg.to_dict(),
        "max_steps": training_args.max_steps,
        "batch_size": training_args.per_device_train_batch_size * training_args.world_size,
        "learning_rate": training_args.learning_rate,
        "processes": training_args.world_size,
        "distributed": str(trainer.accelerator.distributed_type).split(".")[-1],
        "cache_teacher": use_cache,
        **({"data": {"streamed": True, "shards": train.n_shards, "shuffle_buffer": data_args.shuffle_buffer,
                     **({"teacher_store": str(data_args.teacher_store)} if data_args.teacher_store else {})}}
           if streamed else {}),
        **({"frozen_towers": frozen} if frozen else {}),
        "training": card_info.training_record(),
    })
    out_dir = Path(training_args.output_dir)
    # the folder was checked before training; what is there now is this run's own Trainer checkpoints
    report = finish_checkpoint(
        student, processor, out_dir, base_model=base_model or teacher_path, steps=steps, before=before,
        configs=[distill_cfg],
        evaluate=(lambda m, folder: evaluate_model(m, processor, model_path=folder, **eval_kw)) if measure else None,
        write_extra=_move_checkpoints(out_dir), latency_base=teacher if measure else None,
        latency_rounds=data_args.latency_rounds, latency_batch_size=data_args.latency_batch_size, overwrite=True,
        report_extra={"wall_time_s": round(time.time() - started, 1), **(report_extra or {})}, card=card,
    )
    after = report["after"]
    if before is not None:
        print(format_metrics_table({"teacher": before, "student": after}))
        print(kept_summary(before, after))
    start = next((st.get("metrics") for st in reversed(steps) if st.get("metrics")), None)
    warning = below_start(start, after, training_args)
    if warning:
        print(warning, file=sys.stderr)
    print(f"student: {s_params:,} parameters ({s_params / t_params:.1%} of the teacher); "
          f"trained {trainer.state.global_step} steps in {result.metrics.get('train_runtime', 0):.0f} s; "
          f"whole run {time.time() - started:.0f} s; saved to {out_dir}")
    url = push_if_requested(training_args, out_dir)
    if url:
        print(f"pushed to {url}")
    return report


def run_distillation(argv=None, family: str = "clip", prog: str | None = None) -> int:
    """Parse and run as a command: a VlmcompressError is one line on stderr and exit status 1."""
    prog = prog or f"distill_{family}"
    from ..utils import set_verbosity

    set_verbosity(0)
    args = None
    try:
        args = parse_arguments(argv, family, prog=prog)
        distill(*args)
    except VlmcompressError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        from ..io import trainer_checkpoints

        out = Path(args[-1].output_dir) if args else None
        kept = trainer_checkpoints(out, complete=True) if out is not None and out.is_dir() else []
        print(f"interrupted; {out} keeps {kept[-1].name}: rerun with --resume_from_checkpoint {kept[-1]} to go on"
              if kept else "interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0
