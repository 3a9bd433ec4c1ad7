#!/usr/bin/env python
"""Distill a CLIP-like teacher into a smaller student inside ``transformers.Trainer``.

    accelerate launch recipes/distill_clip.py                      # embedded teacher -> ~half-size student
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \\
        recipes/distill_clip.py                                    # two real processes (gloo on CPU)
    python recipes/distill_clip.py --help                          # every option (ours and TrainingArguments')
    accelerate launch recipes/distill_clip.py --teacher openai/clip-vit-base-patch32 \\
        --dataset_name ... --image_column image --caption_column caption      # with the network

The student is built one of three ways: inherited from the teacher (default: every 2nd layer of each tower and
25% of every MLP's neurons removed by Taylor importance, the TinyCLIP/DistilBERT recipe), from a smaller config
(``--student_config``, random init), or from a checkpoint (``--student``, e.g. a pruned folder). It is trained
with the similarity-matrix KL (T=3) and the embedding loss by default (see ``DistillationConfig``), then the
teacher and the student are evaluated on the same test set and the student is written to ``--output_dir`` with
its processor and ``compression_report.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")  # sleeping torch threads cost ~3.5 ms per op on small CPUs

import copy  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from transformers import HfArgumentParser, TrainingArguments  # noqa: E402

from vlmcompress import report as report_lib  # noqa: E402
from vlmcompress.adapters import get_adapter  # noqa: E402
from vlmcompress.cards import ModelCardCallback, write_card  # noqa: E402
from vlmcompress.data.collate import ImageTextCollator  # noqa: E402
from vlmcompress.data.sources import open_dataset, standard_columns  # noqa: E402
from vlmcompress.distillation import DistillationConfig, DistillationTrainer  # noqa: E402
from vlmcompress.distillation.cache import cache_teacher_outputs, check_no_augmentation  # noqa: E402
from vlmcompress.errors import VlmcompressError  # noqa: E402
from vlmcompress.evaluation import evaluate_model  # noqa: E402
from vlmcompress.evaluation.harness import count_parameters  # noqa: E402
from vlmcompress.hub import push_if_requested, without_push  # noqa: E402
from vlmcompress.io import atomic_output_dir  # noqa: E402
from vlmcompress.loading import load_model  # noqa: E402
from vlmcompress.modeling import save_compressed  # noqa: E402
from vlmcompress.pruning.config import PruningConfig, prune_model  # noqa: E402


@dataclass
class StudentArguments:
    teacher: str | None = field(default=None, metadata={"help": "Teacher: save_pretrained folder or Hub id (default: the embedded teacher)."})
    student: str | None = field(default=None, metadata={"help": "Start from this checkpoint (e.g. a pruned folder) instead of building a student."})
    student_config: str | None = field(default=None, metadata={"help": 'Random-init student from the teacher config with these overrides (JSON or JSON file), e.g. {"vision_config": {"num_hidden_layers": 2}}.'})
    keep_every: int = field(default=2, metadata={"help": "Inherited student: keep teacher layers 0, k, 2k, ... of each tower (1 keeps all)."})
    head_ratio: float = field(default=0.0, metadata={"help": "Inherited student: fraction of attention heads removed (global per tower)."})
    mlp_ratio: float = field(default=0.25, metadata={"help": "Inherited student: fraction of MLP neurons removed in every layer."})
    importance: str = field(default="taylor", metadata={"help": "Inherited student: taylor, magnitude or random ranking of heads/neurons."})
    towers: str = field(default="vision,text", metadata={"help": "Towers the inherited student shrinks."})

    def teacher_path(self) -> str | None:
        """The teacher to load (None: load_model's default, the embedded CLIP teacher)."""
        return self.teacher


@dataclass
class DataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "Hub data set or save_to_disk folder (default: the embedded digits)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of --dataset_name."})
    train_split: str = field(default="train", metadata={"help": "Split used for training."})
    eval_split: str = field(default="test", metadata={"help": "Split used for evaluation (needs a ClassLabel label column)."})
    image_column: str = field(default="image", metadata={"help": "Image column."})
    caption_column: str = field(default="text", metadata={"help": "Caption column."})
    label_column: str = field(default="label", metadata={"help": "Label column (optional: used by the contrastive term and by evaluation)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use at most this many training rows."})
    train_images_per_number: int = field(default=160, metadata={"help": "Embedded data: training images per seen number (90 numbers)."})
    eval_images_per_number: int = field(default=100, metadata={"help": "Embedded data: test images per number (100 numbers)."})
    augment_shift: int = field(default=0, metadata={"help": "Shift training images by up to N px each time they are drawn (cannot be combined with teacher caching)."})
    cache_teacher: str = field(default="auto", metadata={"choices": ["auto", "true", "false"], "help": "Compute the teacher's embeddings once (datasets.map, cached on disk in $VLMCOMPRESS_CACHE or ~/.cache/vlmcompress) and skip its forward pass afterwards. auto: on unless --augment_shift or --hidden_weight needs the teacher every step."})
    threads: int = field(default=0, metadata={"help": "torch threads per process (0: the machine's cores divided by the processes; `accelerate launch` without a config sets OMP_NUM_THREADS=1 even for one process)."})
    skip_eval: bool = field(default=False, metadata={"help": "Do not evaluate teacher and student (metrics are recorded as not measured)."})


