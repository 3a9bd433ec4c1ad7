"""``vlmcompress compress RECIPE``: run a recipe's stages, each into its own self-describing folder, resumably.

``output_dir/01-prune``, ``02-distill``, ... are ordinary vlmcompress checkpoints (weights, processor, report, card);
each names the previous one as its base model, so the last one's report and card show the whole chain (base ->
every stage, with the accuracy-vs-size plot across stages). ``recipe.yaml`` goes beside the final checkpoint and its
card shows it. A stage is complete when its folder holds ``stage.json`` with the hash of its options and inputs
(the previous stage's hash, the base model's files, the data); a rerun skips complete stages, ``from_stage`` reruns
from one, and an interrupted stage leaves nothing that looks complete (each folder appears whole or not at all; a
distillation stage resumes from its last Trainer checkpoint).

Above the method packages, as the CLI is: it calls each method's public API, never their internals.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

from ..data.sources import CAPTION_COLUMN, IMAGE_COLUMN, LABEL_COLUMN
from ..errors import VlmcompressError
from ..io import trainer_checkpoints
from ..report import EVAL_SPLIT, EVAL_TASKS, LATENCY_BATCH_SIZE, LATENCY_ROUNDS, ON_BAD_SAMPLE
from .recipe import Recipe, Stage, stage_configs, stage_target

STAGE_FILE = "stage.json"
PIPELINE_FILE = "vlmcompress_pipeline.json"
RECIPE_FILE = "recipe.yaml"
_STAGE_DIR = re.compile(r"^\d\d-(prune|distill|quantize|export)$")


def _log(text: str) -> None:
    print(text, flush=True)


def check_pipeline_dir(path) -> Path:
    """The pipeline's output folder: new, empty, or an earlier pipeline's (its marker, stage folders vlmcompress wrote,
    and nothing else). A folder holding anything else is refused before any work, and never changed."""
    from ..io import foreign_entries, is_atomic_temp, is_vlmcompress_output, lock_output, resolve_output_path

    given = str(path)
    resolved = resolve_output_path(path, refusal="refusing to use {given!r} as the pipeline's output_dir: it is "
                                   "{why}; name a new folder, e.g. outputs/NAME")
    lock_output(resolved)  # another live pipeline writing there: refused before any work (released by run())
    if resolved.is_dir():
        foreign = []
        for entry in sorted(resolved.iterdir()):
            if entry.name == PIPELINE_FILE or is_atomic_temp(entry):
                continue
            if entry.is_dir() and _STAGE_DIR.match(entry.name) and (
                    not any(entry.iterdir()) or is_vlmcompress_output(entry) or not foreign_entries(entry)):
                continue
            foreign.append(entry.name)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise VlmcompressError(f"output_dir {given} holds files a vlmcompress pipeline did not write ({shown}); "
                                   "it is never changed: choose another output_dir")
    return resolved


def _files_digest(path) -> str:
    """Names, sizes and modification times of a local checkpoint's files (a Hub id: the id)."""
    p = Path(str(path))
    if not p.is_dir():
        return str(path)
    rows = sorted((str(f.relative_to(p)), f.stat().st_size, int(f.stat().st_mtime)) for f in p.rglob("*")
                  if f.is_file() and not f.name.startswith("."))
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def stage_complete(folder: Path, config_hash: str) -> bool:
    state = folder / STAGE_FILE
    if not state.is_file() or not (folder / "compression_report.json").is_file():
        return False
    try:
        return json.loads(state.read_text()).get("hash") == config_hash
    except (OSError, ValueError):
        return False