@dataclass
class DistillTrainingArguments(TrainingArguments):
    """TrainingArguments with defaults that finish the embedded job in a few minutes on 2 CPU cores."""

    output_dir: str = field(default="outputs/distill_clip", metadata={"help": "Where the student, its processor and compression_report.json go."})
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


def _use_cache(data: DataArguments, distill: DistillationConfig) -> bool:
    if data.cache_teacher == "false":
        return False
    conflict = distill.cache_conflict("--cache_teacher")
    if data.cache_teacher == "true":
        check_no_augmentation(data.augment_shift > 0)
        if conflict:
            raise VlmcompressError(f"{conflict} (use --cache_teacher false or set their weights to 0)")
        return True
    return not data.augment_shift and not conflict


def build_student(teacher, processor, args: StudentArguments, calibration=None):
    """(student, report steps describing how it was made)."""
    if args.student:
        student, _, path = load_model(args.student)
        return student, [{"method": "student_from_checkpoint", "path": str(path)}]
    if args.student_config:
        overrides = _json_overrides(args.student_config)
        config = type(teacher.config).from_dict(_merge(teacher.config.to_dict(), overrides))
        torch.manual_seed(0)
        return type(teacher)(config), [{"method": "student_from_config", "overrides": overrides}]
    student = copy.deepcopy(teacher)
    pruning = PruningConfig(towers=args.towers.split(","), importance=args.importance, head_ratio=args.head_ratio,
                            mlp_ratio=args.mlp_ratio, layer_strategy="every_k" if args.keep_every > 1 else None,
                            keep_every=args.keep_every if args.keep_every > 1 else None)
    pruning.validate()
    steps = prune_model(student, pruning, processor, dataset=calibration)
    return student, [{"method": "student_from_teacher", "pruning": pruning.to_dict()}, *steps]


def load_data(data: DataArguments, seed: int):
    """(train, eval) data sets with image/text(/label) columns; eval None when it cannot be scored."""
    if data.dataset_name is None:
        from vlmcompress.data import digits

        train = digits.load_digits_dataset("train", images_per_number=data.train_images_per_number)
        return train, None  # evaluation on the embedded test split is evaluate_model's default
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
    test = ds.get(data.eval_split)
    if test is not None and data.label_column in test.column_names:
        test = standard_columns(test, data.image_column, data.caption_column, data.label_column)
    else:
        print(f"note: no {data.eval_split!r} split with a {data.label_column!r} column: accuracy is not measured")
        test = "skip"
    return train, test


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


def main(argv=None, arguments=(StudentArguments, DataArguments, DistillationConfig, DistillTrainingArguments),
         prog="distill_clip"):
    """Parse ``arguments`` (four dataclasses: student, data, distillation, training) and run; recipes for other
    families pass their own subclasses with other defaults."""
    parser = HfArgumentParser(arguments)
    if argv is None and len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
        student_args, data_args, distill_cfg, training_args = parser.parse_json_file(os.path.abspath(sys.argv[1]))
    else:
        student_args, data_args, distill_cfg, training_args = parser.parse_args_into_dataclasses(args=argv)
    distill_cfg.validate()
    if student_args.student_config:
        student_args.student_config = _json_overrides(student_args.student_config)  # fail before any work
    use_cache = _use_cache(data_args, distill_cfg)
    torch.set_num_threads(data_args.threads or max(1, (os.cpu_count() or 1) // training_args.world_size))
    started = time.time()

    teacher, processor, teacher_path = load_model(student_args.teacher_path())
    train, test = load_data(data_args, training_args.seed)
    calibration = standard_columns(train, data_args.image_column, data_args.caption_column)
    student, steps = build_student(teacher, processor, student_args, calibration)
    t_params, s_params = count_parameters(teacher), count_parameters(student)
    print(f"teacher {t_params:,} parameters; student {s_params:,} ({s_params / t_params:.1%})", flush=True)

    if use_cache:
        with training_args.main_process_first(desc="caching teacher outputs"):  # one process writes the cache
            train = cache_teacher_outputs(teacher, processor, train, image_column=data_args.image_column,
                                          text_column=data_args.caption_column)
    collator = ImageTextCollator(processor, data_args.image_column, data_args.caption_column, data_args.label_column,
                                 padding=get_adapter(student).text_padding, shift=data_args.augment_shift,
                                 seed=training_args.seed)
    card_info = ModelCardCallback(hyperparameters={"distillation": distill_cfg.to_dict(),
                                                   "student": {k: v for k, v in vars(student_args).items() if v is not None}})
    # the Trainer never pushes: the finished folder (student, report, card) is pushed once at the end
    trainer = DistillationTrainer(model=student, args=without_push(training_args), train_dataset=train,
                                  data_collator=collator, processing_class=processor, callbacks=[card_info],
                                  teacher=teacher, distillation_config=distill_cfg)
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    student = trainer.model
    print(f"rank {training_args.process_index}/{training_args.world_size}: trained {trainer.state.global_step} steps "
          f"({type(trainer.model_wrapped).__name__})", flush=True)
    if not trainer.is_world_process_zero():
        return None

    student.eval()
    steps.append({
        "method": "distillation",
        "teacher": str(teacher_path),
        "student_init": steps[0]["method"],
        "losses": distill_cfg.active_losses(),
        "temperature": distill_cfg.temperature,
        "config": distill_cfg.to_dict(),
        "max_steps": training_args.max_steps,
        "batch_size": training_args.per_device_train_batch_size * training_args.world_size,
        "learning_rate": training_args.learning_rate,
        "processes": training_args.world_size,
        "distributed": str(trainer.accelerator.distributed_type).split(".")[-1],
        "cache_teacher": use_cache,
        "training": card_info.training_record(),
    })
    eval_kw = {"images_per_number": data_args.eval_images_per_number}
    if test is not None and test != "skip":
        eval_kw = {"dataset": test}
    out_dir = Path(training_args.output_dir)
    with atomic_output_dir(out_dir) as tmp:
        loading = save_compressed(student, processor, tmp)
        before = after = None
        if not data_args.skip_eval and test != "skip":
            before = evaluate_model(teacher, processor, model_path=teacher_path, **eval_kw)
            after = evaluate_model(student, processor, model_path=tmp, **eval_kw)
        report = report_lib.new_report(base_model=str(teacher_path), model_family=get_adapter(student).family,
                                       steps=steps, before=before, after=after)
        report["loading"] = loading
        report["wall_time_s"] = round(time.time() - started, 1)
        report_lib.write_report(report, tmp)
        write_card(tmp)
        for checkpoint in out_dir.glob("checkpoint-*") if out_dir.is_dir() else []:
            shutil.move(str(checkpoint), str(Path(tmp) / checkpoint.name))  # keep resumable checkpoints
    if before is not None:
        print(report_lib.format_metrics_table({"teacher": before, "student": after}))
        print(kept_summary(before, after))
    print(f"student: {s_params:,} parameters ({s_params / t_params:.1%} of the teacher); "
          f"trained {trainer.state.global_step} steps in {result.metrics.get('train_runtime', 0):.0f} s; "
          f"whole run {time.time() - started:.0f} s; saved to {out_dir}")
    url = push_if_requested(training_args, out_dir)
    if url:
        print(f"pushed to {url}")
    return report


def run(**kwargs):
    """``main`` as a command: a VlmcompressError is one line on stderr and exit status 1."""
    try:
        main(**kwargs)
    except VlmcompressError as exc:
        print(f"{kwargs.get('prog', 'distill_clip')}: error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run()