class _Ranks:
    """Stages other than distillation run on the main process only; the others wait (``accelerate launch``)."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.state = None
        if self.world > 1:
            from accelerate import PartialState

            self.state = PartialState(cpu=not _cuda())

    @property
    def main(self) -> bool:
        return self.state is None or self.state.is_main_process

    def wait(self):
        if self.state is not None:
            self.state.wait_for_everyone()


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class Pipeline:
    def __init__(self, recipe: Recipe, *, from_stage: int | None = None, log=_log, inputs_only: bool = False):
        """``inputs_only``: for reading the recipe's inputs (``vlmcompress plan``): output_dir is neither checked nor
        written."""
        self.recipe, self.from_stage = recipe, from_stage
        self.out = None if inputs_only else check_pipeline_dir(recipe.output_dir)
        self.ranks = _Ranks()
        self.log = log if self.ranks.main else (lambda text: None)  # one voice under accelerate launch
        if from_stage is not None and not 1 <= from_stage <= len(recipe.stages):
            raise VlmcompressError(f"--from-stage {from_stage}: the recipe has stages 1 to {len(recipe.stages)}")

    # ---------------------------------------------------------------- inputs
    def base_path(self) -> str:
        from ..loading import resolve_model_path

        if getattr(self, "_base", None):
            return self._base  # resolved once (a Hub id is checked against the network once)
        if self.recipe.model is None and self.recipe.family == "blip":
            from ..embedded.blip_captioner import blip_teacher_path

            return blip_teacher_path()
        return resolve_model_path(self.recipe.model)

    def eval_name(self, base) -> str:
        from ..evaluation import EMBEDDED, NO_EVAL
        from ..evaluation.eval_sets import is_embedded_model

        if self.recipe.eval.get("skip"):
            return NO_EVAL
        return self.recipe.data.get("eval") or (EMBEDDED if is_embedded_model(base) else NO_EVAL)

    def eval_kwargs(self, base) -> dict | None:
        from ..evaluation import embedded_images_per_number, load_templates, resolve_eval_set

        data = self.recipe.data
        load_templates(data.get("templates"))
        if self.recipe.eval.get("skip"):
            return None  # no evaluation at all: before/after are recorded as not measured
        dataset = resolve_eval_set(self.eval_name(base), base, split=data.get("eval_split", EVAL_SPLIT),
                                   image_column=data.get("eval_image_column"),
                                   caption_column=data.get("eval_caption_column"),
                                   label_column=data.get("eval_label_column"),
                                   max_samples=data.get("max_eval_samples"),
                                   on_bad_sample=data.get("on_bad_sample", ON_BAD_SAMPLE[0]))
        per_number = embedded_images_per_number(dataset, data.get("images_per_number"), data.get("max_eval_samples"),
                                                flag="data.max_eval_samples")
        return dict(dataset=dataset, images_per_number=per_number,
                    latency_batch_size=self.recipe.eval.get("latency_batch_size", LATENCY_BATCH_SIZE),
                    templates=data.get("templates"), task=data.get("eval_task", EVAL_TASKS[0]))

    def calibration(self):
        """The training data as prune's calibration set (None: the embedded training split)."""
        data = self.recipe.data
        if not data.get("train"):
            return None
        import datasets

        from ..data.sources import open_dataset, standard_columns
        from ..data.streaming import head, is_streamed, open_stream

        split = data.get("train_split", "train")
        columns = {"image_column": data.get("image_column", IMAGE_COLUMN),
                   "caption_column": data.get("caption_column", CAPTION_COLUMN),
                   "label_column": data.get("label_column", LABEL_COLUMN)}
        if is_streamed(data["train"], bool(data.get("streaming"))):  # the stream's first rows
            from .distill import CALIBRATION_ROWS, DataArguments

            ds = head(open_stream(data["train"], config=data.get("train_config"), split=split, **columns,
                                  shuffle_buffer=data.get("shuffle_buffer", DataArguments.shuffle_buffer)),
                      CALIBRATION_ROWS)
        else:
            ds = open_dataset(data["train"], config=data.get("train_config"))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise VlmcompressError(f"data.train {data['train']!r} has no split {split!r} (it has "
                                           f"{', '.join(ds)})")
                ds = ds[split]
        return standard_columns(ds, columns["image_column"], columns["caption_column"], columns["label_column"])

    # ---------------------------------------------------------------- run
    def run(self) -> dict | None:
        from ..errors import Interrupted
        from ..io import release_output, trainer_checkpoints

        try:
            return self._run()
        except KeyboardInterrupt as exc:
            if isinstance(exc, Interrupted) or not self.ranks.main:
                raise
            stages = [d for d in sorted(self.out.iterdir()) if d.is_dir() and _STAGE_DIR.match(d.name)] \
                if self.out.is_dir() else []
            kept = [f"{d.name} (complete)" for d in stages
                    if (d / STAGE_FILE).is_file() and (d / "compression_report.json").is_file()]
            kept += [f"{d.name}/{c.name} (a Trainer checkpoint)" for d in stages
                     for c in trainer_checkpoints(d, complete=True)]
            if not kept:
                raise Interrupted("interrupted; nothing was kept") from exc
            raise Interrupted(f"interrupted; kept in {self.out}: {', '.join(kept)}; rerun the same command to resume "
                              "from them") from exc
        finally:
            release_output(self.out)

    def _run(self) -> dict | None:
        recipe = self.recipe
        started = time.time()
        if recipe.push:
            from ..hub import check_push_token

            check_push_token(recipe.push["repo_id"])  # a missing or refused token, no network: before any stage
        base = self._base = self.base_path()
        if not recipe.data.get("train"):
            from ..evaluation.eval_sets import is_embedded_model
            from ..pruning.config import require_calibration

            if not is_embedded_model(base):  # a user's model is never calibrated on the embedded digits
                for stage in recipe.stages:
                    if stage.kind == "prune":
                        require_calibration(stage_configs(stage, recipe.family, first=stage.index == 1), str(base),
                                            "data.train in the recipe")
        eval_kwargs = self.eval_kwargs(base)  # the evaluation set is opened before any model is loaded
        if self.ranks.main:
            self.out.mkdir(parents=True, exist_ok=True)
            from ..io import atomic_write_text

            atomic_write_text(self.out / PIPELINE_FILE, json.dumps(
                {"vlmcompress_pipeline": 1, "recipe": recipe.to_dict(), "stages": [s.name for s in recipe.stages]},
                indent=2, default=str) + "\n")
        self.ranks.wait()
        inputs = json.dumps({"base": str(base), "files": _files_digest(base), "data": recipe.data,
                             "eval": recipe.eval, "target": recipe.target}, sort_keys=True, default=str)
        previous, rerun, ran = base, False, []
        for stage in recipe.stages:
            folder = self.out / stage.name
            config_hash = stage.config_hash(inputs)
            forced = self.from_stage is not None and stage.index >= self.from_stage
            if not (rerun or forced) and stage_complete(folder, config_hash):
                self.log(f"stage {stage.name}: complete (same options and inputs): skipped")
            else:
                rerun = True
                self.log(f"stage {stage.name}: running")
                t0 = time.time()
                self.run_stage(stage, folder, previous, base, eval_kwargs)
                if self.ranks.main:
                    from ..io import atomic_write_text

                    atomic_write_text(folder / STAGE_FILE, json.dumps(
                        {"stage": stage.name, "kind": stage.kind, "options": stage.options, "hash": config_hash,
                         "input": str(previous), "seconds": round(time.time() - t0, 1)}, indent=2, default=str) + "\n")
                self.ranks.wait()
                ran.append(stage.name)
            inputs, previous = config_hash, folder
        if not self.ranks.main:
            return None
        final = Path(previous)
        if ran or not (final / RECIPE_FILE).is_file():
            self.finish(final)
        from ..report import read_report

        report = read_report(final)
        if not ran:
            self.log(f"nothing to do: every stage of {recipe.path or 'the recipe'} is complete "
                     f"({time.time() - started:.1f} s); the result is {final}")
        else:
            self.log(f"finished {', '.join(ran)} in {time.time() - started:.0f} s; the result is {final}")
        if recipe.push:
            from ..hub import push_folder

            url = push_folder(str(final), recipe.push["repo_id"], private=recipe.push.get("private", False),
                              revision=recipe.push.get("revision"), commit_message=recipe.push.get("commit_message"))
            self.log(f"pushed {final} to {url}")
        return report

    def finish(self, final: Path):
        """recipe.yaml beside the final checkpoint; its report and card show the recipe."""
        from ..cards import write_card
        from ..io import atomic_write_text
        from ..report import read_report, write_report

        import yaml

        text = self.recipe.source or yaml.safe_dump(self.recipe.to_dict(), sort_keys=False)
        atomic_write_text(final / RECIPE_FILE, text)
        report = read_report(final)
        report["recipe"] = self.recipe.to_dict()
        report["recipe_file"] = RECIPE_FILE
        write_report(report, final)
        write_card(final, report)

    def _before(self, previous, model, processor, eval_kwargs):
        """The metrics of the stage's input: the previous stage's ``after``, or measured for the base model."""
        from ..report import read_report

        if Path(str(previous), "compression_report.json").is_file() and str(previous) != str(self.base_path()):
            after = read_report(previous).get("after")
            if after is not None:
                return after
        if eval_kwargs is None:
            return None
        from ..evaluation import evaluate_model

        return evaluate_model(model, processor, model_path=previous, **eval_kwargs)

    def run_stage(self, stage: Stage, folder: Path, previous, base, eval_kwargs):
        first = stage.index == 1
        if stage.kind == "distill":
            return self._distill(stage, folder, previous, base, first)
        if not self.ranks.main:
            return None
        return getattr(self, f"_{stage.kind}")(stage, folder, previous, eval_kwargs)

    def _evaluate(self, processor, eval_kwargs):
        from ..evaluation import evaluate_model

        if eval_kwargs is None:
            return None
        return lambda m, f: evaluate_model(m, processor, model_path=f, **eval_kwargs)

    @property
    def latency_rounds(self) -> int:
        """The recipe's eval.latency_rounds, else the library's one default."""
        return self.recipe.eval.get("latency_rounds", LATENCY_ROUNDS)

    def _latency(self, eval_kwargs) -> dict:
        if eval_kwargs is None:
            return {}
        return dict(latency_rounds=self.latency_rounds,
                    latency_batch_size=eval_kwargs["latency_batch_size"])

    def _load(self, previous):
        """The stage's input: the base model, or an earlier stage's folder (our own remote code: trusted)."""
        from ..loading import load_checkpoint

        ours = Path(str(previous)).parent == self.out
        return load_checkpoint(str(previous), trust_remote_code=ours)

    def _prune(self, stage, folder, previous, eval_kwargs):
        from .stages import prune_stage

        config = stage_configs(stage, self.recipe.family, first=stage.index == 1)
        model, processor, path = self._load(previous)
        calibration = self.calibration()
        plan = None
        target = stage_target(self.recipe, stage)
        if target:
            from .planner import plan_pruning

            plan = plan_pruning(model, processor, config, target, self.recipe, stage, calibration=calibration,
                                eval_kwargs=eval_kwargs, log=self.log)
            config = plan["config"]
        before = self._before(previous, model, processor, eval_kwargs)
        extra = {"plan": plan["record"]} if plan else {}
        return prune_stage(model, processor, folder, config, calibration=calibration, step_extra=extra,
                           report_extra={"stage": stage.name, **extra},
                           **self._stage_kwargs(previous, processor, before, eval_kwargs, stage))

    def _quantize(self, stage, folder, previous, eval_kwargs):
        from ..quantization import ensure_not_quantized, require_bitsandbytes
        from .stages import quantize_stage

        config = stage_configs(stage, self.recipe.family, first=stage.index == 1)
        require_bitsandbytes()
        model, processor, path = self._load(previous)
        ensure_not_quantized(model)
        before = self._before(previous, model, processor, eval_kwargs)
        return quantize_stage(model, processor, folder, config, report_extra={"stage": stage.name},
                              **self._stage_kwargs(previous, processor, before, eval_kwargs, stage))

    def _stage_kwargs(self, previous, processor, before, eval_kwargs, stage) -> dict:
        """What ``workflows.stages`` runners take in a pipeline: the previous stage is the base, always replaced."""
        return dict(base_model=str(previous), before=before, evaluate=self._evaluate(processor, eval_kwargs),
                    overwrite=True, card=self.stage_card(stage), **self._latency(eval_kwargs))

    def stage_card(self, stage) -> bool:
        """Whether a stage's runner writes its card: every stage but the last, whose card ``finish`` writes once,
        with the recipe (a card rendered twice costs a second or so of plotting per recipe)."""
        return stage.index != len(self.recipe.stages)

    def _export(self, stage, folder, previous, eval_kwargs):
        from ..export import export_onnx

        return export_onnx(str(previous), folder, int8=bool(stage.options.get("int8", False)), eval_kwargs=eval_kwargs,
                           evaluate=eval_kwargs is not None, latency_rounds=self.latency_rounds,
                           overwrite=True, card=self.stage_card(stage))

    def _distill(self, stage, folder, previous, base, first):
        from . import distill as workflow
        from .recipe import distill_option_sets

        family = self.recipe.family
        student_cls, data_cls, config_cls, training_cls = workflow.ARGUMENTS[family]
        config_fields, training_fields, student_fields = distill_option_sets(family, first)
        opts = dict(stage.options)
        teacher = opts.pop("teacher", "base")
        cache_teacher = opts.pop("cache_teacher", None)
        data = self.recipe.data
        student_args = student_cls(teacher=str(base) if teacher == "base" else teacher,
                                   student=None if first else str(previous),
                                   **{k: v for k, v in opts.items() if k in student_fields})
        data_kw = {k: data[k] for k in ("train_split", "eval_split", "image_column", "caption_column", "label_column",
                                        "eval_image_column", "eval_caption_column", "eval_label_column", "eval_task",
                                        "templates", "max_train_samples", "max_eval_samples", "on_bad_sample",
                                        "train_images_per_number", "streaming", "shuffle_buffer") if k in data}
        if data.get("images_per_number"):
            data_kw["eval_images_per_number"] = data["images_per_number"]
        if data.get("texts"):
            data_kw["text_dataset"] = data["texts"]  # unpaired texts for the text term
        if cache_teacher is not None:
            data_kw["cache_teacher"] = str(cache_teacher).lower()  # YAML's true/false, or auto
        data_args = data_cls(dataset_name=data.get("train"), dataset_config_name=data.get("train_config"),
                             eval_dataset_name=self.eval_name(base), skip_eval=bool(self.recipe.eval.get("skip")),
                             latency_rounds=self.latency_rounds,
                             latency_batch_size=self.recipe.eval.get("latency_batch_size", LATENCY_BATCH_SIZE), **data_kw)
        config = config_cls(**{k: v for k, v in opts.items() if k in config_fields})
        training = {k: v for k, v in opts.items() if k in training_fields}
        max_steps = training.get("max_steps", training_cls.max_steps if hasattr(training_cls, "max_steps") else 900)
        # resumable by default: a checkpoint every quarter of the run, only the last one kept
        training.setdefault("save_strategy", "steps")
        training.setdefault("save_steps", max(10, int(max_steps) // 4))
        training.setdefault("save_total_limit", 1)
        training.setdefault("disable_tqdm", workflow.show_no_bar())  # a bar on a terminal, else a line per log step
        resume = None
        if folder.is_dir() and not (folder / "compression_report.json").is_file():
            checkpoints = trainer_checkpoints(folder, complete=True)  # a run killed while saving: not the newest
            if checkpoints:
                resume = str(checkpoints[-1])
                self.log(f"stage {stage.name}: resuming from {checkpoints[-1].name}")
        training_args = training_cls(output_dir=str(folder), overwrite_output_dir=True, resume_from_checkpoint=resume,
                                     learning_rate_given="learning_rate" in training, **training)
        report = workflow.distill(student_args, data_args, config, training_args, base_model=str(previous),
                                  report_extra={"stage": stage.name}, card=self.stage_card(stage))
        if self.ranks.main:
            for checkpoint in trainer_checkpoints(folder):  # the run finished: its resume points are not the model
                shutil.rmtree(checkpoint)
        return report


def run_recipe(path, *, from_stage: int | None = None, output_dir: str | None = None) -> dict | None:
    from .recipe import load_recipe

    return Pipeline(load_recipe(path, output_dir=output_dir), from_stage=from_stage).run()
